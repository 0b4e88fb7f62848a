"""PostgreSQL (a pgserver the test owns) stopped and started while ingest takes a stream of
events, and while analyses run: nothing is lost or counted twice, the same service processes
carry on without a restart, and no snapshot is torn or differs from the one before the outage."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fault_kit import (
    FaultRow,
    OwnPostgres,
    prepare_database,
    size,
    stored_event_ids,
    tracker_options,
)
from fault_rows import figures, stored_snapshots, write_experiment
from google.protobuf.timestamp_pb2 import Timestamp

from support.eventually import eventually, eventually_async
from support.processes import start_service_process
from verdict.tracking import Tracker
from verdict.v1 import analysis_pb2, analysis_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

FAST_ENV = {"VERDICT_GRACE_PERIOD_S": "1"}


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    # Not under pytest's tmp_path: pgserver opens the path's folders to its own system user,
    # and any other pytest session starting on the machine closes pytest-of-<user> again (mode
    # 0700), after which PostgreSQL cannot start there (seen while other suites ran).
    folder = Path(tempfile.mkdtemp(prefix="verdict-faults-pg-"))
    server = OwnPostgres(folder / "pg")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def probe(target: str, key: str, unit: str) -> str | None:
    """One event sent straight to TrackEvents: its id once stored, None while refused."""
    event_id = str(uuid.uuid4())
    stamp = Timestamp()
    stamp.GetCurrentTime()
    request = ingest_pb2.TrackEventsRequest(
        request_id=event_id,
        events=[ingest_pb2.Event(event_id=event_id, unit_id=unit, name="probe", timestamp=stamp)],
    )
    with grpc.insecure_channel(target) as channel:
        try:
            ingest_pb2_grpc.IngestServiceStub(channel).TrackEvents(
                request, metadata=(("authorization", f"Bearer {key}"),), timeout=2.0
            )
        except grpc.RpcError:
            return None
    return event_id


def test_postgres_stopped_and_started_during_ingest(
    settings: Settings, own_postgres: OwnPostgres, fault_report: list[FaultRow]
) -> None:
    (key,) = asyncio.run(prepare_database(own_postgres.url, [Role.INGEST]))
    local = dataclasses.replace(settings, database_url=own_postgres.url)
    service = start_service_process(local, "verdict_ingest", "VERDICT_INGEST_PORT", FAST_ENV)
    tracker = Tracker(tracker_options(service.target, key))
    prefix = f"pgdown-{random.getrandbits(32)}-"
    outage_s, run_s = size(3.0, 10.0), size(8.0, 20.0)
    sent: list[str] = []
    marks: dict[str, float] = {}

    def outage() -> None:
        time.sleep(1.5)
        own_postgres.stop()
        marks["down"] = time.monotonic()
        time.sleep(outage_s)
        own_postgres.start()
        marks["up"] = time.monotonic()
        # Recovered: a request sent now is stored again.
        sent.append(eventually(lambda: probe(service.target, key, prefix + "probe"), timeout=60))
        marks["recovered"] = time.monotonic()

    breaker = threading.Thread(target=outage, daemon=True)
    try:
        breaker.start()
        deadline = time.monotonic() + run_s
        i = 0
        while time.monotonic() < deadline:  # ~1,000 events a second throughout
            for _ in range(100):
                sent.append(tracker.track(f"{prefix}{i % 200}", "llm.call", {"latency_ms": 1.0}))
                i += 1
            time.sleep(0.1)
        breaker.join(90)
        stats = tracker.close()
        alive = service.proc.poll() is None
    finally:
        service.stop()
    stored = asyncio.run(stored_event_ids(own_postgres.url, prefix))
    fault_report.append(
        FaultRow(
            fault="PostgreSQL stopped and started during ingest",
            unit="events",
            requests=len(sent),
            failed=stats.retried,
            lost=len(set(sent) - set(stored)),
            duplicated=len(stored) - len(set(stored)),
            recovery_s=marks["recovered"] - marks["up"],
            recovery="PostgreSQL start → TrackEvents stores again",
            notes=[
                f"outage {outage_s:.0f} s",
                "failed = events resent by the tracker after UNAVAILABLE",
                "same process throughout",
            ],
        )
    )
    assert alive, "the ingest process died"
    assert stats.retried > 0, "the outage was not seen as UNAVAILABLE"
    assert (stats.failed, stats.dropped, stats.sent) == (0, 0, len(sent) - 1)
    assert sorted(stored) == sorted(set(sent)) and len(stored) == len(sent)


@pytest.mark.asyncio(loop_scope="session")
async def test_postgres_stopped_and_started_during_analysis_runs(
    settings: Settings, own_postgres: OwnPostgres, fault_report: list[FaultRow]
) -> None:
    (admin,) = await prepare_database(own_postgres.url, [Role.ADMIN])
    key = f"pgana-{random.getrandbits(24)}"
    await write_experiment(
        own_postgres.url, key, units=size(2_000, 20_000), events=size(10_000, 200_000), seed=7
    )
    local = dataclasses.replace(settings, database_url=own_postgres.url)
    service = start_service_process(
        local, "verdict_analysis", "VERDICT_ANALYSIS_PORT",
        {**FAST_ENV, "VERDICT_ANALYSIS_INTERVAL": "3600"},
    )  # fmt: skip
    md = (("authorization", f"Bearer {admin}"),)
    calls = failed = 0
    results: list[analysis_pb2.ResultSnapshot] = []
    codes: dict[str, int] = {}
    try:
        async with grpc.aio.insecure_channel(service.target) as channel:
            stub = analysis_pb2_grpc.AnalysisServiceStub(channel)

            async def run() -> analysis_pb2.ResultSnapshot | None:
                nonlocal calls, failed
                calls += 1
                started = time.monotonic()
                try:
                    reply = await stub.RunAnalysis(
                        analysis_pb2.RunAnalysisRequest(experiment_key=key), metadata=md, timeout=60
                    )
                except grpc.aio.AioRpcError as error:
                    failed += 1
                    codes[error.code().name] = codes.get(error.code().name, 0) + 1
                    await asyncio.sleep(0.2)
                    return None
                run_times.append(time.monotonic() - started)
                results.append(reply.snapshot)
                return reply.snapshot

            run_times: list[float] = []
            # The scheduler analyses at start; then the reference, before any outage.
            reference = figures(await eventually_async(run, timeout=60))
            calls = failed = 0
            codes.clear()
            stop = asyncio.Event()

            async def load() -> None:
                while not stop.is_set():
                    await run()

            loader = asyncio.create_task(load())
            outages = size(2, 4)
            recoveries = []
            for _ in range(outages):
                # Stop the server while a run is in flight (the runs follow each other).
                await asyncio.sleep(random.uniform(0.1, 1.0) * max(run_times))
                await asyncio.to_thread(own_postgres.stop)
                await asyncio.sleep(size(2.0, 8.0))
                await asyncio.to_thread(own_postgres.start)
                up_at = time.monotonic()
                done = len(results)
                await eventually_async(lambda n=done: len(results) > n, timeout=60)
                recoveries.append(time.monotonic() - up_at)
            stop.set()
            await loader
            alive = service.proc.poll() is None
    finally:
        service.stop()
    stored = await stored_snapshots(own_postgres.url, key)
    changed = sum(figures(s) != reference for s in [*results, *stored])
    fault_report.append(
        FaultRow(
            fault="PostgreSQL stopped and started during analysis runs",
            unit="RunAnalysis calls",
            requests=calls,
            failed=failed,
            lost=0,
            duplicated=0,
            changed=changed,
            recovery_s=max(recoveries),
            recovery="PostgreSQL start → a RunAnalysis completes (worst of the outages)",
            notes=[
                f"{outages} outages of {size(2, 8)} s",
                f"errors {dict(sorted(codes.items()))}",
                f"{len(stored)} stored snapshots, none torn or different",
                "same process throughout",
            ],
        )
    )
    assert alive, "the analysis process died"
    assert failed > 0, "no run met the outage"
    assert set(codes) <= {"UNAVAILABLE"}, codes
    assert changed == 0
