"""The events writer and the partition functions against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from support.eventually import eventually_async
from verdict_ingest.encoding import COLUMNS, EncodedBatch, EventEncoder
from verdict_ingest.partitions import (
    drop_partitions,
    ensure_partitions,
    maintain_forever,
    plan_for,
)
from verdict_ingest.queue import WriteQueue
from verdict_ingest.validation import TimeWindow
from verdict_ingest.writer import EventWriter
from verdict_platform.errors import Unavailable
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Ts:
    seconds: int
    nanos: int = 0


@dataclass
class Ev:
    """An event as the encoder reads it (the shape of verdict.v1.Event)."""

    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    unit_id: str = "w"
    name: str = "llm.call"
    timestamp: Ts = field(default_factory=lambda: Ts(1_700_000_000))
    measures: dict[str, float] = field(default_factory=lambda: {"latency_ms": 1.0})
    properties: dict[str, str] = field(default_factory=lambda: {"route": "chat"})


ANY_TIME = TimeWindow(past_s=10**10, future_s=10**10)


def ev(ts: datetime, unit: str, event_id: str | None = None) -> Ev:
    us = round(ts.timestamp() * 1_000_000)
    return Ev(
        event_id=event_id or str(uuid.uuid4()),
        unit_id=unit,
        timestamp=Ts(us // 1_000_000, us % 1_000_000 * 1000),
    )


def batch(*events: Ev) -> EncodedBatch:
    return EventEncoder(ANY_TIME).encode(events, 0.0)


async def partitions(pool: asyncpg.Pool) -> set[str]:
    rows = await pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'"
    )
    return {r["relname"] for r in rows}


async def test_old_partitions_are_dropped_by_the_retention(pool: asyncpg.Pool) -> None:
    assert await ensure_partitions(pool, date(2001, 1, 1), 2) == 2
    assert {"events_20010101", "events_20010102"} <= await partitions(pool)
    assert await drop_partitions(pool, date(2001, 1, 2)) == 1
    left = await partitions(pool)
    assert "events_20010101" not in left and "events_20010102" in left
    await drop_partitions(pool, date(2001, 1, 3))


async def test_writer_combines_batches_counts_duplicates_and_creates_missing_partitions(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    url = settings.require_database_url()
    queue = WriteQueue(capacity_events=1000, take_events=1000)
    writer = EventWriter(queue, lambda: asyncpg.connect(url))
    first = [ev(datetime(2002, 3, 4, 5, 6, 7, 890, tzinfo=UTC), "w1") for _ in range(3)]
    a = queue.offer(batch(*first))
    b = queue.offer(batch(first[0], first[0], ev(datetime(2002, 3, 4, tzinfo=UTC), "w1")))
    task = asyncio.create_task(writer.run())
    try:
        ra, rb = await asyncio.wait_for(asyncio.gather(a, b), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (ra.accepted, ra.duplicates) == (3, 0)
    assert (rb.accepted, rb.duplicates) == (1, 2)
    stored = await pool.fetchval("SELECT count(*) FROM events WHERE unit_id = 'w1'")
    assert stored == 4
    ts = await pool.fetchval("SELECT min(ts) FROM events WHERE unit_id = 'w1'")
    assert ts == datetime(2002, 3, 4, tzinfo=UTC)
    await drop_partitions(pool, date(2002, 3, 5))


async def test_unreachable_database_fails_writes_as_unavailable() -> None:
    queue = WriteQueue(capacity_events=1000, take_events=1000)

    async def refuse() -> asyncpg.Connection:
        raise ConnectionRefusedError("database down")

    writer = EventWriter(queue, refuse)
    task = asyncio.create_task(writer.run())
    try:
        await eventually_async(lambda: not queue.available, describe=lambda: "still available")
        with pytest.raises(Unavailable):
            queue.offer(batch(ev(datetime.now(UTC), "w2")))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_connection_left_broken_is_replaced_and_its_writes_fail_as_unavailable(
    settings: Settings,
) -> None:
    """PostgreSQL stopping during a COPY can leave asyncpg's protocol mid-operation; the writes
    on it must be retried by their clients (UNAVAILABLE), not lost as INTERNAL errors."""
    url = settings.require_database_url()
    queue = WriteQueue(capacity_events=1000, take_events=1000)
    connects = 0

    async def connect() -> asyncpg.Connection:
        nonlocal connects
        connects += 1
        return await asyncpg.connect(url)

    class BreaksOnce(EventWriter):
        broken = False

        async def _write(self, writes: Any) -> Any:
            if not self.broken:
                self.broken = True
                raise asyncpg.InternalClientError(
                    "cannot switch to state 15; another operation (2) is in progress"
                )
            return await super()._write(writes)

    writer = BreaksOnce(queue, connect)
    now = datetime.now(UTC)
    first = queue.offer(batch(ev(now, "w3")))
    task = asyncio.create_task(writer.run())
    try:
        with pytest.raises(Unavailable):
            await asyncio.wait_for(first, 10)
        await eventually_async(lambda: queue.available)  # the writer has reconnected
        retried = await asyncio.wait_for(queue.offer(batch(ev(now, "w3"))), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (retried.accepted, connects) == (1, 2)


async def test_binary_copy_encoding_round_trips_through_postgres(pool: asyncpg.Pool) -> None:
    events = [
        Ev(unit_id="ü-user", timestamp=Ts(1_700_000_000, 123_456_000), measures={}, properties={}),
        Ev(
            event_id=str(uuid.uuid4()).upper(),
            unit_id="u" * 256,
            name="feedback.rating",
            timestamp=Ts(1_600_000_000, 999_999_999),
            measures={"rating": 5.0, "a.b-c_d": -1e-300},
            properties={"k": 'v " é', "n": "line\nbreak", "long": "x" * 1000},
        ),
        Ev(timestamp=Ts(1, 0), measures={f"m{i}": 1.5 for i in range(64)}),
    ]
    encoder = EventEncoder(ANY_TIME)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE copied (LIKE events INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        for _ in range(2):  # the second time from the caches
            await conn.execute("TRUNCATE copied")
            encoded = encoder.encode(events, 0.0)
            assert encoded.count == 3
            await conn.copy_to_table(
                "copied", source=memoryview(encoded.data), columns=COLUMNS, format="binary"
            )
            got = await conn.fetch(
                "SELECT (extract(epoch FROM ts) * 1000000)::int8 AS us, event_id::text AS id,"
                " unit_id, name, measure_names, measure_values, properties::text AS p"
                " FROM copied ORDER BY ts DESC"
            )
            assert [g["us"] for g in got] == [
                1_700_000_000_123_456,
                1_600_000_000_999_999,
                1_000_000,
            ]
            assert [g["id"] for g in got] == [e.event_id.lower() for e in events]
            assert [g["unit_id"] for g in got] == [e.unit_id for e in events]
            assert [g["name"] for g in got] == [e.name for e in events]
            assert [
                dict(zip(g["measure_names"], g["measure_values"], strict=True)) for g in got
            ] == [e.measures for e in events]
            assert [json.loads(g["p"]) for g in got] == [e.properties for e in events]


async def test_maintenance_loop_survives_a_round_that_created_partitions(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by running the image's services on a fresh database: the loop's log line after a
    # round that created partitions raised (an `extra` key named like a LogRecord attribute),
    # so the hourly maintenance died after its first useful round.
    last = plan_for(datetime.now(UTC).date(), 7, 90)
    newest = last.first_day + timedelta(days=last.days - 1)
    await pool.execute(f"DROP TABLE IF EXISTS events_{newest:%Y%m%d}")
    caplog.set_level(logging.INFO, logger="verdict_ingest.partitions")
    task = asyncio.create_task(maintain_forever(pool, 7, 90))
    try:
        await eventually_async(
            lambda: any(r.getMessage() == "event partitions maintained" for r in caplog.records),
            describe=lambda: f"task done: {task.done()}",
        )
        assert f"events_{newest:%Y%m%d}" in await partitions(pool)
        assert not task.done(), "the maintenance loop ended"
    finally:
        task.cancel()
