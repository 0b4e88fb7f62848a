"""Operators' overrides of stopping rules on StartExperiment, and the rule on automated stops:
the pure state machine (`lifecycle.start` / `lifecycle.stop`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from verdict.v1 import common_pb2, experiment_pb2
from verdict_assignment.experiments import lifecycle
from verdict_platform.errors import InvalidArgument

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def _running() -> experiment_pb2.Experiment:
    draft = lifecycle.new_experiment(
        json_format.ParseDict(
            {
                "key": "exp",
                "variants": [
                    {"key": "control", "weight": 0.5, "isControl": True},
                    {"key": "v1", "weight": 0.5},
                ],
                "coverage": 1.0,
            },
            experiment_pb2.Experiment(),
        ),
        NOW,
    )
    return lifecycle.start(draft, NOW)


def _stopped_by(rule: int) -> experiment_pb2.Experiment:
    details = Struct()
    details.update({"rule": "srm", "p_value": 1e-6})
    return lifecycle.stop(
        _running(),
        reason="stopping rule srm: mismatch",
        decision=common_pb2.DECISION_INCONCLUSIVE,
        ship_variant_key="",
        actor="svc-analysis",
        now=NOW,
        rule=rule,
        details=details,
    )


def test_an_automated_stop_names_its_rule_and_keeps_its_figures() -> None:
    stopped = _stopped_by(experiment_pb2.STOPPING_RULE_SRM)
    assert stopped.decision.rule == experiment_pb2.STOPPING_RULE_SRM
    assert stopped.decision.stopped_by == "svc-analysis"
    assert json_format.MessageToDict(stopped.decision.details) == {"rule": "srm", "p_value": 1e-6}


def test_restarting_after_an_automated_stop_needs_a_reason() -> None:
    with pytest.raises(InvalidArgument) as raised:
        lifecycle.start(_stopped_by(experiment_pb2.STOPPING_RULE_SRM), LATER, actor="alice")
    assert raised.value.violations[0].field == "reason"
    assert "STOPPING_RULE_SRM" in raised.value.violations[0].description


def test_restarting_after_an_automated_stop_records_an_override_of_that_rule() -> None:
    restarted = lifecycle.start(
        _stopped_by(experiment_pb2.STOPPING_RULE_SRM),
        LATER,
        reason="bot traffic, filtered",
        actor="alice",
    )
    [override] = restarted.rule_overrides
    assert override.rule == experiment_pb2.STOPPING_RULE_SRM
    assert override.mode == experiment_pb2.RULE_OVERRIDE_MODE_OVERRIDE
    assert (override.actor, override.reason) == ("alice", "bot traffic, filtered")
    assert override.create_time.ToDatetime(tzinfo=UTC) == LATER
    assert json_format.MessageToDict(override.baseline)["p_value"] == 1e-6
    assert not restarted.HasField("decision")


def test_restarting_after_a_persons_stop_needs_no_reason_and_records_no_override() -> None:
    stopped = lifecycle.stop(
        _running(),
        reason="done",
        decision=common_pb2.DECISION_INCONCLUSIVE,
        ship_variant_key="",
        actor="alice",
        now=NOW,
    )
    assert stopped.decision.rule == experiment_pb2.STOPPING_RULE_UNSPECIFIED
    assert list(lifecycle.start(stopped, LATER, actor="alice").rule_overrides) == []


def test_a_request_may_silence_the_rule_another_way_instead() -> None:
    disable = experiment_pb2.RuleOverride(
        rule=experiment_pb2.STOPPING_RULE_SRM, mode=experiment_pb2.RULE_OVERRIDE_MODE_DISABLE
    )
    restarted = lifecycle.start(
        _stopped_by(experiment_pb2.STOPPING_RULE_SRM),
        LATER,
        reason="known imbalance",
        overrides=[disable],
        actor="alice",
    )
    [override] = restarted.rule_overrides
    assert override.mode == experiment_pb2.RULE_OVERRIDE_MODE_DISABLE
    assert override.reason == "known imbalance"  # the request's reason, stamped on it


def test_a_snooze_keeps_its_time_and_the_override_ends_with_the_run() -> None:
    snooze = experiment_pb2.RuleOverride(
        rule=experiment_pb2.STOPPING_RULE_GUARDRAIL_HARM,
        mode=experiment_pb2.RULE_OVERRIDE_MODE_SNOOZE,
        reason="deploy",
    )
    snooze.until.FromDatetime(LATER + timedelta(days=1))
    draft = lifecycle.new_experiment(_running(), NOW)
    started = lifecycle.start(draft, LATER, overrides=[snooze], actor="bob")
    [kept] = started.rule_overrides
    assert kept.until.ToDatetime(tzinfo=UTC) == LATER + timedelta(days=1)
    stopped = lifecycle.stop(
        started,
        reason="done",
        decision=common_pb2.DECISION_INCONCLUSIVE,
        ship_variant_key="",
        actor="bob",
        now=LATER,
    )
    assert list(stopped.rule_overrides) == []


@pytest.mark.parametrize(
    ("override", "field"),
    [
        (
            experiment_pb2.RuleOverride(mode=experiment_pb2.RULE_OVERRIDE_MODE_DISABLE, reason="x"),
            "rule_overrides[0].rule",
        ),
        (
            experiment_pb2.RuleOverride(
                rule=99, mode=experiment_pb2.RULE_OVERRIDE_MODE_DISABLE, reason="x"
            ),
            "rule_overrides[0].rule",
        ),  # type: ignore[arg-type]
        (
            experiment_pb2.RuleOverride(rule=experiment_pb2.STOPPING_RULE_SRM, reason="x"),
            "rule_overrides[0].mode",
        ),
        (
            experiment_pb2.RuleOverride(
                rule=experiment_pb2.STOPPING_RULE_SRM,
                mode=experiment_pb2.RULE_OVERRIDE_MODE_SNOOZE,
                reason="x",
            ),
            "rule_overrides[0].until",
        ),
        (
            experiment_pb2.RuleOverride(
                rule=experiment_pb2.STOPPING_RULE_SRM,
                mode=experiment_pb2.RULE_OVERRIDE_MODE_DISABLE,
            ),
            "rule_overrides[0].reason",
        ),
    ],
)
def test_malformed_overrides_are_refused_naming_the_field(
    override: experiment_pb2.RuleOverride, field: str
) -> None:
    draft = lifecycle.new_experiment(_running(), NOW)
    with pytest.raises(InvalidArgument) as raised:
        lifecycle.start(draft, LATER, overrides=[override], actor="bob")
    assert raised.value.violations[0].field == field


def test_a_rule_overridden_twice_in_one_request_is_refused() -> None:
    twice = [
        experiment_pb2.RuleOverride(
            rule=experiment_pb2.STOPPING_RULE_SRM,
            mode=experiment_pb2.RULE_OVERRIDE_MODE_DISABLE,
            reason="a",
        ),
        experiment_pb2.RuleOverride(
            rule=experiment_pb2.STOPPING_RULE_SRM,
            mode=experiment_pb2.RULE_OVERRIDE_MODE_OVERRIDE,
            reason="b",
        ),
    ]
    with pytest.raises(InvalidArgument) as raised:
        lifecycle.start(lifecycle.new_experiment(_running(), NOW), LATER, overrides=twice)
    assert raised.value.violations[0].field == "rule_overrides[1].rule"
