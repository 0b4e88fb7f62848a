"""Benchmark of AssignmentService against a bare grpc.aio server, with h2load.

Sets up a fresh database with 20 running experiments (targeting conditions, realistic
attributes), starts the assignment service and `bench/echo_server.py` (same method path, same
response size), and measures with h2load (framed gRPC requests):

- maximum throughput of each; target: Assign / echo >= 0.85. The two are measured in
  alternation, `--rounds` times (echo, Assign, echo, Assign, ...), and the ratio reported is the
  median of the rounds' ratios: on a shared machine a single pair of runs drifts by 10-20 %, and
  the machine's speed changes within a minute (the echo alone has varied 1,600-3,800 req/s in one
  run), so the default is many short pairs (9 x 5 s) rather than a few long ones;
- p99 latency of Assign at half the echo's maximum rate (fixed-rate clients, per-request log;
  see LATENCY_CLIENTS for why several client counts are measured, LATENCY_ROUNDS for why the
  headline is the median of three alternating runs);
  target <= 2 ms;
- grpc-status: h2load cannot see trailers, so the same framed request is replayed with a gRPC
  client that reads them (all must be OK), and h2load's per-request log must be all HTTP 200;
- local evaluation (the client's `evaluator_from_snapshot`) on one core; target >= 50,000
  assignments/s;
- resident memory of an assignment process serving 1,000 running experiments; target <= 150 MB.

`--workers N` runs N assignment processes sharing the port (and N echo processes).
Writes bench/results/assign.json (assign-workersN.json with --workers N).
Run: `make bench-assign` (or `make bench-assign ARGS="--workers 2"`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import re
import secrets
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.processes import free_port, service_env, wait_serving  # noqa: E402
from verdict.local import evaluator_from_snapshot  # noqa: E402
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2  # noqa: E402
from verdict_platform.db import with_database  # noqa: E402
from verdict_platform.embedded import resolve_servers  # noqa: E402
from verdict_platform.keys import KeyStore  # noqa: E402
from verdict_platform.migrator import migrate  # noqa: E402
from verdict_platform.roles import Role  # noqa: E402
from verdict_platform.settings import Settings, load_settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "assign.json"
LATENCY_CLIENTS = (16, 4, 2)
"""h2load clients (one stream each) sharing the half rate; the last is the headline figure.

h2load's fixed-rate clients fire in lockstep, so each tick delivers a burst of one request per
client, and the last of a burst waits for all the others: with 16 clients the bare echo's own
p99 is several ms, a measure of the burst, not of the server. Two clients come closest to
independent arrivals; all three are reported, for Assign and the echo alike."""
LATENCY_ROUNDS = 3
"""Alternating Assign/echo runs of the headline client count (each at least LATENCY_SECONDS);
the reported p99 of each is the median of its rounds: one stall of the shared machine (tens of
ms) lifts a single run's p99 past any target, for the echo as much as for Assign."""
LATENCY_SECONDS = 10
METHOD = "/verdict.v1.AssignmentService/Assign"
ATTRIBUTES = {
    "country": "FR",
    "plan": "pro",
    "app_version": "2.4.1",
    "org_id": "acme",
    "language": "fr",
    "platform": "web",
    "signup_days": 412,
    "beta": True,
}
CONDITIONS: list[dict[str, Any]] = [
    {"country": {"$in": ["US", "CA", "GB", "FR", "DE"]}},
    {"plan": {"$ne": "free"}},
    {"app_version": {"$vgte": "2.1.0"}},
    {"$or": [{"beta": True}, {"signup_days": {"$gt": 30}}]},
    {"language": {"$regex": "^(fr|en)"}, "platform": {"$in": ["web", "ios"]}},
]


def experiment(i: int) -> experiment_pb2.Experiment:
    e = experiment_pb2.Experiment(key=f"bench-{i:04d}", name=f"bench {i}", coverage=0.9)
    for v, model in enumerate(["gpt-4o-mini", "gpt-4o"]):
        variant = e.variants.add(key=f"v{v}", name=model, weight=0.5, is_control=v == 0)
        variant.payload.update(
            {"model": model, "prompt_version": f"v{7 + v}", "temperature": 0.2, "max_tokens": 512}
        )
    e.targeting.update(CONDITIONS[i % len(CONDITIONS)])
    if i % 4 == 0:
        e.layer.id, e.layer.start, e.layer.end = "layer-a", (i % 8) / 8, (i % 8) / 8 + 0.5
    return e


async def prepare(base: Settings, experiments: int) -> tuple[Settings, str]:
    """A fresh migrated database with `experiments` running experiments; returns an assign key."""
    name = f"verdict_bench_{secrets.token_hex(4)}"
    server_url = base.require_database_url()
    conn = await asyncpg.connect(server_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    settings = dataclasses.replace(
        base, database_url=with_database(server_url, name), redis_namespace=name
    )
    conn = await asyncpg.connect(settings.require_database_url())
    try:
        await migrate(conn)
        await conn.executemany(
            "INSERT INTO experiments (key, status, spec) VALUES ($1, 'running', $2::jsonb)",
            [(f"bench-{i:04d}", json.dumps(json_format.MessageToDict(experiment(i))))
             for i in range(experiments)],
        )  # fmt: skip
        await conn.execute("UPDATE config_state SET version = version + 1")
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(settings.require_database_url(), min_size=1, max_size=1)
    key = await KeyStore(pool).create("bench", Role.ASSIGN)
    await pool.close()
    return settings, key


async def drop(base: Settings, settings: Settings) -> None:
    conn = await asyncpg.connect(base.require_database_url())
    name = urlsplit(settings.require_database_url()).path.lstrip("/")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def start_assignment(settings: Settings, port: int, workers: int) -> list[subprocess.Popen[bytes]]:
    env = service_env(
        settings,
        {
            "VERDICT_ASSIGNMENT_PORT": str(port),
            "VERDICT_WORKERS": str(workers),
            "VERDICT_LOG_LEVEL": "WARNING",
            "VERDICT_INGEST_TARGET": f"127.0.0.1:{free_port()}",  # nobody: exposures retried
        },
    )
    procs = [
        subprocess.Popen([sys.executable, "-m", "verdict_assignment"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]  # fmt: skip
    wait_serving(f"127.0.0.1:{port}", timeout=60)
    time.sleep(0.5 * workers)
    return procs


def start_echo(port: int, response: Path, workers: int) -> list[subprocess.Popen[bytes]]:
    args = [sys.executable, str(ROOT / "bench" / "echo_server.py"), "--port", str(port)]
    args += ["--response-file", str(response)] + (["--reuse-port"] if workers > 1 else [])
    procs = [subprocess.Popen(args) for _ in range(workers)]
    deadline = time.monotonic() + 30
    while True:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=1)
            break
        except grpc.FutureTimeoutError:
            assert time.monotonic() < deadline, "echo server did not start"
    time.sleep(0.5 * workers)
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def h2load(
    port: int, body: Path, key: str, *, clients: int, streams: int, seconds: int,
    rps: float | None = None, log: Path | None = None, threads: int = 1,
) -> dict[str, float]:  # fmt: skip
    args = [
        "h2load", f"http://127.0.0.1:{port}{METHOD}", "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-H", f"authorization: Bearer {key}",
        "-c", str(clients), "-m", str(streams), "-t", str(threads),
        "-D", str(seconds), "--warm-up-time", "1",
    ]  # fmt: skip
    if rps is not None:
        args += [f"--rps={rps:.2f}"]
    if log is not None:
        args += ["--log-file", str(log)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored", out)  # fmt: skip
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert rate and done and status, out
    return {
        "requests_per_second": float(rate.group(1)),
        "succeeded": int(done.group(4)),
        "failed": int(done.group(5)) + int(done.group(6)),
        "status_2xx": int(status.group(1)),
    }


def latencies(log: Path) -> dict[str, float]:
    rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    assert all(r[1] == "200" for r in rows), "non-200 responses in the h2load log"
    micros = sorted(int(r[2]) for r in rows)
    q = statistics.quantiles(micros, n=100)
    return {"requests": len(micros), "p50_ms": q[49] / 1000, "p99_ms": q[98] / 1000,
            "max_ms": micros[-1] / 1000}  # fmt: skip


def check_grpc_status(port: int, request: assignment_pb2.AssignRequest, key: str) -> dict[str, Any]:
    """Replays the framed request with a gRPC client, which reads the trailers."""
    codes: dict[str, int] = {}
    sizes = set()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
        for _ in range(200):
            reply, call = stub.Assign.with_call(
                request, metadata=(("authorization", f"Bearer {key}"),), timeout=5
            )
            codes[call.code().name] = codes.get(call.code().name, 0) + 1
            sizes.add(len(reply.SerializeToString()))
            results = len(reply.assignments)
    return {"calls": 200, "codes": codes, "assignments_per_response": results}


def local_evaluation(port: int, key: str) -> dict[str, Any]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        snapshot = (
            assignment_pb2_grpc.AssignmentServiceStub(channel)
            .GetConfigSnapshot(
                assignment_pb2.GetConfigSnapshotRequest(),
                metadata=(("authorization", f"Bearer {key}"),),
            )
            .snapshot
        )
    units = [f"user-{i}" for i in range(20_000)]
    figures: dict[str, Any] = {"experiments": len(snapshot.experiments)}
    for name, native in (("", True), ("pure_python_", False)):
        evaluator = evaluator_from_snapshot(snapshot, native=native)
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            n = 0
            for unit in units:
                n += len(evaluator.assign(unit, ATTRIBUTES))
            runs.append(n / (time.perf_counter() - start))
        rate = statistics.median(runs)
        figures[f"{name}assignments_per_second_median"] = rate
        figures[f"{name}us_per_assign_call_median"] = 1e6 * len(snapshot.experiments) / rate
    return figures


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    base = resolve_servers(dataclasses.replace(load_settings(), data_dir=ROOT / ".data"))
    settings, key = asyncio.run(prepare(base, 20))
    big_settings, _ = asyncio.run(prepare(base, 1000))
    tmp = Path(tempfile.mkdtemp(prefix="bench-assign-"))
    request = assignment_pb2.AssignRequest(unit_id="user-1234567")
    request.attributes.update(ATTRIBUTES)
    message = request.SerializeToString()
    body = tmp / "request.bin"
    body.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
    port, echo_port = free_port(), free_port()
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "h2load": {"clients": args.clients, "streams": args.streams, "seconds": args.seconds},
        "request_bytes": len(message),
    }
    procs = start_assignment(settings, port, args.workers)
    echo: list[subprocess.Popen[bytes]] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = assignment_pb2_grpc.AssignmentServiceStub(channel).Assign(
                request, metadata=(("authorization", f"Bearer {key}"),)
            )
        response = tmp / "response.bin"
        response.write_bytes(reply.SerializeToString())
        result["response_bytes"] = response.stat().st_size
        result["experiments_in_response"] = len(reply.assignments)
        echo = start_echo(echo_port, response, args.workers)
        load = {"clients": args.clients, "streams": args.streams, "seconds": args.seconds}
        rounds = [
            (h2load(echo_port, body, key, **load), h2load(port, body, key, **load))
            for _ in range(args.rounds)
        ]
        ratios = [a["requests_per_second"] / e["requests_per_second"] for e, a in rounds]
        median_round = sorted(range(len(rounds)), key=lambda i: ratios[i])[len(rounds) // 2]
        echo_max, assign_max = rounds[median_round]
        half = echo_max["requests_per_second"] / 2
        seconds = max(args.seconds, LATENCY_SECONDS)

        def at_rate(target: int, name: str, clients: int) -> dict[str, float]:
            log = tmp / f"{name}-{clients}.log"
            log.unlink(missing_ok=True)  # h2load appends to an existing log
            return {
                **h2load(target, body, key, clients=clients, streams=1, seconds=seconds,
                         rps=half / clients, log=log),
                **latencies(log),
            }  # fmt: skip

        targets = (("assign", port), ("echo", echo_port))
        at_half_by_clients = {
            str(clients): {name: at_rate(target, name, clients) for name, target in targets}
            for clients in LATENCY_CLIENTS[:-1]
        }
        headline = LATENCY_CLIENTS[-1]
        latency_rounds = [
            {name: at_rate(target, name, headline) for name, target in targets}
            for _ in range(LATENCY_ROUNDS)
        ]

        def median_run(name: str) -> dict[str, Any]:
            ordered = sorted(latency_rounds, key=lambda r: r[name]["p99_ms"])
            return {**ordered[len(ordered) // 2][name],
                    "p99_ms_rounds": [r[name]["p99_ms"] for r in latency_rounds]}  # fmt: skip

        at_half = {name: median_run(name) for name, _ in targets}
        at_half_by_clients[str(headline)] = at_half
        result["echo_max"] = echo_max
        result["assign_max"] = assign_max
        result["throughput_ratio"] = ratios[median_round]
        result["throughput_rounds"] = [
            {"echo_rps": e["requests_per_second"], "assign_rps": a["requests_per_second"],
             "ratio": r}
            for (e, a), r in zip(rounds, ratios, strict=True)
        ]  # fmt: skip
        result["at_half_echo_max_rate"] = {
            "target_rps": half,
            "clients": LATENCY_CLIENTS[-1],
            **at_half,
            "by_clients": at_half_by_clients,
        }
        result["grpc_status_check"] = check_grpc_status(port, request, key)
        result["server_rss_mb_20_experiments"] = max(rss_mb(p.pid) for p in procs)
        result["local_evaluation"] = local_evaluation(port, key)
    finally:
        stop(echo)
        stop(procs)
    big = start_assignment(big_settings, free_port(), 1)
    try:
        time.sleep(2)
        result["server_rss_mb_1000_experiments"] = rss_mb(big[0].pid)
    finally:
        stop(big)
    asyncio.run(drop(base, settings))
    asyncio.run(drop(base, big_settings))
    result["targets"] = {
        "throughput_ratio_min": 0.85,
        "p99_ms_at_half_echo_max_max": 2.0,
        "local_assignments_per_second_min": 50_000,
        "rss_mb_1000_experiments_max": 150,
    }
    result["passed"] = {
        "throughput_ratio": result["throughput_ratio"] >= 0.85,
        "p99_at_half_rate": result["at_half_echo_max_rate"]["assign"]["p99_ms"] <= 2.0,
        "grpc_status_ok": result["grpc_status_check"]["codes"] == {"OK": 200}
        and all(a["failed"] == 0 for _, a in rounds),
        "local_evaluation": result["local_evaluation"]["assignments_per_second_median"] >= 50_000,
        "rss_1000_experiments": result["server_rss_mb_1000_experiments"] <= 150,
    }
    out = RESULTS if args.workers == 1 else RESULTS.with_name(f"assign-workers{args.workers}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
