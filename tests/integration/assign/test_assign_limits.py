"""Assign, in a real process, refuses requests over its limits with INVALID_ARGUMENT naming the
field: attributes too large or too deep (the limits assignment.proto promises) and unit ids with
a NUL character (which PostgreSQL cannot store, so the unit's exposure would be lost)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from support.processes import RunningService
from verdict.v1 import assignment_pb2, assignment_pb2_grpc
from verdict_assignment.assign.fastpath import MAX_ATTRIBUTES_BYTES, MAX_ATTRIBUTES_DEPTH
from verdict_platform.roles import Role
from verdict_platform.status import field_violations

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _deep(levels: int) -> dict[str, Any]:
    value: Any = "x"
    for _ in range(levels - 1):
        value = {"k": value}
    return {"a": value}


def _request(unit_id: str, attributes: dict[str, Any]) -> assignment_pb2.AssignRequest:
    request = assignment_pb2.AssignRequest(unit_id=unit_id, skip_exposure_logging=True)
    request.attributes.update(attributes)
    return request


async def test_requests_over_the_limits_are_refused_naming_the_field(
    make_key: Callable[..., object], start_service: Callable[..., RunningService]
) -> None:
    key = await make_key(Role.ASSIGN)  # type: ignore[misc]
    metadata = (("authorization", f"Bearer {key}"),)
    service = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    cases = [
        (_request("u-1", {"blob": "x" * MAX_ATTRIBUTES_BYTES}), "attributes"),
        (_request("u-1", _deep(MAX_ATTRIBUTES_DEPTH + 1)), "attributes"),
        (_request("u\x00-1", {"country": "FR"}), "unit_id"),
    ]
    async with grpc.aio.insecure_channel(service.target) as channel:
        stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
        for request, field in cases:
            call = stub.Assign(request, metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            status = await rpc_status.aio.from_call(call)
            assert status is not None and list(field_violations(status)) == [field]
        # Just within the limits: answered.
        within = _request("u-1", {**_deep(MAX_ATTRIBUTES_DEPTH), "blob": "x" * 1000})
        reply = await stub.Assign(within, metadata=metadata)
        assert reply is not None
