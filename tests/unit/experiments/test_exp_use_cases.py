"""The experiment and catalog use cases on in-memory fakes of the store and the publisher."""

from __future__ import annotations

import logging

import pytest
from exp_fakes import FakePublisher, FakeStore, TickingClock
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask

from verdict.v1 import common_pb2, experiment_pb2
from verdict_assignment.experiments.catalog import Catalog
from verdict_assignment.experiments.manager import ExperimentManager, StartCommand, StopCommand
from verdict_assignment.experiments.publisher import RedisConfigPublisher
from verdict_platform.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

pytestmark = pytest.mark.asyncio(loop_scope="session")


def spec(key: str) -> experiment_pb2.Experiment:
    return json_format.ParseDict(
        {
            "key": key,
            "variants": [
                {"key": "control", "weight": 0.5, "isControl": True},
                {"key": "v1", "weight": 0.5},
            ],
            "coverage": 1.0,
        },
        experiment_pb2.Experiment(),
    )


def build() -> tuple[ExperimentManager, Catalog, FakeStore, FakePublisher]:
    store, publisher, clock = FakeStore(), FakePublisher(), TickingClock()
    return (
        ExperimentManager(store, publisher, clock),
        Catalog(store, publisher, clock),
        store,
        publisher,
    )


async def test_a_change_is_audited_versioned_and_published_after_commit() -> None:
    manager, _, store, publisher = build()
    await manager.create(spec("a"), "alice")
    await manager.start(StartCommand("a"), "bob")
    assert publisher.published == [2, 3]
    assert store.state.config_version == 3
    assert [(e.action, e.actor) for e in store.state.audit] == [
        ("experiment.created", "alice"),
        ("experiment.started", "bob"),
    ]


async def test_a_refused_change_stores_and_publishes_nothing() -> None:
    manager, _, store, publisher = build()
    await manager.create(spec("a"), "alice")
    with pytest.raises(AlreadyExists):
        await manager.create(spec("a"), "alice")
    bad = spec("a")
    bad.coverage = 2
    with pytest.raises(InvalidArgument):
        await manager.update(bad, FieldMask(paths=["coverage"]), 0, "alice")
    with pytest.raises(NotFound):
        await manager.start(StartCommand("missing"), "alice")
    assert publisher.published == [2] and len(store.state.audit) == 1
    assert store.state.experiments["a"].coverage == 1.0


async def test_stale_expected_version_is_failed_precondition() -> None:
    manager, _, _, _ = build()
    await manager.create(spec("a"), "alice")
    patch = experiment_pb2.Experiment(key="a", name="x")
    await manager.update(patch, FieldMask(paths=["name"]), 1, "alice")
    with pytest.raises(FailedPrecondition):
        await manager.update(patch, FieldMask(paths=["name"]), 1, "alice")


async def test_unknown_metric_needs_the_catalog() -> None:
    manager, catalog, _, _ = build()
    with_metric = spec("a")
    with_metric.metrics.add(metric_key="conv", role=experiment_pb2.METRIC_ROLE_PRIMARY)
    with pytest.raises(InvalidArgument) as caught:
        await manager.create(with_metric, "alice")
    assert caught.value.violations[0].field == "experiment.metrics[0].metric_key"
    metric = experiment_pb2.Metric(key="conv", type=experiment_pb2.METRIC_TYPE_BINOMIAL)
    metric.source.event_name = "converted"
    await catalog.create_metric(metric, "alice")
    created = (await manager.create(with_metric, "alice")).experiment
    assert created.metrics[0].metric_key == "conv"


async def test_stop_details_and_reason_are_audited() -> None:
    manager, _, store, _ = build()
    await manager.create(spec("a"), "alice")
    await manager.start(StartCommand("a"), "alice")
    command = StopCommand(
        key="a",
        reason="guardrail harm",
        decision=common_pb2.DECISION_ROLLBACK,
        details={"rule": "guardrail_harm"},
    )
    stopped = (await manager.stop(command, "analysis")).experiment
    assert stopped.decision.stopped_by == "analysis"
    entry = store.state.audit[-1]
    assert (entry.action, entry.reason) == ("experiment.stopped", "guardrail harm")
    assert entry.changes["details"] == {"rule": "guardrail_harm"}
    assert entry.changes["status"] == {
        "before": "EXPERIMENT_STATUS_RUNNING",
        "after": "EXPERIMENT_STATUS_STOPPED",
    }


async def test_archiving_twice_changes_nothing() -> None:
    manager, _, store, publisher = build()
    await manager.create(spec("a"), "alice")
    await manager.archive("a", "alice")
    await manager.archive("a", "alice")
    assert [e.action for e in store.state.audit][-1] == "experiment.archived"
    assert len(publisher.published) == 2


async def test_list_pages_newest_first() -> None:
    manager, _, _, _ = build()
    for key in ("a", "b", "c"):
        await manager.create(spec(key), "alice")
    first, token = await manager.list_page(0, 2, "")
    second, last = await manager.list_page(0, 2, token)
    assert [e.key for e in [*first, *second]] == ["c", "b", "a"] and last == ""


async def test_saved_groups_bump_the_config_version() -> None:
    _, catalog, store, publisher = build()
    group = json_format.ParseDict({"key": "beta", "values": ["u1"]}, experiment_pb2.SavedGroup())
    await catalog.put_saved_group(group, "alice")
    assert publisher.published == [2]
    assert store.state.audit[-1].action == "saved_group.put"


class _BrokenRedis:
    async def publish(self, channel: str, message: bytes) -> int:
        raise ConnectionError("redis is down")


async def test_publish_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    publisher = RedisConfigPublisher(_BrokenRedis(), "ns:config")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        await publisher.publish(7)
    assert "could not publish config version 7" in caplog.text


async def test_a_start_that_would_overflow_the_snapshot_budget_is_refused_and_rolled_back() -> None:
    store, publisher, clock = FakeStore(), FakePublisher(), TickingClock()
    manager = ExperimentManager(store, publisher, clock, max_snapshot_bytes=2_000)
    big = spec("big")
    big.description = "d" * 3_000  # stored JSON counts, descriptions included
    await manager.create(big, "alice")
    await manager.create(spec("small"), "alice")
    await manager.start(StartCommand("small"), "alice")
    with pytest.raises(FailedPrecondition, match="VERDICT_MAX_SNAPSHOT_BYTES"):
        await manager.start(StartCommand("big"), "alice")
    assert store.state.experiments["big"].status == experiment_pb2.EXPERIMENT_STATUS_DRAFT
    assert publisher.published[-1] == 4  # the refused start published nothing


async def test_a_saved_group_over_the_snapshot_budget_is_refused() -> None:
    store, publisher, clock = FakeStore(), FakePublisher(), TickingClock()
    catalog = Catalog(store, publisher, clock, max_snapshot_bytes=1_000)
    group = experiment_pb2.SavedGroup(key="vip")
    group.values.add().string_value = "u" * 2_000
    with pytest.raises(FailedPrecondition):
        await catalog.put_saved_group(group, "alice")
    assert "vip" not in store.state.groups


async def test_a_condition_naming_an_unknown_saved_group_is_refused() -> None:
    manager, catalog, _, _ = build()
    experiment = spec("grouped")
    experiment.targeting.update({"id": {"$inGroup": "beta-testers"}})
    with pytest.raises(InvalidArgument) as raised:
        await manager.create(experiment, "alice")
    assert raised.value.violations[0].field == "experiment.targeting.id.$inGroup"
    group = experiment_pb2.SavedGroup(key="beta-testers")
    group.values.add().string_value = "u1"
    await catalog.put_saved_group(group, "alice")
    await manager.create(experiment, "alice")  # now it names something


async def test_a_stop_naming_an_unknown_rule_is_refused_naming_the_field() -> None:
    manager, _, _, _ = build()
    await manager.create(spec("a"), "alice")
    await manager.start(StartCommand("a"), "alice")
    with pytest.raises(InvalidArgument) as raised:
        await manager.stop(
            StopCommand("a", "why", common_pb2.DECISION_INCONCLUSIVE, rule=-1), "svc"
        )
    assert raised.value.violations[0].field == "rule"
