"""Benchmark: the scale-out claims of docs/SCALING.md, measured on this machine.

    python bench/bench_scaling.py          # writes bench/results/scaling.json (make bench-scaling)
    BENCH_SCALING_QUICK=1 python bench/bench_scaling.py   # smaller sizes

1. Assignment: one replica vs two behind one client channel with gRPC's round_robin (what a
   headless Service gives). Python client processes run Assign loops over 20 running experiments
   for a fixed time; reported: calls/s, p50/p99, each replica's CPU per 1,000 calls and its share.
2. Ingest: one replica vs two against one PostgreSQL, two client processes streaming events.
3. Analysis: one replica vs two analysing 16 experiments, coordinated by advisory locks: wall
   time until each has a snapshot, and how many snapshots (one each: no duplicated work).
4. Sharding by unit_id (what Citus does with `events` and `exposures`), simulated with two
   databases: the per-variant figures of the two shards add up to the whole database's.
5. NATS JetStream (127.0.0.1:4222) as a durable log in front of ingest: acknowledged publishes
   of the same event batches per second.

On a 2-core machine shared by the client and the servers, two replicas cannot double anything:
the figures show how the work divides (CPU per request, balance) more than a speed-up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "reliability" / "faults"))

from fault_kit import create_and_start, prepare_database, serves  # noqa: E402
from fault_rows import figures, write_experiment  # noqa: E402

from support.processes import RunningService, start_service_process  # noqa: E402
from verdict.v1 import (  # noqa: E402
    analysis_pb2,
    analysis_pb2_grpc,
    assignment_pb2,
    assignment_pb2_grpc,
    experiment_pb2_grpc,
    ingest_pb2,
)
from verdict_platform.db import with_database  # noqa: E402
from verdict_platform.embedded import resolve_servers  # noqa: E402
from verdict_platform.roles import Role  # noqa: E402
from verdict_platform.settings import Settings, load_settings  # noqa: E402

QUICK = os.environ.get("BENCH_SCALING_QUICK") == "1"
ASSIGN_SECONDS = 4.0 if QUICK else 10.0
ASSIGN_ROUNDS = 1 if QUICK else 2
CLIENTS, CONCURRENCY = 2, 16
INGEST_EVENTS = 40_000 if QUICK else 200_000  # per client
ANALYSIS_EXPERIMENTS = 6 if QUICK else 16
PACED_RATE = 1000


def _load_bench_ingest() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_ingest", ROOT / "bench" / "bench_ingest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- 1. assignment -----------------------------------------------------------------------------


def _assign_client(
    targets: list[str], key: str, keys: list[str], seconds: float, rate: float | None, out: Any
) -> None:
    """Assign loops for `seconds`: as fast as answers come (rate None), or paced to `rate`
    calls/s for this client (an offered load that does not depend on the servers' speed)."""

    async def run() -> dict[str, Any]:
        config = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
        target = "ipv4:" + ",".join(targets)
        latencies: list[float] = []
        async with grpc.aio.insecure_channel(target, [("grpc.service_config", config)]) as ch:
            stub = assignment_pb2_grpc.AssignmentServiceStub(ch)
            md = (("authorization", f"Bearer {key}"),)
            deadline = time.perf_counter() + seconds

            async def loop(worker: int) -> None:
                i = worker
                period = CONCURRENCY / rate if rate else 0.0
                next_at = time.perf_counter() + period * worker / CONCURRENCY
                while time.perf_counter() < deadline:
                    if period:
                        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                        next_at += period
                    request = assignment_pb2.AssignRequest(
                        unit_id=f"user-{i}", experiment_keys=keys, skip_exposure_logging=True
                    )
                    began = time.perf_counter()
                    await stub.Assign(request, metadata=md, timeout=5)
                    latencies.append(time.perf_counter() - began)
                    i += CONCURRENCY

            await asyncio.gather(*(loop(w) for w in range(CONCURRENCY)))
        return {"calls": len(latencies), "latencies": sorted(latencies)}

    out.put(asyncio.run(run()))


def assignment(settings: Settings, admin: str, assign: str) -> dict[str, Any]:
    replicas = [
        start_service_process(settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
        for _ in range(2)
    ]
    keys = [f"scale-{i}-{secrets.token_hex(2)}" for i in range(20)]

    async def setup() -> None:
        async with grpc.aio.insecure_channel(replicas[0].target) as channel:
            experiments = experiment_pb2_grpc.ExperimentServiceStub(channel)
            for k in keys:
                await create_and_start(experiments, k, admin)
        for replica in replicas:
            async with grpc.aio.insecure_channel(replica.target) as channel:
                stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
                deadline = time.monotonic() + 30
                while not await serves(stub, assign, keys[-1]):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)

    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    paced: dict[int, dict[str, Any]] = {}
    try:
        asyncio.run(setup())
        for _ in range(ASSIGN_ROUNDS):
            for n in (1, 2):
                runs[n].append(_assign_run(replicas[:n], assign, keys))
        for n in (1, 2):
            paced[n] = _assign_run(replicas[:n], assign, keys, rate=PACED_RATE)
        rss = max(peak_rss_mb(r.proc.pid) for r in replicas)
    finally:
        for r in replicas:
            r.stop()
    summary = {}
    for n, results in runs.items():
        best = max(results, key=lambda r: r["calls_per_s"])
        summary[f"{n}_replica{'s' if n > 1 else ''}"] = {
            **best,
            "runs_calls_per_s": [r["calls_per_s"] for r in results],
        }
    one, two = summary["1_replica"], summary["2_replicas"]
    return {
        **summary,
        "speedup": round(two["calls_per_s"] / one["calls_per_s"], 2),
        f"paced_{PACED_RATE}_calls_per_s": {
            f"{n}_replica{'s' if n > 1 else ''}": result for n, result in paced.items()
        },
        "peak_rss_mb": round(rss, 1),
    }


def _assign_run(
    replicas: list[RunningService], key: str, keys: list[str], rate: float | None = None
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    targets = [r.target for r in replicas]
    before = [cpu_s(r.proc.pid) for r in replicas]
    clients = [
        ctx.Process(
            target=_assign_client,
            args=(targets, key, keys, ASSIGN_SECONDS, rate and rate / CLIENTS, out),
        )
        for _ in range(CLIENTS)
    ]
    for c in clients:
        c.start()
    results = [out.get() for _ in clients]
    for c in clients:
        c.join()
    server_cpu = [cpu_s(r.proc.pid) - b for r, b in zip(replicas, before, strict=True)]
    calls = sum(r["calls"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    return {
        "calls_per_s": round(calls / ASSIGN_SECONDS),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
        "server_cpu_ms_per_1000_calls": round(sum(server_cpu) / calls * 1e6, 1),
        "cpu_share_per_replica": [round(c / sum(server_cpu), 3) for c in server_cpu],
    }


# --- 2. ingest ---------------------------------------------------------------------------------


def ingest(settings: Settings, ingest_key: str, bench_ingest: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rss = 0.0
    for n in (1, 2):
        url = settings.require_database_url()
        replicas = [
            start_service_process(settings, "verdict_ingest", "VERDICT_INGEST_PORT")
            for _ in range(n)
        ]
        try:
            before = asyncio.run(_count(url))
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            clients = [
                ctx.Process(
                    target=_ingest_client,
                    args=(replicas[i % n].target, ingest_key, INGEST_EVENTS, (n << 4) + i, queue),
                )
                for i in range(CLIENTS)
            ]
            cpu_before = [cpu_s(r.proc.pid) for r in replicas]
            began = time.perf_counter()
            for c in clients:
                c.start()
            results = [queue.get() for _ in clients]
            elapsed = time.perf_counter() - began
            for c in clients:
                c.join()
            cpu = [cpu_s(r.proc.pid) - b for r, b in zip(replicas, cpu_before, strict=True)]
            rss = max(rss, *(peak_rss_mb(r.proc.pid) for r in replicas))
            stored = asyncio.run(_count(url)) - before
        finally:
            for r in replicas:
                r.stop()
        total = CLIENTS * INGEST_EVENTS
        out[f"{n}_replica{'s' if n > 1 else ''}"] = {
            "events": total,
            "stored": stored,
            "events_per_s": round(total / elapsed),
            "p99_ack_ms": round(max(r["p99_ack_ms"] for r in results), 1),
            "service_cpu_s_per_100k_events": [round(c / total * 1e5, 2) for c in cpu],
        }
    out["speedup"] = round(out["2_replicas"]["events_per_s"] / out["1_replica"]["events_per_s"], 2)
    out["peak_rss_mb"] = round(rss, 1)
    return out


def _ingest_client(target: str, key: str, n: int, seed: int, result: Any) -> None:
    bench_ingest = _load_bench_ingest()
    events = bench_ingest.make_events(n, seed=seed)
    batch = bench_ingest.BATCH
    payloads = [
        ingest_pb2.StreamEventsRequest(batch_id=str(i), events=events[i * batch : (i + 1) * batch])
        for i in range(-(-n // batch))
    ]
    result.put(asyncio.run(bench_ingest._stream(target, key, payloads)))


async def _count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


# --- 3. analysis replicas, 4. shards -----------------------------------------------------------


async def _lock_held(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        held: bool = await conn.fetchval(
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await conn.close()
    return held


async def _snapshot_count(url: str, keys: list[str]) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(DISTINCT experiment_key) AS done, count(*) AS total "
            "FROM analysis_snapshots WHERE experiment_key = ANY($1)",
            keys,
        )
    finally:
        await conn.close()
    return int(row["done"]), int(row["total"])


def analysis(settings: Settings, server_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in (1, 2):
        name = f"verdict_scale_{secrets.token_hex(3)}"
        url = asyncio.run(_create_database(server_url, name))
        try:
            asyncio.run(prepare_database(url, []))
            keys = [f"ana-{i}" for i in range(ANALYSIS_EXPERIMENTS)]
            for i, key in enumerate(keys):
                asyncio.run(write_experiment(url, key, units=2_000, events=20_000, seed=i))
            local = dataclasses.replace(settings, database_url=url)
            began = time.perf_counter()
            replicas = [
                start_service_process(
                    local, "verdict_analysis", "VERDICT_ANALYSIS_PORT",
                    {"VERDICT_ANALYSIS_INTERVAL": "3600"}, wait=False,
                )
                for _ in range(n)
            ]  # fmt: skip
            try:
                # From the first analysis lock taken (the processes' start-up, ~2 s of imports
                # each on a shared 2-core machine, is not analysis work) to the last snapshot.
                while not asyncio.run(_lock_held(url)):
                    time.sleep(0.01)
                began = time.perf_counter()
                while asyncio.run(_snapshot_count(url, keys))[0] < len(keys):
                    time.sleep(0.05)
                elapsed = time.perf_counter() - began
                time.sleep(1.0)
                _, total = asyncio.run(_snapshot_count(url, keys))
                rss = max(peak_rss_mb(r.proc.pid) for r in replicas)
            finally:
                for r in replicas:
                    r.stop()
        finally:
            asyncio.run(_drop_database(server_url, name))
        out[f"{n}_replica{'s' if n > 1 else ''}"] = {
            "experiments": len(keys),
            "seconds_until_all_analysed": round(elapsed, 2),
            "snapshots": total,
        }
        out["peak_rss_mb"] = round(max(out.get("peak_rss_mb", 0.0), rss), 1)
    out["speedup"] = round(
        out["1_replica"]["seconds_until_all_analysed"]
        / out["2_replicas"]["seconds_until_all_analysed"],
        2,
    )
    return out


async def _create_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _split(whole: str, shards: list[str], key: str) -> None:
    """Copies the experiment into the shards, exposures and events by hashtext(unit_id)."""
    source = await asyncpg.connect(whole)
    try:
        for table, columns in (
            ("metrics", "*"),
            ("experiments", "key, status, spec, started_at"),
        ):
            rows = await source.fetch(f"SELECT {columns} FROM {table}")
            for shard in shards:
                conn = await asyncpg.connect(shard)
                try:
                    await conn.copy_records_to_table(
                        table, records=[tuple(r) for r in rows], columns=list(rows[0].keys())
                    )
                finally:
                    await conn.close()
        for table, columns in (
            ("exposures", ["experiment_key", "unit_id", "variant_key", "exposed_at"]),
            (
                "events",
                [
                    "ts",
                    "event_id",
                    "unit_id",
                    "name",
                    "measure_names",
                    "measure_values",
                    "received_at",
                ],
            ),
        ):
            for i, shard in enumerate(shards):
                rows = await source.fetch(
                    f"SELECT {', '.join(columns)} FROM {table} "
                    "WHERE abs(hashtext(unit_id)) % $1 = $2",
                    len(shards),
                    i,
                )
                conn = await asyncpg.connect(shard)
                try:
                    await conn.copy_records_to_table(
                        table, records=[tuple(r) for r in rows], columns=columns
                    )
                finally:
                    await conn.close()
    finally:
        await source.close()


def _timed_run(target: str, admin: str, key: str) -> tuple[float, analysis_pb2.ResultSnapshot]:
    """The best of three RunAnalysis calls (after the scheduler's first run has released the
    lock: RunAnalysis answers ABORTED while another run holds it)."""
    with grpc.insecure_channel(target) as channel:
        stub = analysis_pb2_grpc.AnalysisServiceStub(channel)
        md = (("authorization", f"Bearer {admin}"),)
        times: list[float] = []
        snapshot = None
        deadline = time.monotonic() + 300
        while len(times) < 3:
            began = time.perf_counter()
            try:
                reply = stub.RunAnalysis(
                    analysis_pb2.RunAnalysisRequest(experiment_key=key), metadata=md, timeout=300
                )
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.ABORTED or time.monotonic() > deadline:  # type: ignore[attr-defined]
                    raise
                time.sleep(0.2)
                continue
            times.append(time.perf_counter() - began)
            snapshot = reply.snapshot
        assert snapshot is not None
        return min(times), snapshot


def shards(settings: Settings, server_url: str) -> dict[str, Any]:
    names = {k: f"verdict_shard_{k}_{secrets.token_hex(3)}" for k in ("whole", "s0", "s1")}
    urls = {k: asyncio.run(_create_database(server_url, v)) for k, v in names.items()}
    key = "sharded"
    units, events = (10_000, 100_000) if QUICK else (50_000, 500_000)
    try:
        admins = {k: asyncio.run(prepare_database(u, [Role.ADMIN]))[0] for k, u in urls.items()}
        asyncio.run(write_experiment(urls["whole"], key, units, events, seed=3))
        asyncio.run(_split(urls["whole"], [urls["s0"], urls["s1"]], key))
        timings, snaps = {}, {}
        for k, url in urls.items():
            local = dataclasses.replace(settings, database_url=url)
            service = start_service_process(
                local,
                "verdict_analysis",
                "VERDICT_ANALYSIS_PORT",
                {"VERDICT_ANALYSIS_INTERVAL": "3600"},
            )
            try:
                timings[k], snaps[k] = _timed_run(service.target, admins[k], key)
            finally:
                service.stop()
    finally:
        for name in names.values():
            asyncio.run(_drop_database(server_url, name))
    # Additive per variant: units add; a mean is the units-weighted mean of the shards' means.
    worst = 0.0
    whole = snaps["whole"]
    for metric in whole.metrics:
        for variant in metric.variants:
            parts = [
                v
                for s in (snaps["s0"], snaps["s1"])
                for m in s.metrics
                if m.metric_key == metric.metric_key
                for v in m.variants
                if v.variant_key == variant.variant_key
            ]
            n = sum(p.units for p in parts)
            combined = sum(p.mean * p.units for p in parts) / n
            assert n == variant.units
            worst = max(worst, abs(combined - variant.mean) / max(abs(variant.mean), 1e-12))
    return {
        "units": units,
        "events": events,
        "run_seconds": {k: round(v, 3) for k, v in timings.items()},
        "units_per_shard": [sum(s.units.values()) for s in (snaps["s0"], snaps["s1"])],
        "max_relative_difference_of_combined_means": worst,
        "whole_figures_equal_sum_of_shards": worst < 1e-9,
        "figures_whole": str(figures(whole))[:200],
    }


# --- 5. NATS JetStream -------------------------------------------------------------------------


async def jetstream(bench_ingest: Any) -> dict[str, Any]:
    import nats

    total = 100_000 if QUICK else 400_000
    events = bench_ingest.make_events(total, seed=99)
    batch = bench_ingest.BATCH // 10
    payloads = [
        ingest_pb2.TrackEventsRequest(
            request_id=str(i), events=events[i * batch : (i + 1) * batch]
        ).SerializeToString()
        for i in range(total // batch)
    ]
    client = await nats.connect("nats://127.0.0.1:4222", connect_timeout=3)
    stream = f"VERDICT_BENCH_{secrets.token_hex(3).upper()}"
    subject = f"verdict.bench.{stream.lower()}"
    try:
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[subject], storage="file")
        began = time.perf_counter()
        window = asyncio.Semaphore(64)

        async def publish(payload: bytes) -> None:
            async with window:
                await js.publish(subject, payload, timeout=30)

        await asyncio.gather(*(publish(p) for p in payloads))
        elapsed = time.perf_counter() - began
        info = await js.stream_info(stream)
        stored = info.state.messages
        await js.delete_stream(stream)
    finally:
        await client.close()
    return {
        "events": total,
        "batch_events": batch,
        "events_per_s": round(total / elapsed),
        "messages_stored": stored,
        "bytes_per_event": round(sum(len(p) for p in payloads) / total, 1),
    }


def main() -> None:
    base = load_settings()
    if "VERDICT_DATA_DIR" not in os.environ:
        base = dataclasses.replace(base, data_dir=ROOT / ".data")
    base = resolve_servers(base)
    server_url = base.require_database_url()
    name = f"verdict_scale_{secrets.token_hex(4)}"
    url = asyncio.run(_create_database(server_url, name))
    base = dataclasses.replace(base, redis_namespace=f"bench-{secrets.token_hex(4)}")
    settings = dataclasses.replace(base, database_url=url)
    bench_ingest = _load_bench_ingest()
    load_at_start = os.getloadavg()
    try:
        admin, assign, ingest_key = asyncio.run(
            prepare_database(url, [Role.ADMIN, Role.ASSIGN, Role.INGEST])
        )
        report: dict[str, Any] = {"benchmark": "scaling", "quick": QUICK}
        report["assignment"] = assignment(settings, admin, assign)
        print(json.dumps(report["assignment"], indent=2), flush=True)
        report["ingest"] = ingest(settings, ingest_key, bench_ingest)
        print(json.dumps(report["ingest"], indent=2), flush=True)
    finally:
        asyncio.run(_drop_database(server_url, name))
    report["analysis"] = analysis(base, server_url)
    print(json.dumps(report["analysis"], indent=2), flush=True)
    report["shards"] = shards(base, server_url)
    print(json.dumps(report["shards"], indent=2), flush=True)
    try:
        report["jetstream"] = asyncio.run(jetstream(bench_ingest))
    except Exception as error:  # no NATS server here: say so in the results
        report["jetstream"] = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(report["jetstream"], indent=2), flush=True)
    report["peak_rss_mb"] = {
        "assignment": report["assignment"]["peak_rss_mb"],
        "ingest": report["ingest"]["peak_rss_mb"],
        "analysis": report["analysis"]["peak_rss_mb"],
    }
    report["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start_and_end": [round(x, 2) for x in (*load_at_start, *os.getloadavg())],
    }
    out = ROOT / "bench" / "results" / "scaling.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
