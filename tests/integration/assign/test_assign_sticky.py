"""Sticky assignment across a weight change, and exposures reaching ingest (batched, retried,
flushed on graceful shutdown)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from assign_rows import experiment, put
from fake_ingest import FakeIngest

from support.processes import RunningService
from verdict.v1 import assignment_pb2, assignment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason


async def _wait_for(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _wait_for_version(current: Callable[[], Awaitable[int]], version: int) -> None:
    deadline = asyncio.get_running_loop().time() + 3
    while await current() < version:
        assert asyncio.get_running_loop().time() < deadline, "configuration not reloaded"
        await asyncio.sleep(0.02)


async def test_units_keep_their_variant_when_weights_change(
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: Settings,
    make_key: Callable[..., object],
    start_service: Callable[..., RunningService],
) -> None:
    key_name = "sticky-" + secrets.token_hex(3)
    await put(pool, redis_client, settings, [experiment(key_name, segments=["country"])])
    ingest = FakeIngest(pool, fail_first=1)
    await ingest.server.start()
    try:
        api_key = await make_key(Role.ASSIGN)  # type: ignore[misc]
        service = start_service(
            "verdict_assignment",
            "VERDICT_ASSIGNMENT_PORT",
            VERDICT_INGEST_TARGET=ingest.target,
            VERDICT_SERVICE_API_KEY="unused-by-the-fake",
        )
        md = (("authorization", f"Bearer {api_key}"),)
        async with grpc.aio.insecure_channel(service.target) as channel:
            stub = assignment_pb2_grpc.AssignmentServiceStub(channel)

            async def assign(unit: str) -> assignment_pb2.Assignment:
                request = assignment_pb2.AssignRequest(unit_id=unit, experiment_keys=[key_name])
                request.attributes.update({"country": "FR"})
                reply = await stub.Assign(request, metadata=md)
                return reply.assignments[0]

            old_units = [f"old-{i}" for i in range(400)]
            before = {u: (await assign(u)).variant_key for u in old_units}
            for u in old_units[:50]:  # repeats are not exposures again
                await assign(u)
            # Exposures arrive in a few batches despite the first call failing (retried).
            await _wait_for(lambda: len(ingest.exposures) >= 400)
            assert len(ingest.exposures) == 400
            assert ingest.calls < 40
            assert ingest.request_ids[0] == ingest.request_ids[1]  # a retry keeps its id
            assert dict(ingest.exposures[0].segments) == {"country": "FR"}

            # Weights change while running: allocation version 2.
            changed = experiment(key_name, weights=(0.1, 0.9), segments=["country"])
            version = await put(pool, redis_client, settings, [changed], allocation_version=2)

            async def current_version() -> int:
                request = assignment_pb2.AssignRequest(unit_id="probe", skip_exposure_logging=True)
                return (await stub.Assign(request, metadata=md)).config_version

            await _wait_for_version(current_version, version)

            after = {u: await assign(u) for u in old_units}
            assert {u: a.variant_key for u, a in after.items()} == before
            sticky = [u for u, a in after.items() if a.reason == R.ASSIGNMENT_REASON_STICKY]
            assert 100 < len(sticky) < 220  # hashes in [0.1, 0.5): v0 before, v1 by the new split
            assert all(after[u].variant_key == "v0" for u in sticky)

            new_units = [f"new-{i}" for i in range(1000)]
            first = {u: (await assign(u)).variant_key for u in new_units}
            share = sum(v == "v0" for v in first.values()) / len(new_units)
            assert abs(share - 0.1) < 3 * (0.1 * 0.9 / 1000) ** 0.5
            second = {u: (await assign(u)).variant_key for u in new_units}
            assert second == first

            # Graceful shutdown flushes what is buffered.
            last = [f"last-{i}" for i in range(30)]
            for u in last:
                await assign(u)
        assert await asyncio.to_thread(service.stop) == 0  # the fake ingest runs on this loop
        got = {e.unit_id for e in ingest.exposures}
        assert set(last) <= got
        stored = await pool.fetchval(
            "SELECT count(*) FROM exposures WHERE experiment_key = $1", key_name
        )
        assert stored == 400 + 1000 + 30
    finally:
        await ingest.server.stop(None)
