"""Sticky assignment across a weight change, and exposures reaching ingest (batched, retried,
flushed on graceful shutdown): the assignment service as a real process, ingest as an in-test
IngestService (`fake_ingest`) that stores what it receives and records every call."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from assign_rows import experiment, put, serves_version
from fake_ingest import FakeIngest

from support.eventually import eventually, eventually_async
from support.processes import RunningService, refuses_connections, start_service_process
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason
MakeKey = Callable[[Role], Awaitable[str]]
Db = tuple[asyncpg.Pool, aioredis.Redis, Settings]


@dataclass(frozen=True)
class Served:
    """An assignment process sending its exposures to a FakeIngest on this test's loop."""

    service: RunningService
    ingest: FakeIngest
    stub: assignment_pb2_grpc.AssignmentServiceStub
    metadata: tuple[tuple[str, str], ...]

    async def assign(self, key: str, unit: str) -> assignment_pb2.Assignment:
        request = assignment_pb2.AssignRequest(unit_id=unit, experiment_keys=[key])
        request.attributes.update({"country": "FR", "plan": "pro"})
        reply = await self.stub.Assign(request, metadata=self.metadata, timeout=10)
        return reply.assignments[0]

    async def running(
        self,
        given: Db,
        e: experiment_pb2.Experiment,
        allocation_version: int = 1,
    ) -> str:
        """Stores `e` as running and waits until the service answers from it."""
        version = await put(*given, [e], allocation_version=allocation_version)
        await eventually_async(lambda: serves_version(self.stub, self.metadata, version))
        return e.key


@asynccontextmanager
async def serving(
    settings: Settings, pool: asyncpg.Pool, make_key: MakeKey
) -> AsyncIterator[Served]:
    ingest = FakeIngest(pool)
    await ingest.server.start()
    key = await make_key(Role.ASSIGN)
    try:
        service = await asyncio.to_thread(  # the fake ingest must keep running on this loop
            start_service_process,
            settings,
            "verdict_assignment",
            "VERDICT_ASSIGNMENT_PORT",
            {"VERDICT_INGEST_TARGET": ingest.target, "VERDICT_SERVICE_API_KEY": "unused"},
        )
        try:
            async with grpc.aio.insecure_channel(service.target) as channel:
                stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
                yield Served(service, ingest, stub, (("authorization", f"Bearer {key}"),))
        finally:
            ingest.release()
            await asyncio.to_thread(service.stop)
    finally:
        await ingest.server.stop(None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(
    settings: Settings, pool: asyncpg.Pool, make_key: MakeKey
) -> AsyncIterator[Served]:
    async with serving(settings, pool, make_key) as s:
        yield s


@pytest.fixture
def db(pool: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings) -> Db:
    """Where `running` stores configuration."""
    return pool, redis_client, settings


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


async def test_first_assignments_reach_ingest_once_each(served: Served, db: Db) -> None:
    key = await served.running(db, experiment(unique("once")))
    units = [f"u-{i}" for i in range(200)]
    for unit in units:
        await served.assign(key, unit)
    for unit in units[:50]:  # repeats are not exposures again
        await served.assign(key, unit)
    await served.assign(key, "sentinel")  # sent in order: what came before is in by then

    def received() -> list[str]:
        return [e.unit_id for e in served.ingest.received(key)]

    await eventually_async(lambda: "sentinel" in received())
    assert sorted(received()) == sorted([*units, "sentinel"])


async def test_exposures_are_sent_in_batches(served: Served, db: Db) -> None:
    key = await served.running(db, experiment(unique("batched")))
    units = [f"u-{i}" for i in range(200)]
    await asyncio.gather(*(served.assign(key, unit) for unit in units))
    await eventually_async(lambda: len(served.ingest.received(key)) >= len(units))
    assert len(served.ingest.calls_with(key)) < len(units)


async def test_a_refused_batch_is_sent_again_under_the_same_request_id(
    served: Served,
    db: Db,
) -> None:
    key = await served.running(db, experiment(unique("retried")))
    served.ingest.refuse_once(key)
    await served.assign(key, "u-1")
    await eventually_async(lambda: served.ingest.received(key))
    first, second = served.ingest.calls_with(key)
    assert first.refused and not second.refused
    assert first.request_id == second.request_id
    assert [e.unit_id for e in second.exposures] == ["u-1"]


async def test_exposures_carry_the_experiments_segments(served: Served, db: Db) -> None:
    key = await served.running(db, experiment(unique("segmented"), segments=["country"]))
    await served.assign(key, "u-1")
    [exposure] = await eventually_async(lambda: served.ingest.received(key))
    assert dict(exposure.segments) == {"country": "FR"}  # `plan` is no segment of it


async def test_units_keep_their_variant_when_weights_change(
    served: Served,
    db: Db,
) -> None:
    before_change = experiment(unique("sticky"), seed="sticky-seed")
    key = await served.running(db, before_change)
    units = [f"old-{i}" for i in range(400)]
    before = {u: (await served.assign(key, u)).variant_key for u in units}
    # Their exposures are stored (the truth behind stickiness) before the weights move.
    await eventually_async(lambda: len(served.ingest.received(key)) >= len(units))

    changed = experiment(key, weights=(0.1, 0.9), seed="sticky-seed")
    await served.running(db, changed, allocation_version=2)
    after = {u: await served.assign(key, u) for u in units}
    assert {u: a.variant_key for u, a in after.items()} == before
    sticky = [u for u, a in after.items() if a.reason == R.ASSIGNMENT_REASON_STICKY]
    assert 100 < len(sticky) < 220  # hashes in [0.1, 0.5): v0 before, v1 by the new split
    assert all(after[u].variant_key == "v0" for u in sticky)


async def test_new_units_follow_the_new_weights_and_keep_their_variant(
    served: Served,
    db: Db,
) -> None:
    moved = experiment(unique("moved"), weights=(0.1, 0.9), seed="moved-seed")
    key = await served.running(db, moved, allocation_version=2)
    units = [f"new-{i}" for i in range(1000)]
    first = {u: (await served.assign(key, u)).variant_key for u in units}
    share = sum(v == "v0" for v in first.values()) / len(units)
    assert abs(share - 0.1) < 3 * (0.1 * 0.9 / len(units)) ** 0.5
    second = {u: (await served.assign(key, u)).variant_key for u in units}
    assert second == first


async def test_graceful_shutdown_sends_the_exposures_still_buffered(
    settings: Settings,
    pool: asyncpg.Pool,
    make_key: MakeKey,
    db: Db,
) -> None:
    async with serving(settings, pool, make_key) as own:
        key = await own.running(db, experiment(unique("flushed")))
        own.ingest.hold_next()
        await own.assign(key, "first")
        await eventually_async(own.ingest.holding.is_set)  # the sender is busy with it
        last = [f"last-{i}" for i in range(30)]
        for unit in last:
            await own.assign(key, unit)
        assert not own.ingest.received(key)  # all of them wait in the service's buffer

        own.service.terminate()
        # Released only once the server stopped listening, i.e. in the service's stop sequence.
        await asyncio.to_thread(eventually, lambda: refuses_connections(own.service.target))
        own.ingest.release()
        assert await asyncio.to_thread(own.service.proc.wait, 30) == 0
        got = {e.unit_id for e in own.ingest.received(key)}
    assert got == {"first", *last}
