"""AssignmentService in a real process: reasons, errors, and agreement with local evaluation."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from assign_rows import ATTRIBUTES, experiment, put
from google.protobuf import json_format

from support.processes import RunningService
from verdict.local import LocalEvaluator
from verdict.v1 import assignment_pb2, assignment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason


def _request(unit: str, keys: list[str], **attributes: object) -> assignment_pb2.AssignRequest:
    request = assignment_pb2.AssignRequest(
        unit_id=unit, experiment_keys=keys, skip_exposure_logging=True
    )
    request.attributes.update(attributes)
    return request


async def test_each_result_says_why(
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: Settings,
    make_key: Callable[..., object],
    start_service: Callable[..., RunningService],
) -> None:
    p = "why-" + secrets.token_hex(3)
    await put(pool, redis_client, settings, [
        experiment(f"{p}-open"),
        experiment(f"{p}-fr-only", targeting={"country": "DE"}),
        experiment(f"{p}-forced", forced={"qa-user": "v1"}),
        experiment(f"{p}-nobody", coverage=0.0),
        experiment(f"{p}-by-org", hash_attribute="org_id"),
    ])  # fmt: skip
    await put(pool, redis_client, settings, [experiment(f"{p}-stopped")], status="stopped")
    key = await make_key(Role.ASSIGN)  # type: ignore[misc]
    service = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    keys = [f"{p}-{k}" for k in ("open", "fr-only", "forced", "nobody", "stopped", "by-org")]
    keys.append(f"{p}-missing")
    async with grpc.aio.insecure_channel(service.target) as channel:
        stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
        md = (("authorization", f"Bearer {key}"),)
        reply = await stub.Assign(_request("qa-user", keys, **ATTRIBUTES), metadata=md)
        reasons = [a.reason for a in reply.assignments]
        assert [a.experiment_key for a in reply.assignments] == keys
        assert reasons == [
            R.ASSIGNMENT_REASON_ASSIGNED,
            R.ASSIGNMENT_REASON_NOT_TARGETED,
            R.ASSIGNMENT_REASON_FORCED,
            R.ASSIGNMENT_REASON_NOT_IN_TRAFFIC,
            R.ASSIGNMENT_REASON_NOT_RUNNING,
            R.ASSIGNMENT_REASON_ASSIGNED,
            R.ASSIGNMENT_REASON_UNKNOWN_KEY,
        ]
        assert reply.config_version > 0
        forced = reply.assignments[2]
        assert forced.variant_key == "v1" and forced.in_experiment
        assert json_format.MessageToDict(forced.payload) == {"model": "m1", "temperature": 0.2}
        assert not reply.assignments[1].in_experiment and not reply.assignments[1].HasField(
            "payload"
        )
        # Hashing on org_id: every unit of one organisation gets the same variant.
        variants = set()
        for i in range(20):
            r = await stub.Assign(_request(f"u{i}", [f"{p}-by-org"], org_id="acme"), metadata=md)
            variants.add(r.assignments[0].variant_key)
        assert len(variants) == 1
        r = await stub.Assign(_request("u1", [f"{p}-by-org"]), metadata=md)
        assert r.assignments[0].reason == R.ASSIGNMENT_REASON_NO_HASH_ATTRIBUTE


async def test_bad_requests_and_roles_are_refused(
    make_key: Callable[..., object], start_service: Callable[..., RunningService]
) -> None:
    assign_key = await make_key(Role.ASSIGN)  # type: ignore[misc]
    read_key = await make_key(Role.READ)  # type: ignore[misc]
    service = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    async with grpc.aio.insecure_channel(service.target) as channel:
        stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
        cases = [
            (_request("", []), assign_key, grpc.StatusCode.INVALID_ARGUMENT),
            (_request("x" * 257, []), assign_key, grpc.StatusCode.INVALID_ARGUMENT),
            (_request("u", []), read_key, grpc.StatusCode.PERMISSION_DENIED),
            (_request("u", []), "nope", grpc.StatusCode.UNAUTHENTICATED),
        ]
        for request, key, code in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Assign(request, metadata=(("authorization", f"Bearer {key}"),))
            assert caught.value.code() == code
        # Bytes that are no AssignRequest (a truncated string field) are the caller's error.
        raw = channel.unary_unary("/verdict.v1.AssignmentService/Assign")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(b"\x0a\x05ab", metadata=(("authorization", f"Bearer {assign_key}"),))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request" in (caught.value.details() or "")
        # The read role may follow the snapshot (dashboards), not assign.
        reply = await stub.GetConfigSnapshot(
            assignment_pb2.GetConfigSnapshotRequest(),
            metadata=(("authorization", f"Bearer {read_key}"),),
        )
        assert reply.snapshot.version > 0


async def test_server_agrees_with_local_evaluation_on_2000_units(
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: Settings,
    make_key: Callable[..., object],
    start_service: Callable[..., RunningService],
) -> None:
    p = "agree-" + secrets.token_hex(3)
    experiments = [
        experiment(f"{p}-plain", weights=(0.2, 0.3, 0.5)),
        experiment(f"{p}-half", coverage=0.5),
        experiment(f"{p}-l0", layer=("layer-" + p, 0.0, 0.4)),
        experiment(f"{p}-l1", layer=("layer-" + p, 0.4, 1.0), weights=(0.1, 0.9)),
        experiment(f"{p}-country", targeting={"country": {"$in": ["FR", "DE"]}}),
        experiment(f"{p}-version", targeting={"app_version": {"$vgte": "2.1.0"}}),
        experiment(f"{p}-group", targeting={"org_id": {"$inGroup": f"{p}-beta"}}),
        experiment(f"{p}-or", targeting={"$or": [{"plan": "pro"}, {"age": {"$gt": 30}}]}),
        experiment(f"{p}-org", hash_attribute="org_id"),
        experiment(f"{p}-forced", forced={"u-7": "v1", "u-8": "v0"}),
    ]
    await put(pool, redis_client, settings, experiments, saved_groups={f"{p}-beta": ["acme", 3]})
    keys = [e.key for e in experiments]
    key = await make_key(Role.ASSIGN)  # type: ignore[misc]
    service = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    md = (("authorization", f"Bearer {key}"),)
    countries, plans, orgs = ["FR", "DE", "US"], ["free", "pro"], ["acme", "umbrella", 3]
    async with (
        LocalEvaluator(service.target, key) as local,
        grpc.aio.insecure_channel(service.target) as channel,
    ):
        stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
        for i in range(2000):
            attributes = {
                "country": countries[i % 3],
                "plan": plans[i % 2],
                "org_id": orgs[i % 3],
                "age": i % 60,
                "app_version": f"2.{i % 4}.0",
            }
            reply = await stub.Assign(_request(f"u-{i}", keys, **attributes), metadata=md)
            mine = local.assign(f"u-{i}", attributes, keys)
            got = [(a.experiment_key, a.variant_key, R.Name(a.reason)) for a in reply.assignments]
            want = [
                (a.experiment_key, a.variant_key or "", "ASSIGNMENT_REASON_" + a.reason.name)
                for a in mine
            ]
            assert got == want, f"unit u-{i}"
        # Layers: nobody is in both experiments of one layer.
        both = 0
        for i in range(2000):
            l0, l1 = local.assign(f"u-{i}", {}, [f"{p}-l0", f"{p}-l1"])
            both += l0.in_experiment and l1.in_experiment
        assert both == 0
