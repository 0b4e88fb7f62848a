"""ExperimentService's metric catalog, saved groups, audit log and change announcements, over gRPC
against the real PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from exp_server import Client, experiment, failure, serving, unique
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask

from support.eventually import eventually_async
from verdict.v1 import common_pb2, experiment_pb2
from verdict_platform import redis_conn
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
Code = grpc.StatusCode


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    make_key: Callable[[Role], Awaitable[str]],
) -> AsyncIterator[Client]:
    async with serving(settings, pool, redis_client, make_key) as c:
        yield c


def metric(key: str) -> experiment_pb2.Metric:
    return json_format.ParseDict(
        {
            "key": key,
            "name": "p95 latency",
            "type": "METRIC_TYPE_QUANTILE",
            "source": {"eventName": "llm_call", "measure": "latency_ms"},
            "quantile": 0.95,
            "direction": "DIRECTION_DECREASE",
        },
        experiment_pb2.Metric(),
    )


async def _created_metric(client: Client, key: str) -> experiment_pb2.Metric:
    reply = await client.stub.CreateMetric(
        experiment_pb2.CreateMetricRequest(metric=metric(key)), metadata=client.admin
    )
    created: experiment_pb2.Metric = reply.metric
    return created


async def test_a_created_metric_can_be_read_back(client: Client) -> None:
    key = unique("metric")
    created = await _created_metric(client, key)
    assert created.HasField("create_time")
    got = await client.stub.GetMetric(
        experiment_pb2.GetMetricRequest(key=key), metadata=client.reader
    )
    assert got.metric == created and got.metric.quantile == 0.95


async def test_metrics_are_listed_by_key_a_page_at_a_time(client: Client) -> None:
    keys = sorted(unique("listed-metric") for _ in range(3))
    for key in keys:
        await _created_metric(client, key)
    seen: list[str] = []
    token = ""
    while True:
        page = await client.stub.ListMetrics(
            experiment_pb2.ListMetricsRequest(page_size=2, page_token=token), metadata=client.reader
        )
        assert len(page.metrics) <= 2
        seen.extend(m.key for m in page.metrics)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and set(keys) <= set(seen)


async def test_a_metric_key_taken_is_already_exists(client: Client) -> None:
    key = unique("metric-twice")
    await _created_metric(client, key)
    code, _ = await failure(
        client.stub.CreateMetric(
            experiment_pb2.CreateMetricRequest(metric=metric(key)), metadata=client.admin
        )
    )
    assert code is Code.ALREADY_EXISTS


async def test_an_unknown_metric_is_not_found(client: Client) -> None:
    code, _ = await failure(
        client.stub.GetMetric(
            experiment_pb2.GetMetricRequest(key="no-such-metric"), metadata=client.reader
        )
    )
    assert code is Code.NOT_FOUND


async def test_a_ratio_metric_without_denominator_is_invalid_argument_naming_it(
    client: Client,
) -> None:
    ratio = metric(unique("ratio"))
    ratio.type = experiment_pb2.METRIC_TYPE_RATIO
    ratio.quantile = 0
    code, violations = await failure(
        client.stub.CreateMetric(
            experiment_pb2.CreateMetricRequest(metric=ratio), metadata=client.admin
        )
    )
    assert code is Code.INVALID_ARGUMENT and "metric.denominator.event_name" in violations


async def test_a_metrics_page_token_not_ours_is_invalid_argument(client: Client) -> None:
    code, violations = await failure(
        client.stub.ListMetrics(
            experiment_pb2.ListMetricsRequest(page_token="xyz"), metadata=client.reader
        )
    )
    assert code is Code.INVALID_ARGUMENT and "page_token" in violations


async def test_experiment_may_use_catalog_metrics_by_role(client: Client) -> None:
    key = unique("m")
    await client.stub.CreateMetric(
        experiment_pb2.CreateMetricRequest(metric=metric(key)), metadata=client.admin
    )
    exp = experiment(
        unique("with-metrics"), metrics=[{"metricKey": key, "role": "METRIC_ROLE_GUARDRAIL"}]
    )
    created = await client.stub.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=exp), metadata=client.admin
    )
    assert [m.metric_key for m in created.experiment.metrics] == [key]


async def _put_group(client: Client, key: str, values: list[object]) -> experiment_pb2.SavedGroup:
    group = json_format.ParseDict({"key": key, "values": values}, experiment_pb2.SavedGroup())
    reply = await client.stub.PutSavedGroup(
        experiment_pb2.PutSavedGroupRequest(saved_group=group), metadata=client.admin
    )
    stored: experiment_pb2.SavedGroup = reply.saved_group
    return stored


async def test_saved_groups_are_stored_as_json_arrays(client: Client, pool: asyncpg.Pool) -> None:
    key = unique("beta")
    stored = await _put_group(client, key, ["u1", "u2", 7])
    assert stored.HasField("update_time")
    members = await pool.fetchval("SELECT members::text FROM saved_groups WHERE key = $1", key)
    assert json.loads(members) == ["u1", "u2", 7]


async def test_putting_a_saved_group_again_replaces_its_members(client: Client) -> None:
    key = unique("beta")
    await _put_group(client, key, ["u1", "u2", 7])
    await _put_group(client, key, ["u1", "u2"])
    listed = await client.stub.ListSavedGroups(
        experiment_pb2.ListSavedGroupsRequest(page_size=1000), metadata=client.reader
    )
    [mine] = [g for g in listed.saved_groups if g.key == key]
    assert [v.string_value for v in mine.values] == ["u1", "u2"]


async def test_a_saved_group_member_that_is_an_object_is_invalid_argument(client: Client) -> None:
    bad = json_format.ParseDict(
        {"key": unique("beta"), "values": [{"a": 1}]}, experiment_pb2.SavedGroup()
    )
    code, violations = await failure(
        client.stub.PutSavedGroup(
            experiment_pb2.PutSavedGroupRequest(saved_group=bad), metadata=client.admin
        )
    )
    assert code is Code.INVALID_ARGUMENT and "saved_group.values[0]" in violations


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def audited(client: Client) -> tuple[str, list[experiment_pb2.AuditEvent]]:
    """An experiment created, started, stopped with a reason and figures, and archived; its
    audit events as listed (newest first)."""
    key = unique("audited")
    stub, md = client.stub, client.admin
    await stub.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=experiment(key)), metadata=md
    )
    await stub.StartExperiment(experiment_pb2.StartExperimentRequest(key=key), metadata=md)
    stop = experiment_pb2.StopExperimentRequest(
        key=key, reason="guardrail harm on latency", decision=common_pb2.DECISION_ROLLBACK
    )
    stop.details.update({"rule": "guardrail_harm", "p_value": 0.001})
    await stub.StopExperiment(stop, metadata=md)
    await stub.ArchiveExperiment(experiment_pb2.ArchiveExperimentRequest(key=key), metadata=md)
    reply = await stub.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(experiment_key=key), metadata=client.reader
    )
    return key, list(reply.audit_events)


def _changes(events: list[experiment_pb2.AuditEvent], action: str) -> dict[str, Any]:
    [event] = [e for e in events if e.action == action]
    changes: dict[str, Any] = json_format.MessageToDict(event.changes)
    return changes


async def test_the_audit_log_lists_each_change_newest_first(
    audited: tuple[str, list[experiment_pb2.AuditEvent]],
) -> None:
    key, events = audited
    assert [e.action for e in events] == [
        "experiment.archived",
        "experiment.stopped",
        "experiment.started",
        "experiment.created",
    ]
    assert {e.experiment_key for e in events} == {key}
    assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
    assert all(e.HasField("time") for e in events)


async def test_the_audit_log_names_who_made_each_change(
    client: Client, audited: tuple[str, list[experiment_pb2.AuditEvent]]
) -> None:
    _key, events = audited
    assert {e.actor for e in events} == {client.admin_name}


async def test_the_audit_log_records_each_status_change_before_and_after(
    audited: tuple[str, list[experiment_pb2.AuditEvent]],
) -> None:
    key, events = audited
    assert _changes(events, "experiment.created")["key"] == {"before": None, "after": key}
    assert _changes(events, "experiment.started")["status"] == {
        "before": "EXPERIMENT_STATUS_DRAFT",
        "after": "EXPERIMENT_STATUS_RUNNING",
    }
    assert _changes(events, "experiment.stopped")["status"]["after"] == "EXPERIMENT_STATUS_STOPPED"
    assert _changes(events, "experiment.archived")["status"] == {
        "before": "EXPERIMENT_STATUS_STOPPED",
        "after": "EXPERIMENT_STATUS_ARCHIVED",
    }


async def test_the_audit_log_keeps_why_a_stop_was_made_and_its_figures(
    audited: tuple[str, list[experiment_pb2.AuditEvent]],
) -> None:
    _key, events = audited
    [stop] = [e for e in events if e.action == "experiment.stopped"]
    assert stop.reason == "guardrail harm on latency"
    assert _changes(events, "experiment.stopped")["details"] == {
        "rule": "guardrail_harm",
        "p_value": 0.001,
    }


async def test_the_audit_log_of_an_experiment_is_paged(
    client: Client, audited: tuple[str, list[experiment_pb2.AuditEvent]]
) -> None:
    key, events = audited
    paged = await client.stub.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(experiment_key=key, page_size=3),
        metadata=client.reader,
    )
    rest = await client.stub.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(
            experiment_key=key, page_size=3, page_token=paged.next_page_token
        ),
        metadata=client.reader,
    )
    assert len(paged.audit_events) == 3
    assert [e.id for e in [*paged.audit_events, *rest.audit_events]] == [e.id for e in events]
    assert rest.next_page_token == ""


async def test_update_is_audited_field_by_field(client: Client) -> None:
    key = unique("diffed")
    stub, md = client.stub, client.admin
    await stub.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=experiment(key)), metadata=md
    )
    patch = experiment(key)
    patch.variants[0].weight, patch.variants[1].weight = 0.25, 0.75
    await stub.UpdateExperiment(
        experiment_pb2.UpdateExperimentRequest(
            experiment=patch, update_mask=FieldMask(paths=["variants"])
        ),
        metadata=md,
    )
    reply = await stub.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(experiment_key=key, page_size=1),
        metadata=client.reader,
    )
    (event,) = reply.audit_events
    assert event.action == "experiment.updated"
    changes = json_format.MessageToDict(event.changes)
    assert changes["variants[0].weight"] == {"before": 0.5, "after": 0.25}
    assert changes["variants[1].weight"] == {"before": 0.5, "after": 0.75}
    assert changes["version"] == {"before": "1", "after": "2"}


async def test_catalog_changes_are_audited(client: Client) -> None:
    key = unique("audited-metric")
    await client.stub.CreateMetric(
        experiment_pb2.CreateMetricRequest(metric=metric(key)), metadata=client.admin
    )
    group = unique("audited-group")
    await client.stub.PutSavedGroup(
        experiment_pb2.PutSavedGroupRequest(saved_group=experiment_pb2.SavedGroup(key=group)),
        metadata=client.admin,
    )
    reply = await client.stub.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(page_size=10), metadata=client.reader
    )
    recent = {
        (e.action, json_format.MessageToDict(e.changes)["key"]["after"])
        for e in reply.audit_events
        if e.action in ("metric.created", "saved_group.put")
    }
    assert ("metric.created", key) in recent and ("saved_group.put", group) in recent
    await client.stub.PutSavedGroup(
        experiment_pb2.PutSavedGroupRequest(
            saved_group=experiment_pb2.SavedGroup(key=group, values=[])
        ),
        metadata=client.admin,
    )
    (latest,) = (
        await client.stub.ListAuditEvents(
            experiment_pb2.ListAuditEventsRequest(page_size=1), metadata=client.reader
        )
    ).audit_events
    assert latest.action == "saved_group.put" and latest.actor == client.admin_name
    assert json_format.MessageToDict(latest.changes)["key"]["after"] == group


@pytest_asyncio.fixture(loop_scope="session")
async def announcements(
    redis_client: aioredis.Redis, settings: Settings
) -> AsyncIterator[aioredis.client.PubSub]:
    """A subscription to the configuration channel."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(redis_conn.name(settings, redis_conn.CONFIG_CHANNEL))
    try:
        yield pubsub
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _next_announcement(pubsub: aioredis.client.PubSub) -> bytes:
    async def message() -> bytes | None:
        m = await pubsub.get_message(timeout=0.1)
        return m["data"] if m is not None and m["type"] == "message" else None

    data: bytes = await eventually_async(message)
    return data


async def _config_version(pool: asyncpg.Pool) -> int:
    version: int = await pool.fetchval("SELECT version FROM config_state WHERE id = 1")
    return version


async def _create(client: Client, key: str) -> None:
    await client.stub.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=experiment(key)), metadata=client.admin
    )


async def test_an_experiment_change_bumps_the_config_version_and_announces_it(
    client: Client, pool: asyncpg.Pool, announcements: aioredis.client.PubSub
) -> None:
    before = await _config_version(pool)
    await _create(client, unique("published"))
    assert await _config_version(pool) == before + 1
    assert await _next_announcement(announcements) == str(before + 1).encode()


async def test_a_saved_group_change_bumps_the_config_version_and_announces_it(
    client: Client, pool: asyncpg.Pool, announcements: aioredis.client.PubSub
) -> None:
    before = await _config_version(pool)
    await client.stub.PutSavedGroup(
        experiment_pb2.PutSavedGroupRequest(saved_group=experiment_pb2.SavedGroup(key=unique("g"))),
        metadata=client.admin,
    )
    assert await _config_version(pool) == before + 1
    assert await _next_announcement(announcements) == str(before + 1).encode()


async def test_a_refused_change_commits_and_announces_nothing(
    client: Client, pool: asyncpg.Pool, announcements: aioredis.client.PubSub
) -> None:
    key = unique("refused")
    await _create(client, key)
    created = await _config_version(pool)
    assert await _next_announcement(announcements) == str(created).encode()
    await failure(
        client.stub.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=experiment(key)),
            metadata=client.admin,
        )
    )
    assert await _config_version(pool) == created
    # The next announcement is that of the next accepted change: none came in between.
    await _create(client, unique("accepted"))
    assert await _next_announcement(announcements) == str(created + 1).encode()


def _metric_update(
    client: Client, patch: experiment_pb2.Metric, *paths: str, metadata: Any = None
) -> Any:
    """The UpdateMetric call (await it for the reply, or give it to `failure`)."""
    return client.stub.UpdateMetric(
        experiment_pb2.UpdateMetricRequest(metric=patch, update_mask=FieldMask(paths=list(paths))),
        metadata=metadata or client.admin,
    )


async def test_update_metric_changes_the_masked_fields_only(client: Client) -> None:
    key = unique("editable")
    await _created_metric(client, key)
    patch = experiment_pb2.Metric(key=key, name="p95 latency (ms)", quantile=0.5)
    patch.direction = experiment_pb2.DIRECTION_INCREASE
    updated = await _metric_update(client, patch, "name", "direction")
    assert updated.metric.name == "p95 latency (ms)"
    assert updated.metric.direction == experiment_pb2.DIRECTION_INCREASE
    assert updated.metric.quantile == 0.95  # not in the mask
    stored = await client.stub.GetMetric(
        experiment_pb2.GetMetricRequest(key=key), metadata=client.reader
    )
    assert stored.metric == updated.metric


async def test_a_metric_update_is_audited_field_by_field(client: Client) -> None:
    key = unique("audited-edit")
    await _created_metric(client, key)
    await _metric_update(client, experiment_pb2.Metric(key=key, name="p95 latency (ms)"), "name")
    (latest,) = (
        await client.stub.ListAuditEvents(
            experiment_pb2.ListAuditEventsRequest(page_size=1), metadata=client.reader
        )
    ).audit_events
    changes = json_format.MessageToDict(latest.changes)
    assert latest.action == "metric.updated" and latest.actor == client.admin_name
    assert changes["name"] == {"before": "p95 latency", "after": "p95 latency (ms)"}
    assert changes["key"]["after"] == key and "quantile" not in changes


@pytest.mark.parametrize(
    "paths", [["key"], ["nope"], []], ids=["the key", "no such field", "empty mask"]
)
async def test_a_metric_update_mask_naming_what_cannot_change_is_invalid_argument(
    client: Client, paths: list[str]
) -> None:
    key = unique("fixed")
    await _created_metric(client, key)
    code, violations = await failure(_metric_update(client, experiment_pb2.Metric(key=key), *paths))
    assert code is Code.INVALID_ARGUMENT and "update_mask" in violations


async def test_an_invalid_metric_update_names_the_field(client: Client) -> None:
    key = unique("fixed")
    await _created_metric(client, key)
    patch = experiment_pb2.Metric(key=key, source=experiment_pb2.MetricSource(event_name="x"))
    code, violations = await failure(_metric_update(client, patch, "source.measure"))
    assert code is Code.INVALID_ARGUMENT and "metric.source.measure" in violations


async def test_updating_an_unknown_metric_is_not_found(client: Client) -> None:
    code, _ = await failure(_metric_update(client, experiment_pb2.Metric(key="no-such"), "name"))
    assert code is Code.NOT_FOUND


async def test_a_read_key_cannot_update_a_metric(client: Client) -> None:
    key = unique("fixed")
    await _created_metric(client, key)
    patch = experiment_pb2.Metric(key=key, name="renamed")
    code, _ = await failure(_metric_update(client, patch, "name", metadata=client.reader))
    assert code is Code.PERMISSION_DENIED
