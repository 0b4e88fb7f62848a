"""Configuration changes reach every assignment process (and local evaluators) within 1 s."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from assign_rows import experiment, put

from support.processes import RunningService
from verdict.evaluation import Reason
from verdict.local import LocalEvaluator
from verdict.v1 import assignment_pb2, assignment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason


async def test_a_change_reaches_two_processes_within_one_second(
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: Settings,
    make_key: Callable[..., object],
    start_service: Callable[..., RunningService],
) -> None:
    name = "prop-" + secrets.token_hex(3)
    await put(pool, redis_client, settings, [experiment(name)])
    key = await make_key(Role.ASSIGN)  # type: ignore[misc]
    first = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    second = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    md = (("authorization", f"Bearer {key}"),)
    request = assignment_pb2.AssignRequest(
        unit_id="u-1", experiment_keys=[name], skip_exposure_logging=True
    )
    async with (
        grpc.aio.insecure_channel(first.target) as a,
        grpc.aio.insecure_channel(second.target) as b,
        LocalEvaluator(first.target, key) as local,
    ):
        stubs = [assignment_pb2_grpc.AssignmentServiceStub(c) for c in (a, b)]
        for stub in stubs:
            reply = await stub.Assign(request, metadata=md)
            assert reply.assignments[0].reason == R.ASSIGNMENT_REASON_ASSIGNED
        assert local.assign("u-1", {}, [name])[0].reason is Reason.ASSIGNED

        for status, reason in (
            ("stopped", R.ASSIGNMENT_REASON_NOT_RUNNING),
            ("running", R.ASSIGNMENT_REASON_ASSIGNED),
        ):
            started = time.monotonic()
            version = await put(pool, redis_client, settings, [experiment(name)], status=status)
            pending = set(range(len(stubs)))
            while pending:
                assert time.monotonic() - started < 1.0, f"not propagated to {pending}"
                for i in list(pending):
                    reply = await stubs[i].Assign(request, metadata=md)
                    if reply.assignments[0].reason == reason:
                        assert reply.config_version >= version
                        pending.discard(i)
                await asyncio.sleep(0.01)
            await local.wait_for_version(version, wait_s=1.0 - (time.monotonic() - started))
            assert local.assign("u-1", {}, [name])[0].reason.name == R.Name(reason)[18:]
