"""The experiment state machine, field-mask updates, diffs and page tokens: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask

from verdict.v1 import common_pb2, experiment_pb2
from verdict_assignment.experiments import lifecycle
from verdict_assignment.experiments.changes import as_json, diff
from verdict_assignment.experiments.paging import decode_token, encode_token, page_size
from verdict_platform.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2030, 1, 1, tzinfo=UTC)
S = experiment_pb2.ExperimentStatus


def draft() -> experiment_pb2.Experiment:
    requested = json_format.ParseDict(
        {
            "key": "exp",
            "status": "EXPERIMENT_STATUS_RUNNING",  # output only: ignored on create
            "version": "41",
            "variants": [
                {"key": "control", "weight": 0.5, "isControl": True},
                {"key": "v1", "weight": 0.5, "payload": {"model": "m1"}},
            ],
            "coverage": 1.0,
            "forcedVariations": {"qa": "v1"},
        },
        experiment_pb2.Experiment(),
    )
    return lifecycle.new_experiment(requested, NOW)


def running() -> experiment_pb2.Experiment:
    return lifecycle.start(draft(), NOW)


def test_new_experiment_is_a_draft_at_version_one_with_defaults() -> None:
    e = draft()
    assert (e.status, e.version, e.allocation_version) == (S.EXPERIMENT_STATUS_DRAFT, 1, 1)
    assert (e.seed, e.hash_attribute, e.hash_version) == ("exp", "id", 2)
    assert e.create_time.ToDatetime(tzinfo=UTC) == NOW


def test_update_takes_only_masked_fields() -> None:
    patch = experiment_pb2.Experiment(key="exp", name="new", coverage=0.3)
    updated = lifecycle.apply_update(draft(), patch, ["name"], NOW)
    assert (updated.name, updated.coverage, updated.version) == ("new", 1.0, 2)


def test_update_replaces_maps_and_lists_whole() -> None:
    patch = experiment_pb2.Experiment(key="exp", forced_variations={"other": "control"})
    updated = lifecycle.apply_update(draft(), patch, ["forced_variations"], NOW)
    assert dict(updated.forced_variations) == {"other": "control"}


@pytest.mark.parametrize("path", ["key", "status", "version", "allocation_version", "nope"])
def test_mask_refuses_key_and_output_only_fields(path: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        lifecycle.mask_paths(FieldMask(paths=[path]))
    assert caught.value.violations[0].field == "update_mask"


def test_mask_accepts_nested_paths() -> None:
    assert lifecycle.mask_paths(FieldMask(paths=["analysis_plan.alpha"])) == ["analysis_plan.alpha"]


def test_draft_variants_change_freely_without_allocation_bump() -> None:
    patch = draft()
    patch.variants[1].key = "v2"
    patch.variants[0].weight, patch.variants[1].weight = 0.1, 0.9
    updated = lifecycle.apply_update(draft(), patch, ["variants"], NOW)
    assert updated.variants[1].key == "v2" and updated.allocation_version == 1


def test_running_variants_are_frozen_except_weights() -> None:
    patch = running()
    patch.variants[1].payload.update({"model": "m2"})
    with pytest.raises(FailedPrecondition):
        lifecycle.apply_update(running(), patch, ["variants"], NOW)
    patch = running()
    del patch.variants[1]
    with pytest.raises(FailedPrecondition):
        lifecycle.apply_update(running(), patch, ["variants"], NOW)


@pytest.mark.parametrize(
    ("path", "value"),
    [("coverage", 0.5), ("seed", "other"), ("hash_attribute", "device"), ("hash_version", 1)],
)
def test_running_traffic_changes_bump_allocation(path: str, value: object) -> None:
    patch = experiment_pb2.Experiment(key="exp")
    setattr(patch, path, value)
    updated = lifecycle.apply_update(running(), patch, [path], NOW)
    assert updated.allocation_version == 2


def test_running_weight_change_bumps_allocation_but_name_does_not() -> None:
    patch = running()
    patch.variants[0].weight, patch.variants[1].weight = 0.3, 0.7
    assert lifecycle.apply_update(running(), patch, ["variants"], NOW).allocation_version == 2
    renamed = lifecycle.apply_update(running(), experiment_pb2.Experiment(name="x"), ["name"], NOW)
    assert renamed.allocation_version == 1


def test_transitions() -> None:
    started = running()
    assert started.status == S.EXPERIMENT_STATUS_RUNNING and started.version == 2
    with pytest.raises(FailedPrecondition):
        lifecycle.start(started, NOW)
    with pytest.raises(FailedPrecondition):
        lifecycle.archive(started, NOW)
    with pytest.raises(FailedPrecondition):
        lifecycle.stop(draft(), reason="r", decision=0, ship_variant_key="", actor="a", now=NOW)
    stopped = lifecycle.stop(
        started,
        reason="wins",
        decision=common_pb2.DECISION_SHIP,
        ship_variant_key="v1",
        actor="ops",
        now=NOW,
    )
    assert stopped.status == S.EXPERIMENT_STATUS_STOPPED
    assert (stopped.decision.stopped_by, stopped.decision.ship_variant_key) == ("ops", "v1")
    overridden = lifecycle.stop(
        stopped, reason="no", decision=0, ship_variant_key="", actor="lead", now=NOW
    )
    assert overridden.decision.decision == common_pb2.DECISION_INCONCLUSIVE
    assert not overridden.decision.ship_variant_key
    restarted = lifecycle.start(overridden, NOW)
    assert restarted.status == S.EXPERIMENT_STATUS_RUNNING and not restarted.HasField("decision")
    archived = lifecycle.archive(stopped, NOW)
    assert archived is not None and archived.status == S.EXPERIMENT_STATUS_ARCHIVED
    assert lifecycle.archive(archived, NOW) is None
    with pytest.raises(FailedPrecondition):
        lifecycle.apply_update(archived, experiment_pb2.Experiment(name="x"), ["name"], NOW)


@pytest.mark.parametrize(
    ("reason", "decision", "ship", "field"),
    [
        ("", common_pb2.DECISION_INCONCLUSIVE, "", "reason"),
        ("r", common_pb2.DECISION_KEEP_RUNNING, "", "decision"),
        ("r", common_pb2.DECISION_SHIP, "", "ship_variant_key"),
        ("r", common_pb2.DECISION_SHIP, "nope", "ship_variant_key"),
        ("r", common_pb2.DECISION_ROLLBACK, "v1", "ship_variant_key"),
    ],
)
def test_bad_stop_requests_name_their_field(
    reason: str, decision: int, ship: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        lifecycle.stop(
            running(), reason=reason, decision=decision, ship_variant_key=ship, actor="a", now=NOW
        )
    assert caught.value.violations[0].field == field


def test_diff_names_leaf_paths_and_skips_update_time() -> None:
    before = running()
    after = lifecycle.apply_update(
        before, experiment_pb2.Experiment(coverage=0.5, name="n"), ["coverage", "name"], NOW
    )
    changes = diff(as_json(before), as_json(after))
    assert changes["coverage"] == {"before": 1.0, "after": 0.5}
    assert changes["name"] == {"before": None, "after": "n"}
    assert changes["allocation_version"] == {"before": "1", "after": "2"}
    assert "update_time" not in changes
    assert diff({"variants": [{"weight": 0.5}]}, {"variants": [{"weight": 0.4}]}) == {
        "variants[0].weight": {"before": 0.5, "after": 0.4}
    }
    assert diff({"variants": [1]}, {"variants": [1, 2]}) == {
        "variants": {"before": [1], "after": [1, 2]}
    }


def test_page_tokens_round_trip_and_reject_foreign_tokens() -> None:
    token = encode_token("metrics", "", ("abc",))
    assert decode_token(token, "metrics", "", (str,)) == ("abc",)
    assert decode_token("", "metrics", "", (str,)) is None
    assert encode_token("metrics", "", None) == ""
    for bad, listing, filter_ in [
        ("%%%", "metrics", ""),
        (token, "saved_groups", ""),
        (token, "metrics", "status=1"),
        (encode_token("metrics", "", (1,)), "metrics", ""),
    ]:
        with pytest.raises(InvalidArgument) as caught:
            decode_token(bad, listing, filter_, (str,))
        assert caught.value.violations[0].field == "page_token"


def test_page_size_defaults_and_bounds() -> None:
    assert (page_size(0), page_size(1), page_size(1000)) == (100, 1, 1000)
    for bad in (-1, 1001):
        with pytest.raises(InvalidArgument):
            page_size(bad)


def test_pure_modules_import_no_grpc_database_or_redis() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import verdict_assignment.experiments.lifecycle\n"
        "import verdict_assignment.experiments.catalog_rules\n"
        "import verdict_assignment.experiments.paging\n"
        "import verdict_assignment.experiments.ports\n"
        "print(sorted(m for m in ('grpc', 'asyncpg', 'redis') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
