"""Issue 17's safe defaults, allocation rules, enrolment and holdout rules: pure functions, and the
use cases on in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from exp_fakes import FakePublisher, FakeStore, TickingClock
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask

from verdict.v1 import experiment_pb2
from verdict_assignment.experiments import lifecycle
from verdict_assignment.experiments.allocation_rules import overlapping
from verdict_assignment.experiments.enrolment import nobody_reasons
from verdict_assignment.experiments.experiment_rules import validate_experiment, with_defaults
from verdict_assignment.experiments.manager import ExperimentManager, StartCommand, StopCommand
from verdict_platform.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2030, 1, 1, tzinfo=UTC)
Experiment = experiment_pb2.Experiment


def spec(key: str = "exp", **overrides: Any) -> Experiment:
    base: dict[str, Any] = {
        "key": key,
        "variants": [
            {"key": "control", "weight": 0.5, "isControl": True},
            {"key": "v1", "weight": 0.5},
        ],
    }
    base.update(overrides)
    return json_format.ParseDict(base, Experiment())


def fields(e: Experiment) -> set[str]:
    return {v.field for v in validate_experiment(with_defaults(e), set()).items}


def test_absent_coverage_becomes_one_and_an_explicit_zero_stays() -> None:
    filled = with_defaults(spec())
    assert filled.HasField("coverage") and filled.coverage == 1.0
    zero = with_defaults(spec(coverage=0.0))
    assert zero.HasField("coverage") and zero.coverage == 0.0


def test_a_masked_coverage_left_absent_takes_the_default() -> None:
    stored = lifecycle.new_experiment(spec(coverage=0.2), NOW)
    updated = lifecycle.apply_update(stored, Experiment(key="exp"), ["coverage"], NOW)
    assert updated.HasField("coverage") and updated.coverage == 1.0


def test_equal_split_and_partial_zero_weights_are_valid_but_a_partial_sum_is_not() -> None:
    equal = spec(variants=[{"key": "c", "isControl": True}, {"key": "t"}])
    assert fields(equal) == set()
    kept_out = spec(variants=[{"key": "c", "isControl": True, "weight": 1}, {"key": "t"}])
    assert fields(kept_out) == set()
    partial = spec(variants=[{"key": "c", "isControl": True, "weight": 0.4}, {"key": "t"}])
    assert fields(partial) == {"experiment.variants"}


@pytest.mark.parametrize(
    ("ranges", "pairs"),
    [
        ([(0, 0.5, 0), (0.5, 1, 1)], []),
        ([(0, 0.5, 0), (0.4, 1, 1)], [(0, 1)]),
        ([(0.3, 0.4, 2), (0, 0.9, 0), (0.1, 0.2, 1)], [(0, 1), (0, 2)]),
        ([(0.2, 0.2, 0), (0, 1, 1)], []),  # an empty range shares no bucket
    ],
)
def test_overlapping_ranges_are_found_even_when_not_adjacent(
    ranges: list[tuple[float, float, int]], pairs: list[tuple[int, int]]
) -> None:
    assert sorted(overlapping(ranges)) == pairs


def test_a_holdout_names_no_holdout_and_no_experiment_names_itself() -> None:
    assert fields(spec(holdout=True, holdoutKey="h")) == {"experiment.holdout_key"}
    assert fields(spec(holdoutKey="exp")) == {"experiment.holdout_key"}


@pytest.mark.parametrize(
    ("overrides", "nobody"),
    [
        ({}, set()),
        ({"coverage": 0.0}, {"coverage"}),
        ({"variants": [{"key": "c", "isControl": True}, {"key": "t"}]}, set()),
        (
            {
                "coverage": 0.0,
                "variants": [
                    {"key": "c", "isControl": True, "range": {"start": 0, "end": 0.1}},
                    {"key": "t", "range": {"start": 0.5, "end": 0.5}},
                ],
            },
            set(),
        ),
        (
            {
                "variants": [
                    {"key": "c", "isControl": True, "range": {}},
                    {"key": "t", "range": {"start": 0.5, "end": 0.5}},
                ]
            },
            {"variants"},
        ),
        ({"layer": {"id": "l", "start": 0.3, "end": 0.3}}, {"layer"}),
        (
            {"filters": [{"seed": "s", "ranges": [{"start": 0.1, "end": 0.1}]}]},
            {"filters[0].ranges"},
        ),
        ({"coverage": 0.0, "qaMode": True}, {"coverage"}),
    ],
    ids=["fine", "coverage", "equal", "ranges-replace-coverage", "ranges", "layer", "filter", "qa"],
)
def test_what_keeps_everyone_out_is_named(overrides: dict[str, Any], nobody: set[str]) -> None:
    e = with_defaults(spec(**overrides))
    assert {r.field for r in nobody_reasons(e)} == nobody


def build() -> tuple[ExperimentManager, FakeStore, FakePublisher]:
    store, publisher = FakeStore(), FakePublisher()
    return ExperimentManager(store, publisher, TickingClock()), store, publisher


async def test_start_refusal_names_the_field_and_changes_nothing() -> None:
    manager, store, publisher = build()
    await manager.create(spec(coverage=0.0), "alice")
    with pytest.raises(FailedPrecondition) as caught:
        await manager.start(StartCommand("exp"), "alice")
    assert [v.field for v in caught.value.violations] == ["coverage"]
    assert store.state.experiments["exp"].status == experiment_pb2.EXPERIMENT_STATUS_DRAFT
    assert publisher.published == [2]


async def test_each_change_returns_the_version_it_committed() -> None:
    manager, store, publisher = build()
    created = await manager.create(spec(), "alice")
    started = await manager.start(StartCommand("exp"), "alice")
    stopped = await manager.stop(StopCommand("exp", "done", 0), "alice")
    archived = await manager.archive("exp", "alice")
    again = await manager.archive("exp", "alice")
    versions = [c.config_version for c in (created, started, stopped, archived)]
    assert versions == publisher.published == [2, 3, 4, 5]
    assert again.config_version == store.state.config_version == 5


async def test_holdout_rules_on_the_use_cases() -> None:
    manager, _, _ = build()
    await manager.create(spec("hold", holdout=True), "alice")
    with pytest.raises(InvalidArgument) as invalid:
        await manager.create(spec("x", holdoutKey="nothing"), "alice")
    assert [v.field for v in invalid.value.violations] == ["experiment.holdout_key"]
    await manager.create(spec("exp", holdoutKey="hold"), "alice")
    with pytest.raises(FailedPrecondition) as not_running:
        await manager.start(StartCommand("exp"), "alice")
    assert [v.field for v in not_running.value.violations] == ["holdout_key"]
    await manager.start(StartCommand("hold"), "alice")
    await manager.start(StartCommand("exp"), "alice")
    await manager.stop(StopCommand("hold", "end", 0), "alice")  # always allowed
    with pytest.raises(FailedPrecondition) as named:
        await manager.archive("hold", "alice")
    assert [v.field for v in named.value.violations] == ["holdout"]
    with pytest.raises(FailedPrecondition):
        patch = Experiment(key="hold")
        await manager.update(patch, FieldMask(paths=["holdout"]), 0, "alice")


async def test_an_update_is_refused_only_for_what_it_makes_enrol_nobody() -> None:
    manager, store, _ = build()
    await manager.create(spec(), "alice")
    await manager.start(StartCommand("exp"), "alice")
    legacy = store.state.experiments["exp"]
    legacy.coverage = 0.0  # stored before coverage had a default
    renamed = await manager.update(
        Experiment(key="exp", name="n"), FieldMask(paths=["name"]), 0, "a"
    )
    assert renamed.experiment.name == "n"
    patch = spec(filters=[{"seed": "s", "ranges": [{"start": 0.2, "end": 0.2}]}])
    with pytest.raises(FailedPrecondition) as caught:
        await manager.update(patch, FieldMask(paths=["filters"]), 0, "alice")
    assert [v.field for v in caught.value.violations] == ["experiment.filters[0].ranges"]


async def test_a_running_experiment_under_a_stopped_holdout_can_still_change() -> None:
    manager, _, _ = build()
    await manager.create(spec("hold", holdout=True), "alice")
    await manager.start(StartCommand("hold"), "alice")
    await manager.create(spec("exp", holdoutKey="hold"), "alice")
    await manager.start(StartCommand("exp"), "alice")
    await manager.stop(StopCommand("hold", "end", 0), "alice")
    patch = spec(
        variants=[
            {"key": "control", "weight": 0.3, "isControl": True},
            {"key": "v1", "weight": 0.7},
        ]
    )
    changed = await manager.update(patch, FieldMask(paths=["variants"]), 0, "alice")
    assert changed.experiment.allocation_version == 2
    await manager.stop(StopCommand("exp", "end", 0), "alice")
    with pytest.raises(FailedPrecondition):
        await manager.start(StartCommand("exp", reason="again"), "alice")
