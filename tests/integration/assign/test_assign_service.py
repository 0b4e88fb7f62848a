"""AssignmentService in a real process: reasons, payloads, hashing attributes, refusals, and
agreement with local evaluation. One process serves the module; each test stores its own
experiments and waits until the process answers from them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from assign_rows import ATTRIBUTES, experiment, put, serves_version
from google.protobuf import json_format

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict.local import LocalEvaluator
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason
Code = grpc.StatusCode


def _request(unit: str, keys: list[str], **attributes: object) -> assignment_pb2.AssignRequest:
    request = assignment_pb2.AssignRequest(
        unit_id=unit, experiment_keys=keys, skip_exposure_logging=True
    )
    request.attributes.update(attributes)
    return request


def _bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@dataclass(frozen=True)
class Served:
    """The module's assignment process, its keys, and where its configuration is stored."""

    service: RunningService
    channel: grpc.aio.Channel
    assign_key: str
    read_key: str
    db: tuple[asyncpg.Pool, aioredis.Redis, Settings]

    @property
    def stub(self) -> assignment_pb2_grpc.AssignmentServiceStub:
        return assignment_pb2_grpc.AssignmentServiceStub(self.channel)

    async def store(self, experiments: Sequence[experiment_pb2.Experiment], **options: Any) -> None:
        """Stores experiments (as `assign_rows.put`) and waits until the process uses them."""
        version = await put(*self.db, experiments, **options)
        md = _bearer(self.assign_key)
        await eventually_async(lambda: serves_version(self.stub, md, version))

    async def assign(
        self, unit: str, keys: list[str], **attributes: object
    ) -> list[assignment_pb2.Assignment]:
        reply = await self.stub.Assign(
            _request(unit, keys, **attributes), metadata=_bearer(self.assign_key)
        )
        return list(reply.assignments)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(
    settings: Settings,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    make_key: Callable[[Role], Awaitable[str]],
) -> AsyncIterator[Served]:
    assign_key, read_key = await make_key(Role.ASSIGN), await make_key(Role.READ)
    service = await asyncio.to_thread(
        start_service_process, settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT"
    )
    try:
        async with grpc.aio.insecure_channel(service.target) as channel:
            yield Served(service, channel, assign_key, read_key, (pool, redis_client, settings))
    finally:
        await asyncio.to_thread(service.stop)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def why(served: Served) -> str:
    """Experiments giving each reason to the unit "qa-user"; returns their key prefix."""
    p = "why-" + secrets.token_hex(3)
    await served.store([
        experiment(f"{p}-open"),
        experiment(f"{p}-fr-only", targeting={"country": "DE"}),
        experiment(f"{p}-forced", forced={"qa-user": "v1"}),
        experiment(f"{p}-nobody", coverage=0.0),
        experiment(f"{p}-by-org", hash_attribute="org_id"),
    ])  # fmt: skip
    await served.store([experiment(f"{p}-stopped")], status="stopped")
    return p


async def test_each_result_says_why(served: Served, why: str) -> None:
    names = ["open", "fr-only", "forced", "nobody", "stopped", "by-org", "missing"]
    keys = [f"{why}-{name}" for name in names]
    results = await served.assign("qa-user", keys, **ATTRIBUTES)
    assert [a.experiment_key for a in results] == keys
    assert [a.reason for a in results] == [
        R.ASSIGNMENT_REASON_ASSIGNED,
        R.ASSIGNMENT_REASON_NOT_TARGETED,
        R.ASSIGNMENT_REASON_FORCED,
        R.ASSIGNMENT_REASON_NOT_IN_TRAFFIC,
        R.ASSIGNMENT_REASON_NOT_RUNNING,
        R.ASSIGNMENT_REASON_ASSIGNED,
        R.ASSIGNMENT_REASON_UNKNOWN_KEY,
    ]


async def test_the_answer_names_the_configuration_version(served: Served, why: str) -> None:
    reply = await served.stub.Assign(
        _request("qa-user", [f"{why}-open"]), metadata=_bearer(served.assign_key)
    )
    current = await served.db[0].fetchval("SELECT version FROM config_state")
    assert 0 < reply.config_version <= current


async def test_a_forced_unit_gets_its_variant_and_its_payload(served: Served, why: str) -> None:
    [forced] = await served.assign("qa-user", [f"{why}-forced"], **ATTRIBUTES)
    assert forced.variant_key == "v1" and forced.in_experiment
    assert json_format.MessageToDict(forced.payload) == {"model": "m1", "temperature": 0.2}


async def test_a_unit_outside_the_experiment_gets_no_payload(served: Served, why: str) -> None:
    [untargeted] = await served.assign("qa-user", [f"{why}-fr-only"], **ATTRIBUTES)
    assert not untargeted.in_experiment and not untargeted.HasField("payload")


async def test_units_of_one_organisation_share_a_variant(served: Served, why: str) -> None:
    variants = set()
    for i in range(20):
        [result] = await served.assign(f"u{i}", [f"{why}-by-org"], org_id="acme")
        variants.add(result.variant_key)
    assert len(variants) == 1


async def test_a_unit_without_the_hash_attribute_is_told_so(served: Served, why: str) -> None:
    [result] = await served.assign("u1", [f"{why}-by-org"])
    assert result.reason == R.ASSIGNMENT_REASON_NO_HASH_ATTRIBUTE


@pytest.mark.parametrize("unit", ["", "x" * 257], ids=["empty", "longer than 256 bytes"])
async def test_a_bad_unit_id_is_invalid_argument(served: Served, unit: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.stub.Assign(_request(unit, []), metadata=_bearer(served.assign_key))
    assert caught.value.code() == Code.INVALID_ARGUMENT


async def test_a_read_key_may_not_assign(served: Served) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.stub.Assign(_request("u", []), metadata=_bearer(served.read_key))
    assert caught.value.code() == Code.PERMISSION_DENIED


async def test_an_unknown_key_is_unauthenticated(served: Served) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.stub.Assign(_request("u", []), metadata=_bearer("nope"))
    assert caught.value.code() == Code.UNAUTHENTICATED


async def test_bytes_that_are_no_assign_request_are_invalid_argument(served: Served) -> None:
    raw = served.channel.unary_unary("/verdict.v1.AssignmentService/Assign")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(b"\x0a\x05ab", metadata=_bearer(served.assign_key))  # a truncated string
    assert caught.value.code() == Code.INVALID_ARGUMENT
    assert "request" in (caught.value.details() or "")


async def test_a_read_key_may_follow_the_snapshot(served: Served) -> None:
    reply = await served.stub.GetConfigSnapshot(
        assignment_pb2.GetConfigSnapshotRequest(), metadata=_bearer(served.read_key)
    )
    assert reply.snapshot.version > 0


async def test_server_agrees_with_local_evaluation_on_2000_units(served: Served) -> None:
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
    await served.store(experiments, saved_groups={f"{p}-beta": ["acme", 3]})
    keys = [e.key for e in experiments]
    countries, plans, orgs = ["FR", "DE", "US"], ["free", "pro"], ["acme", "umbrella", 3]
    async with LocalEvaluator(served.service.target, served.assign_key) as local:
        for i in range(2000):
            attributes = {
                "country": countries[i % 3],
                "plan": plans[i % 2],
                "org_id": orgs[i % 3],
                "age": i % 60,
                "app_version": f"2.{i % 4}.0",
            }
            remote = await served.assign(f"u-{i}", keys, **attributes)
            mine = local.assign(f"u-{i}", attributes, keys)
            got = [(a.experiment_key, a.variant_key, R.Name(a.reason)) for a in remote]
            want = [
                (a.experiment_key, a.variant_key or "", "ASSIGNMENT_REASON_" + a.reason.name)
                for a in mine
            ]
            assert got == want, f"unit u-{i}"


async def test_nobody_is_in_two_experiments_of_one_layer(served: Served) -> None:
    p = "layer-" + secrets.token_hex(3)
    first = experiment(f"{p}-l0", layer=(p, 0.0, 0.4))
    second = experiment(f"{p}-l1", layer=(p, 0.4, 1.0), weights=(0.1, 0.9))
    await served.store([first, second])
    both = 0
    for i in range(2000):
        l0, l1 = await served.assign(f"u-{i}", [first.key, second.key])
        both += l0.in_experiment and l1.in_experiment
    assert both == 0
