"""The events writer: all the SQL of events, run by background tasks fed by the `WriteQueue`.

Each writer owns one connection with a TEMP staging table (ON COMMIT DELETE ROWS). Per taken
group of RPC batches, in one transaction, each batch is written one of two ways:

- fast path: a binary COPY (`encoding`) of its rows straight into `events`, inside a
  savepoint. New events are the usual case, and this costs PostgreSQL no more than a raw COPY;
- on a unique violation (a retry, or duplicates within the batch) the savepoint is rolled back,
  the rows are copied into staging and moved into `events` by one INSERT ... SELECT ... ON
  CONFLICT DO NOTHING; its row count is the batch's accepted events, the rest are duplicates.

After COMMIT every batch's future is resolved: an acknowledgement means committed. The dedup key
is the primary key (ts, event_id): a retry resends the identical event.

When the database is unreachable the writer fails the writes with `Unavailable`, marks the queue
down (RPCs then fail fast with UNAVAILABLE) and reconnects with backoff, so the service recovers
by itself. A write that fails for another reason is retried alone, batch by batch, so one bad
batch never fails the others it shared a transaction with.

Each transaction is timed (`verdict_ingest_write_duration`), and each batch sent by a sampled
RPC gets an `events.write` span in that RPC's trace, from the start of the transaction to its
commit (batches that shared it each have their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from time import perf_counter

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, Status, StatusCode

from verdict.retry import Backoff
from verdict_ingest.encoding import COLUMNS
from verdict_ingest.partitions import ensure_partitions
from verdict_ingest.queue import PendingWrite, WriteQueue, WriteResult
from verdict_platform.db import is_disconnect
from verdict_platform.errors import Unavailable
from verdict_platform.telemetry.catalog import (
    DEPENDENCY_ERRORS,
    INGEST_BATCH_SIZE,
    INGEST_EVENTS,
    INGEST_WRITE_DURATION,
)

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("verdict.ingest")

STAGING = "ingest_staging"
CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGING} (
    ts timestamptz NOT NULL,
    event_id uuid NOT NULL,
    unit_id text NOT NULL,
    name text NOT NULL,
    measure_names text[] NOT NULL,
    measure_values float8[] NOT NULL,
    properties jsonb NOT NULL
) ON COMMIT DELETE ROWS
"""
# Moves the staged rows of one batch into events, skipping those already stored.
MOVE_STAGED = f"""
WITH staged AS (DELETE FROM {STAGING} RETURNING *)
INSERT INTO events ({", ".join(COLUMNS)})
SELECT {", ".join(COLUMNS)} FROM staged
ON CONFLICT DO NOTHING
"""
RECONNECT_BACKOFF = Backoff(initial_s=0.1, max_s=2.0)
"""Waits between attempts to reopen a writer's connection."""
RETRIES = 5  # deadlocks between writers inserting the same retried events, missing partitions

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Connect = Callable[[], Awaitable[asyncpg.Connection]]


def _day(unix_us: int) -> date:
    return (_UNIX_EPOCH + timedelta(microseconds=unix_us)).date()


def _is_missing_partition(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.CheckViolationError) and "no partition" in str(exc)


class EventWriter:
    """One writer: takes from the queue, writes in transactions, resolves the futures."""

    def __init__(self, queue: WriteQueue, connect: Connect, name: str = "writer") -> None:
        self._queue = queue
        self._connect = connect
        self._name = name
        self._conn: asyncpg.Connection | None = None

    async def run(self) -> None:
        """Writes forever (until cancelled)."""
        waits = RECONNECT_BACKOFF.delays()
        try:
            while True:
                if self._conn is None:
                    try:
                        await self._open()
                    except Exception as exc:
                        if not is_disconnect(exc):
                            log.exception("%s: cannot prepare its connection", self._name)
                        self._queue.set_unavailable(f"database unavailable: {exc}")
                        await asyncio.sleep(next(waits))
                        continue
                    waits = RECONNECT_BACKOFF.delays()
                    self._queue.set_unavailable(None)
                writes = await self._queue.take()
                try:
                    await self._write_all(writes)
                finally:
                    self._queue.release(writes)
        finally:
            await self._close()

    async def _open(self) -> None:
        conn = await self._connect()
        try:
            await conn.execute(CREATE_STAGING)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    async def _write_all(self, writes: Sequence[PendingWrite]) -> None:
        try:
            results = await self._write_observed(writes)
        except Exception as exc:
            if is_disconnect(exc):
                DEPENDENCY_ERRORS.inc("postgresql")
                log.warning("%s: database unreachable: %s", self._name, exc)
                await self._close()
                reason = f"database unavailable: {type(exc).__name__}"
                self._fail(writes, exc, reason)
                self._queue.set_unavailable(reason)
                return
            if len(writes) > 1:  # isolate the faulty batch
                log.warning("%s: %d batches failed together (%r); writing them one by one",
                            self._name, len(writes), exc)  # fmt: skip
                for write in writes:
                    await self._write_all([write])
                return
            log.exception("%s: write failed", self._name)
            self._fail(writes, exc, None)
            return
        for write, result in zip(writes, results, strict=True):
            if not write.future.done():
                write.future.set_result(result)

    async def _write_observed(self, writes: Sequence[PendingWrite]) -> list[WriteResult]:
        """`_write_retrying`, timed and counted, with a span per batch of a sampled RPC."""
        spans = [(i, _write_span(w, len(writes))) for i, w in enumerate(writes) if w.trace]
        started = perf_counter()
        try:
            results = await self._write_retrying(writes)
        except BaseException as exc:
            INGEST_WRITE_DURATION.record(perf_counter() - started, "events", "error")
            for _, span in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.end()
            raise
        INGEST_WRITE_DURATION.record(perf_counter() - started, "events", "ok")
        INGEST_BATCH_SIZE.record(sum(w.batch.count for w in writes), "transaction")
        INGEST_EVENTS.inc("accepted", by=sum(r.accepted for r in results))
        INGEST_EVENTS.inc("duplicate", by=sum(r.duplicates for r in results))
        for i, span in spans:
            span.set_attribute("verdict.accepted", results[i].accepted)
            span.set_attribute("verdict.duplicates", results[i].duplicates)
            span.end()
        return results

    def _fail(self, writes: Sequence[PendingWrite], exc: BaseException, reason: str | None) -> None:
        error: BaseException = Unavailable(reason) if reason is not None else exc
        for write in writes:
            if not write.future.done():
                write.future.set_exception(error)

    async def _write_retrying(self, writes: Sequence[PendingWrite]) -> list[WriteResult]:
        for attempt in range(RETRIES):
            try:
                return await self._write(writes)
            except asyncpg.DeadlockDetectedError:
                if attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
            except asyncpg.CheckViolationError as exc:
                if not _is_missing_partition(exc) or attempt == RETRIES - 1:
                    raise
                await self._create_partitions(writes)
        raise AssertionError("unreachable")

    async def _write(self, writes: Sequence[PendingWrite]) -> list[WriteResult]:
        conn = self._conn
        if conn is None:
            raise ConnectionError("no database connection")
        results = []
        async with conn.transaction():
            for write in writes:
                # A memoryview: asyncpg would take bytes for a file path.
                data = memoryview(write.batch.data)
                results.append(await self._write_one(conn, data, write.batch.count))
        return results

    async def _write_one(
        self, conn: asyncpg.Connection, data: memoryview, count: int
    ) -> WriteResult:
        # Fast path: new events (the usual case) are copied straight into `events`, in a
        # savepoint. A duplicate key (a retry) rolls it back and the batch takes the staging
        # path, which skips and counts what is stored already.
        try:
            async with conn.transaction():
                await conn.copy_to_table("events", source=data, columns=COLUMNS, format="binary")
            return WriteResult(count, 0)
        except asyncpg.UniqueViolationError:
            pass
        await conn.copy_to_table(STAGING, source=data, columns=COLUMNS, format="binary")
        status = await conn.execute(MOVE_STAGED)
        accepted = int(status.rsplit(" ", 1)[1])
        return WriteResult(accepted, count - accepted)

    async def _create_partitions(self, writes: Sequence[PendingWrite]) -> None:
        first = _day(min(w.batch.first_us for w in writes))
        span = (_day(max(w.batch.last_us for w in writes)) - first).days + 1
        if self._conn is not None:
            created = await ensure_partitions(self._conn, first, span)
            log.info("%s: created %d missing partitions from %s", self._name, created, first)


def _write_span(write: PendingWrite, batches: int) -> Span:
    assert write.trace is not None
    return _tracer.start_span(
        "events.write",
        context=trace.set_span_in_context(NonRecordingSpan(write.trace)),
        kind=trace.SpanKind.CLIENT,
        attributes={
            "db.system": "postgresql",
            "verdict.events": write.batch.count,
            "verdict.transaction_batches": batches,
        },
    )
