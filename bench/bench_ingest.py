"""Benchmark: 1,000,000 events streamed through the ingest service into PostgreSQL, against a raw
asyncpg COPY of the same rows into an identical table, in the same run (before and after the
service, into fresh tables; the mean of the two is the baseline, which evens out a shared
machine's background load).

    python bench/bench_ingest.py            # writes bench/results/ingest.json
    BENCH_INGEST_EVENTS=100000 python bench/bench_ingest.py   # a smaller run

Each event has 4 measures and 3 properties. A client process streams pre-serialized batches of
5,000 events through `StreamEvents` (up to 8 unacknowledged); an acknowledgement means committed
and deduplicated. The baseline copies the same rows, pre-built, with `copy_records_to_table` into
a table with the same partitions, primary key and index as `events`. Reported: events per second
of both and their ratio (target >= 0.7), p50/p99 acknowledgement latency (send of a batch to its
acknowledgement), and the service's peak resident memory (VmHWM, target <= 300 MB).

Uses VERDICT_DATABASE_URL / VERDICT_REDIS_URL when set, else the embedded servers under .data;
runs in a fresh database, dropped at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import multiprocessing as mp
import os
import platform
import secrets
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.processes import start_service_process  # noqa: E402
from verdict.v1 import ingest_pb2, ingest_pb2_grpc  # noqa: E402
from verdict_platform.db import with_database  # noqa: E402
from verdict_platform.embedded import resolve_servers  # noqa: E402
from verdict_platform.keys import KeyStore  # noqa: E402
from verdict_platform.migrator import migrate  # noqa: E402
from verdict_platform.roles import Role  # noqa: E402
from verdict_platform.settings import Settings, load_settings  # noqa: E402

EVENTS = int(os.environ.get("BENCH_INGEST_EVENTS", "1000000"))
BATCH = 5000
WINDOW = int(os.environ.get("BENCH_INGEST_WINDOW", "8"))
TARGET_RATIO, TARGET_RSS_MB = 0.7, 300.0
SERVICE_ENV = {k: v for k, v in os.environ.items() if k.startswith("VERDICT_INGEST_")}
MODELS = ("gpt-4o-mini", "claude-3-5-haiku", "llama-3.1-8b")


def make_events(n: int, seed: int = 7) -> list[ingest_pb2.Event]:
    now = int(time.time()) - 3600
    out = []
    for i in range(n):
        e = ingest_pb2.Event(
            event_id=str(uuid.UUID(int=(seed << 100) + i, version=4)),
            unit_id=f"user-{i % 50_000}",
            name="llm.call" if i % 4 else "feedback.rating",
            measures={
                "latency_ms": 200.0 + i % 1000,
                "gen_ai.usage.input_tokens": float(i % 700),
                "gen_ai.usage.output_tokens": float(i % 300),
                "cost_usd": (i % 1000) * 1e-5,
            },
            properties={
                "gen_ai.request.model": MODELS[i % 3],
                "prompt_version": f"v{i % 5}",
                "route": "chat",
            },
        )
        e.timestamp.seconds = now + i % 3600
        e.timestamp.nanos = (i * 7919) % 1_000_000 * 1000
        out.append(e)
    return out


def _client(target: str, key: str, n: int, result: mp.Queue) -> None:  # type: ignore[type-arg]
    events = make_events(n)
    payloads = [
        ingest_pb2.StreamEventsRequest(batch_id=str(i), events=events[i * BATCH : (i + 1) * BATCH])
        for i in range(-(-n // BATCH))
    ]
    del events
    result.put(asyncio.run(_stream(target, key, payloads)))


async def _stream(target: str, key: str, payloads: list[ingest_pb2.StreamEventsRequest]) -> dict:
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    room = asyncio.Semaphore(WINDOW)
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}

    async def requests():  # type: ignore[no-untyped-def]
        for p in payloads:
            await room.acquire()
            sent_at[p.batch_id] = time.perf_counter()
            yield p

    options = [("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        start = time.perf_counter()
        cpu_start = time.process_time()
        call = stub.StreamEvents(requests(), metadata=(("authorization", f"Bearer {key}"),))
        async for ack in call:
            latencies.append(time.perf_counter() - sent_at.pop(ack.batch_id))
            totals["accepted"] += ack.accepted
            totals["duplicates"] += ack.duplicates
            totals["rejected"] += ack.rejected
            room.release()
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - cpu_start
    latencies.sort()
    return {
        "client_cpu_s": client_cpu,
        "elapsed_s": elapsed,
        "p50_ack_ms": statistics.median(latencies) * 1000,
        "p99_ack_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        **totals,
    }


# The baseline table is the real `events` table's twin (columns, defaults, primary key and
# indexes), derived from it so the two can never drift apart.
BASELINE_DDL = """
CREATE TABLE events_baseline (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                              INCLUDING INDEXES) PARTITION BY RANGE (ts);
"""


async def _baseline(url: str, n: int, table: str) -> float:
    events = make_events(n)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rows = [
        (
            epoch + timedelta(0, e.timestamp.seconds, e.timestamp.nanos // 1000),
            uuid.UUID(e.event_id),
            e.unit_id,
            e.name,
            list(e.measures.keys()),
            list(e.measures.values()),
            json.dumps(dict(e.properties)),
        )
        for e in events
    ]
    del events
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(BASELINE_DDL.replace("events_baseline", table))
        today = datetime.now(UTC).date()
        for d in (today - timedelta(days=1), today, today + timedelta(days=1)):
            await conn.execute(
                f"CREATE TABLE {table}_{d:%Y%m%d} PARTITION OF {table} "
                f"FOR VALUES FROM ('{d}') TO ('{d + timedelta(days=1)}')"
            )
        await conn.execute("CHECKPOINT")
        columns = ("ts", "event_id", "unit_id", "name", "measure_names", "measure_values")
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            await conn.copy_records_to_table(
                table, records=rows[i : i + BATCH], columns=(*columns, "properties")
            )
        elapsed = time.perf_counter() - start
        stored = await conn.fetchval(f"SELECT count(*) FROM {table}")
        assert stored == n, stored
        return elapsed
    finally:
        await conn.close()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _prepare(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


async def _create_key(url: str) -> str:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        return await KeyStore(pool).create("bench-ingest", Role.INGEST)
    finally:
        await pool.close()


async def _count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CHECKPOINT")
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


async def _drop(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def main() -> None:
    base = load_settings()
    if "VERDICT_DATA_DIR" not in os.environ:
        base = dataclasses.replace(base, data_dir=ROOT / ".data")
    base = resolve_servers(base)
    server_url = base.require_database_url()
    name = f"verdict_bench_{secrets.token_hex(4)}"
    url = asyncio.run(_prepare(server_url, name))
    settings: Settings = dataclasses.replace(
        base, database_url=url, redis_namespace=f"bench-{secrets.token_hex(4)}"
    )
    try:
        key = asyncio.run(_create_key(url))
        # The machine may be shared: the baseline runs before and after the service, into
        # fresh identical tables, and the service is compared with their mean.
        baseline_before_s = asyncio.run(_baseline(url, EVENTS, "events_baseline_before"))
        service = start_service_process(
            settings, "verdict_ingest", "VERDICT_INGEST_PORT", SERVICE_ENV
        )
        try:
            asyncio.run(_count(url))  # checkpoint before the measured run
            cpu_before = _cpu_s(service.proc.pid)
            result: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
            client = mp.get_context("spawn").Process(
                target=_client, args=(service.target, key, EVENTS, result)
            )
            client.start()
            streamed = result.get()
            client.join()
            rss_mb = _peak_rss_mb(service.proc.pid)
            service_cpu_s = _cpu_s(service.proc.pid) - cpu_before
        finally:
            service.stop()
        stored = asyncio.run(_count(url))
        baseline_after_s = asyncio.run(_baseline(url, EVENTS, "events_baseline_after"))
    finally:
        asyncio.run(_drop(server_url, name))

    service_eps = EVENTS / streamed["elapsed_s"]
    baseline_runs_eps = [EVENTS / baseline_before_s, EVENTS / baseline_after_s]
    baseline_eps = statistics.mean(baseline_runs_eps)
    ratio = service_eps / baseline_eps
    report = {
        "benchmark": "ingest",
        "events": EVENTS,
        "measures_per_event": 4,
        "properties_per_event": 3,
        "batch_events": BATCH,
        "unacknowledged_batches": WINDOW,
        "service_events_per_s": round(service_eps),
        "baseline_copy_events_per_s": round(baseline_eps),
        "baseline_runs_events_per_s": [round(x) for x in baseline_runs_eps],
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "p50_ack_latency_ms": round(streamed["p50_ack_ms"], 1),
        "p99_ack_latency_ms": round(streamed["p99_ack_ms"], 1),
        "service_peak_rss_mb": round(rss_mb, 1),
        "service_cpu_s": round(service_cpu_s, 2),
        "service_elapsed_s": round(streamed["elapsed_s"], 2),
        "client_cpu_s": round(streamed["client_cpu_s"], 2),
        "target_peak_rss_mb": TARGET_RSS_MB,
        "accepted": streamed["accepted"],
        "duplicates": streamed["duplicates"],
        "rejected": streamed["rejected"],
        "stored": stored,
        "passed": ratio >= TARGET_RATIO and rss_mb <= TARGET_RSS_MB and stored == EVENTS,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "database": "configured" if os.environ.get("VERDICT_DATABASE_URL") else "embedded",
    }
    out = ROOT / "bench" / "results" / "ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
