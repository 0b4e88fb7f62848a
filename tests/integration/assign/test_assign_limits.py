"""Assign, in a real process, refuses requests over its limits with INVALID_ARGUMENT naming the
field: attributes too large or too deep (the limits assignment.proto promises), more than 100
experiment keys or one over 256 bytes (the contract's default limits), and unit ids with a NUL
character (which PostgreSQL cannot store, so the unit's exposure would be lost)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_status import rpc_status

from support.processes import start_service_process
from verdict.v1 import assignment_pb2, assignment_pb2_grpc
from verdict_assignment.assign.fastpath import MAX_ATTRIBUTES_BYTES, MAX_ATTRIBUTES_DEPTH
from verdict_platform.roles import Role
from verdict_platform.settings import Settings
from verdict_platform.status import field_violations

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _deep(levels: int) -> dict[str, Any]:
    value: Any = "x"
    for _ in range(levels - 1):
        value = {"k": value}
    return {"a": value}


def _request(
    unit_id: str, attributes: dict[str, Any], keys: tuple[str, ...] = ()
) -> assignment_pb2.AssignRequest:
    request = assignment_pb2.AssignRequest(
        unit_id=unit_id, skip_exposure_logging=True, experiment_keys=keys
    )
    request.attributes.update(attributes)
    return request


@dataclass(frozen=True)
class Served:
    stub: assignment_pb2_grpc.AssignmentServiceStub
    metadata: tuple[tuple[str, str], ...]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(
    settings: Settings, make_key: Callable[[Role], Awaitable[str]]
) -> AsyncIterator[Served]:
    key = await make_key(Role.ASSIGN)
    service = await asyncio.to_thread(
        start_service_process, settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT"
    )
    try:
        async with grpc.aio.insecure_channel(service.target) as channel:
            stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
            yield Served(stub, (("authorization", f"Bearer {key}"),))
    finally:
        await asyncio.to_thread(service.stop)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_request("u-1", {"blob": "x" * MAX_ATTRIBUTES_BYTES}), "attributes"),
        (_request("u-1", _deep(MAX_ATTRIBUTES_DEPTH + 1)), "attributes"),
        (_request("u\x00-1", {"country": "FR"}), "unit_id"),
        (_request("u-1", {}, tuple(f"e{i}" for i in range(101))), "experiment_keys"),
        (_request("u-1", {}, ("e", "é" * 129)), "experiment_keys[1]"),
    ],
    ids=[
        "attributes too large",
        "attributes too deep",
        "NUL in the unit id",
        "101 experiment keys",
        "an experiment key over 256 bytes",
    ],
)
async def test_a_request_over_the_limits_is_refused_naming_the_field(
    served: Served, request_: assignment_pb2.AssignRequest, field: str
) -> None:
    call = served.stub.Assign(request_, metadata=served.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = await rpc_status.aio.from_call(call)
    assert status is not None and list(field_violations(status)) == [field]


async def test_a_request_just_within_the_limits_is_answered(served: Served) -> None:
    keys = (*(f"e{i}" for i in range(99)), "é" * 128)  # 100 keys, the longest 256 bytes
    within = _request("u-1", {**_deep(MAX_ATTRIBUTES_DEPTH), "blob": "x" * 1000}, keys)
    reply = await served.stub.Assign(within, metadata=served.metadata)
    assert reply.config_version > 0 and len(reply.assignments) == 100
