"""ExperimentService's metric catalog, saved groups, audit log and change announcements, over gRPC
against the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from exp_server import Client, experiment, failure, serving, unique
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask

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


async def test_metric_catalog_create_get_list(client: Client) -> None:
    keys = sorted(unique("metric") for _ in range(3))
    for key in keys:
        created = await client.stub.CreateMetric(
            experiment_pb2.CreateMetricRequest(metric=metric(key)), metadata=client.admin
        )
        assert created.metric.HasField("create_time")
    got = await client.stub.GetMetric(
        experiment_pb2.GetMetricRequest(key=keys[0]), metadata=client.reader
    )
    assert got.metric.quantile == 0.95
    seen: list[str] = []
    token = ""
    while True:
        page = await client.stub.ListMetrics(
            experiment_pb2.ListMetricsRequest(page_size=2, page_token=token), metadata=client.reader
        )
        seen.extend(m.key for m in page.metrics)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and set(keys) <= set(seen)

    code, _ = await failure(
        client.stub.CreateMetric(
            experiment_pb2.CreateMetricRequest(metric=metric(keys[0])), metadata=client.admin
        )
    )
    assert code is Code.ALREADY_EXISTS
    code, _ = await failure(
        client.stub.GetMetric(
            experiment_pb2.GetMetricRequest(key="no-such-metric"), metadata=client.reader
        )
    )
    assert code is Code.NOT_FOUND
    ratio = metric(unique("ratio"))
    ratio.type = experiment_pb2.METRIC_TYPE_RATIO
    ratio.quantile = 0
    code, violations = await failure(
        client.stub.CreateMetric(
            experiment_pb2.CreateMetricRequest(metric=ratio), metadata=client.admin
        )
    )
    assert code is Code.INVALID_ARGUMENT and "metric.denominator.event_name" in violations
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


async def test_saved_groups_are_stored_as_json_arrays(client: Client, pool: asyncpg.Pool) -> None:
    key = unique("beta")
    group = json_format.ParseDict(
        {"key": key, "values": ["u1", "u2", 7]}, experiment_pb2.SavedGroup()
    )
    stored = await client.stub.PutSavedGroup(
        experiment_pb2.PutSavedGroupRequest(saved_group=group), metadata=client.admin
    )
    assert stored.saved_group.HasField("update_time")
    members = await pool.fetchval("SELECT members::text FROM saved_groups WHERE key = $1", key)
    assert json.loads(members) == ["u1", "u2", 7]
    group.values.pop()
    await client.stub.PutSavedGroup(
        experiment_pb2.PutSavedGroupRequest(saved_group=group), metadata=client.admin
    )
    listed = await client.stub.ListSavedGroups(
        experiment_pb2.ListSavedGroupsRequest(page_size=1000), metadata=client.reader
    )
    mine = [g for g in listed.saved_groups if g.key == key]
    assert [v.string_value for v in mine[0].values] == ["u1", "u2"]
    bad = json_format.ParseDict({"key": key, "values": [{"a": 1}]}, experiment_pb2.SavedGroup())
    code, violations = await failure(
        client.stub.PutSavedGroup(
            experiment_pb2.PutSavedGroupRequest(saved_group=bad), metadata=client.admin
        )
    )
    assert code is Code.INVALID_ARGUMENT and "saved_group.values[0]" in violations


async def test_audit_log_records_who_what_and_why(client: Client) -> None:
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
    events = list(reply.audit_events)
    assert [e.action for e in events] == [
        "experiment.archived",
        "experiment.stopped",
        "experiment.started",
        "experiment.created",
    ]
    assert {e.actor for e in events} == {client.admin_name}
    assert {e.experiment_key for e in events} == {key}
    assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
    assert all(e.HasField("time") for e in events)
    changes = [json_format.MessageToDict(e.changes) for e in events]
    archived, stopped, started, created = changes
    assert archived["status"] == {
        "before": "EXPERIMENT_STATUS_STOPPED",
        "after": "EXPERIMENT_STATUS_ARCHIVED",
    }
    assert stopped["status"]["after"] == "EXPERIMENT_STATUS_STOPPED"
    assert stopped["details"] == {"rule": "guardrail_harm", "p_value": 0.001}
    assert events[1].reason == "guardrail harm on latency"
    assert started["status"] == {
        "before": "EXPERIMENT_STATUS_DRAFT",
        "after": "EXPERIMENT_STATUS_RUNNING",
    }
    assert created["key"] == {"before": None, "after": key}

    paged = await stub.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(experiment_key=key, page_size=3),
        metadata=client.reader,
    )
    rest = await stub.ListAuditEvents(
        experiment_pb2.ListAuditEventsRequest(
            experiment_key=key, page_size=3, page_token=paged.next_page_token
        ),
        metadata=client.reader,
    )
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


async def _next_message(pubsub: aioredis.client.PubSub, wait_s: float = 5.0) -> bytes:
    async with asyncio.timeout(wait_s):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None and message["type"] == "message":
                data: bytes = message["data"]
                return data


async def test_each_change_bumps_config_version_and_is_published(
    client: Client, pool: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings
) -> None:
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(redis_conn.name(settings, redis_conn.CONFIG_CHANNEL))
    try:
        before = await pool.fetchval("SELECT version FROM config_state WHERE id = 1")
        key = unique("published")
        await client.stub.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=experiment(key)),
            metadata=client.admin,
        )
        after_create = await pool.fetchval("SELECT version FROM config_state WHERE id = 1")
        assert after_create == before + 1
        assert await _next_message(pubsub) == str(after_create).encode()

        await client.stub.PutSavedGroup(
            experiment_pb2.PutSavedGroupRequest(
                saved_group=experiment_pb2.SavedGroup(key=unique("g"))
            ),
            metadata=client.admin,
        )
        after_group = await pool.fetchval("SELECT version FROM config_state WHERE id = 1")
        assert after_group == after_create + 1
        assert await _next_message(pubsub) == str(after_group).encode()

        # A refused change commits nothing and announces nothing.
        await failure(
            client.stub.CreateExperiment(
                experiment_pb2.CreateExperimentRequest(experiment=experiment(key)),
                metadata=client.admin,
            )
        )
        assert await pool.fetchval("SELECT version FROM config_state WHERE id = 1") == after_group
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_update_metric_changes_the_masked_fields_only_and_is_audited(
    client: Client,
) -> None:
    key = unique("editable")
    await client.stub.CreateMetric(
        experiment_pb2.CreateMetricRequest(metric=metric(key)), metadata=client.admin
    )
    patch = experiment_pb2.Metric(key=key, name="p95 latency (ms)", quantile=0.5)
    patch.direction = experiment_pb2.DIRECTION_INCREASE
    updated = await client.stub.UpdateMetric(
        experiment_pb2.UpdateMetricRequest(
            metric=patch, update_mask=FieldMask(paths=["name", "direction"])
        ),
        metadata=client.admin,
    )
    assert updated.metric.name == "p95 latency (ms)"
    assert updated.metric.direction == experiment_pb2.DIRECTION_INCREASE
    assert updated.metric.quantile == 0.95  # not in the mask
    stored = await client.stub.GetMetric(
        experiment_pb2.GetMetricRequest(key=key), metadata=client.reader
    )
    assert stored.metric == updated.metric
    (latest,) = (
        await client.stub.ListAuditEvents(
            experiment_pb2.ListAuditEventsRequest(page_size=1), metadata=client.reader
        )
    ).audit_events
    changes = json_format.MessageToDict(latest.changes)
    assert latest.action == "metric.updated" and latest.actor == client.admin_name
    assert changes["name"] == {"before": "p95 latency", "after": "p95 latency (ms)"}
    assert changes["key"]["after"] == key and "quantile" not in changes


async def test_update_metric_refuses_what_it_cannot_change(client: Client) -> None:
    key = unique("fixed")
    await client.stub.CreateMetric(
        experiment_pb2.CreateMetricRequest(metric=metric(key)), metadata=client.admin
    )
    for paths, field in ((["key"], "update_mask"), (["nope"], "update_mask"), ([], "update_mask")):
        code, violations = await failure(
            client.stub.UpdateMetric(
                experiment_pb2.UpdateMetricRequest(
                    metric=experiment_pb2.Metric(key=key), update_mask=FieldMask(paths=paths)
                ),
                metadata=client.admin,
            )
        )
        assert code is Code.INVALID_ARGUMENT and field in violations, paths
    code, violations = await failure(
        client.stub.UpdateMetric(
            experiment_pb2.UpdateMetricRequest(
                metric=experiment_pb2.Metric(
                    key=key, source=experiment_pb2.MetricSource(event_name="llm_call")
                ),
                update_mask=FieldMask(paths=["source.measure"]),
            ),
            metadata=client.admin,
        )
    )
    assert code is Code.INVALID_ARGUMENT and "metric.source.measure" in violations
    code, _ = await failure(
        client.stub.UpdateMetric(
            experiment_pb2.UpdateMetricRequest(
                metric=experiment_pb2.Metric(key="no-such"), update_mask=FieldMask(paths=["name"])
            ),
            metadata=client.admin,
        )
    )
    assert code is Code.NOT_FOUND
    code, _ = await failure(
        client.stub.UpdateMetric(
            experiment_pb2.UpdateMetricRequest(
                metric=experiment_pb2.Metric(key=key), update_mask=FieldMask(paths=["name"])
            ),
            metadata=client.reader,
        )
    )
    assert code is Code.PERMISSION_DENIED
