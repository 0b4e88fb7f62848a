"""Processes killed or restarted under load: the ingest process SIGKILLed while a tracker
streams (the tracker resends), an assignment replica restarted behind a round_robin client, and
the analysis process killed mid-run (the next run completes; no snapshot is torn or wrong)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import secrets
import threading
import time
from collections.abc import Callable

import asyncpg
import grpc
import pytest
from fault_kit import (
    AssignLoad,
    FaultRow,
    create_and_start,
    exposure_conflicts,
    exposure_figures,
    prepare_database,
    reference_answers,
    serves,
    size,
    stored_event_ids,
    stored_exposures,
    tracker_options,
)
from fault_rows import figures, stored_snapshots, write_experiment

from support.eventually import eventually, eventually_async
from support.processes import RunningService, start_service_process
from verdict.tracking import Tracker
from verdict.v1 import analysis_pb2, analysis_pb2_grpc, assignment_pb2_grpc, experiment_pb2_grpc
from verdict_platform.db import with_database
from verdict_platform.keys import KeyStore
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

FAST_ENV = {"VERDICT_GRACE_PERIOD_S": "1"}
CLIENT_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        # The client watches each replica's health: a replica that turns NOT_SERVING when it
        # is told to stop gets no new call during its drain delay (docs/SCALING.md).
        "healthCheckConfig": {"serviceName": "verdict.v1.AssignmentService"},
    }
)


async def _key(url: str, role: Role) -> str:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        return await KeyStore(pool).create(f"faults-{role.value}-{secrets.token_hex(4)}", role)
    finally:
        await pool.close()


def test_ingest_sigkilled_mid_stream_while_the_tracker_resends(
    settings: Settings, fault_report: list[FaultRow]
) -> None:
    key = asyncio.run(_key(settings.require_database_url(), Role.INGEST))
    events, kills = size(20_000, 100_000), size(2, 5)
    service = start_service_process(settings, "verdict_ingest", "VERDICT_INGEST_PORT", FAST_ENV)
    recoveries: list[float] = []
    done = threading.Event()

    def killer() -> None:
        nonlocal service
        rng = random.Random(16)
        for _ in range(kills):
            if done.wait(rng.uniform(0.3, 1.2)):
                return
            killed_at = time.monotonic()
            service.kill()
            service = start_service_process(
                settings, "verdict_ingest", "VERDICT_INGEST_PORT", FAST_ENV, port=service.port
            )
            recoveries.append(time.monotonic() - killed_at)

    prefix = f"kill-{secrets.token_hex(4)}-"
    tracker = Tracker(tracker_options(service.target, key))
    thread = threading.Thread(target=killer, daemon=True)
    sent: list[str] = []
    try:
        thread.start()
        for i in range(events):
            sent.append(tracker.track(f"{prefix}{i % 500}", "llm.call", {"latency_ms": float(i)}))
            if i % 1000 == 0:
                time.sleep(0.05)  # spread the stream so the kills land mid-way
        thread.join(120)
        stats = tracker.close()
    finally:
        done.set()
        thread.join(60)
        service.stop()
    stored = asyncio.run(stored_event_ids(settings.require_database_url(), prefix))
    fault_report.append(
        FaultRow(
            fault="Ingest process SIGKILLed mid-stream, tracker resending",
            unit="events",
            requests=len(sent),
            failed=stats.retried,
            lost=len(set(sent) - set(stored)),
            duplicated=len(stored) - len(set(stored)),
            recovery_s=max(recoveries) if recoveries else 0.0,
            recovery="SIGKILL → the restarted process serves (worst kill)",
            notes=[
                f"{len(recoveries)} kills",
                "failed = events resent by the tracker",
                f"{stats.duplicates} resent events the service already had, counted once",
            ],
        )
    )
    assert len(recoveries) == kills, "the stream ended before every kill"
    assert stats.retried > 0, f"no kill landed mid-stream: {stats}"
    assert (stats.failed, stats.dropped, stats.sent) == (0, 0, events)
    assert sorted(stored) == sorted(set(sent)) and len(stored) == events


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
async def test_assignment_replica_restarted_under_load(
    settings: Settings,
    make_key: Callable[[Role], object],
    fault_report: list[FaultRow],
    signal_name: str,
) -> None:
    admin, assign, ingest_key = [await make_key(r) for r in (Role.ADMIN, Role.ASSIGN, Role.INGEST)]  # type: ignore[misc]
    ingest = start_service_process(settings, "verdict_ingest", "VERDICT_INGEST_PORT")
    env = {"VERDICT_INGEST_TARGET": ingest.target, "VERDICT_SERVICE_API_KEY": str(ingest_key)}
    replicas = [
        start_service_process(settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT", env)
        for _ in range(2)
    ]
    prefix = "restart-" + secrets.token_hex(3)
    keys = [f"{prefix}-e{i}" for i in range(3)]
    stop = asyncio.Event()
    recoveries: list[float] = []
    # One client channel over both replicas, balancing every call (what the headless Service
    # gives a gRPC client in Kubernetes).
    target = "ipv4:" + ",".join(r.target for r in replicas)
    try:
        async with (
            grpc.aio.insecure_channel(replicas[0].target) as admin_channel,
            grpc.aio.insecure_channel(target, [("grpc.service_config", CLIENT_CONFIG)]) as channel,
        ):
            experiments = experiment_pb2_grpc.ExperimentServiceStub(admin_channel)
            for key in keys:
                await create_and_start(experiments, key, str(admin))
            for replica in replicas:
                async with grpc.aio.insecure_channel(replica.target) as one:
                    direct = assignment_pb2_grpc.AssignmentServiceStub(one)
                    await eventually_async(lambda d=direct: serves(d, str(assign), keys[-1]))
            stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
            units = [f"{prefix}-u{i}" for i in range(size(300, 2000))]
            reference = await reference_answers(stub, str(assign), keys, units)
            load = AssignLoad(stub, str(assign), keys, reference, log_exposures=True)
            running = asyncio.create_task(load.run(stop))
            for n in range(size(1, 4)):
                await asyncio.sleep(size(1.5, 4.0))
                index = n % 2
                old = replicas[index]
                began = time.monotonic()
                if signal_name == "SIGTERM":
                    await asyncio.to_thread(old.stop)
                else:
                    await asyncio.to_thread(old.kill)
                replicas[index] = await asyncio.to_thread(
                    start_service_process,
                    settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT", env, old.port,
                )  # fmt: skip
                recoveries.append(time.monotonic() - began)
            await asyncio.sleep(size(1.5, 4.0))
            stop.set()
            await running
    finally:
        stop.set()
        for replica in replicas:
            replica.stop()
        ingest.stop()
    url = settings.require_database_url()
    stored = await eventually_async(
        lambda: stored_exposures(url, keys, load.assigned),
        timeout=10,
    )
    lost, exposures_changed = exposure_figures(reference, load.assigned, stored)
    conflicts = await exposure_conflicts(url, keys)
    fault_report.append(
        FaultRow(
            fault=f"Assignment replica restarted under load ({signal_name}), "
            "health-checked round_robin client",
            unit="Assign calls",
            requests=load.calls,
            failed=load.failed,
            lost=lost,
            duplicated=conflicts,
            changed=load.changed + exposures_changed,
            recovery_s=max(recoveries),
            recovery=f"{signal_name} → the replica serves again (worst restart)",
            notes=[
                f"{len(recoveries)} restarts of 2 replicas",
                f"errors {dict(sorted(load.errors.items()))}" if load.errors else "no errors",
                f"{len(load.assigned) * len(keys)} exposures checked",
            ],
        )
    )
    assert load.changed == 0 and exposures_changed == 0
    assert conflicts == 0
    # A crash loses what the killed replica had not sent yet (up to ~100 ms of exposures);
    # the graceful stop of a rolling update flushes it.
    if signal_name == "SIGTERM":
        assert lost == 0
        # The replica turns NOT_SERVING and drains before it stops accepting; the client's
        # health check moves new calls to the other replica first.
        assert load.failed == 0, load.errors


async def _database(settings: Settings, name: str) -> str:
    server = settings.require_database_url()
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server, name)


async def _drop(settings: Settings, name: str) -> None:
    conn = await asyncpg.connect(settings.require_database_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def analysis_running(url: str) -> bool:
    """Whether an analysis holds its advisory lock in the database (a run in progress)."""
    conn = await asyncpg.connect(url)
    try:
        held: bool = await conn.fetchval(
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await conn.close()
    return held


def _completed_run(target: str, admin: str, key: str) -> analysis_pb2.ResultSnapshot | None:
    """One RunAnalysis: its snapshot, or None when refused (ABORTED while the scheduler's own
    run holds the lock, UNAVAILABLE)."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = analysis_pb2_grpc.AnalysisServiceStub(channel).RunAnalysis(
                analysis_pb2.RunAnalysisRequest(experiment_key=key),
                metadata=(("authorization", f"Bearer {admin}"),),
                timeout=120,
            )
        except grpc.RpcError:
            return None
    snapshot: analysis_pb2.ResultSnapshot = reply.snapshot
    return snapshot


@pytest.mark.asyncio(loop_scope="session")
async def test_analysis_process_killed_mid_run(
    settings: Settings, fault_report: list[FaultRow]
) -> None:
    token = secrets.token_hex(4)
    names = {"ref": f"verdict_fault_ref_{token}", "kill": f"verdict_fault_kill_{token}"}
    key = f"killana-{token}"
    units, events = size(4_000, 20_000), size(40_000, 200_000)
    urls = {}
    admins = {}
    try:
        for role_name, name in names.items():
            urls[role_name] = await _database(settings, name)
            (admins[role_name],) = await prepare_database(urls[role_name], [Role.ADMIN])
            # Received two hours ago: the first run folds all of them into the rollups, so the
            # kills land in the fold as well as in the reads and the snapshot write.
            await write_experiment(
                urls[role_name], key, units, events, seed=11, received_hours_ago=2
            )

        def start(which: str, interval: str = "3600", wait: bool = True) -> RunningService:
            local = dataclasses.replace(settings, database_url=urls[which])
            return start_service_process(
                local, "verdict_analysis", "VERDICT_ANALYSIS_PORT",
                {**FAST_ENV, "VERDICT_ANALYSIS_INTERVAL": interval}, wait=wait,
            )  # fmt: skip

        # The reference: the same data, analysed without a fault.
        ref = await asyncio.to_thread(start, "ref")
        try:
            began = time.monotonic()
            await eventually_async(lambda: stored_snapshots(urls["ref"], key), timeout=120)
            run_s = time.monotonic() - began
            reference = figures((await stored_snapshots(urls["ref"], key))[0])
        finally:
            ref.stop()

        # Kill while an analysis holds its lock (a run in progress): the scheduler of each new
        # process analyses at once (interval 1 s), starting with the fold the last kill undid.
        kills, landed = size(3, 8), 0
        rng = random.Random(5)
        n = 0
        # At least `kills` kills, and more (a few) until one has landed inside a run: on a busy
        # machine a short run can end between the lock check and the kill.
        while n < kills or (not landed and n < kills + 5):
            n += 1
            service = await asyncio.to_thread(start, "kill", "1", False)
            try:
                await eventually_async(lambda: analysis_running(urls["kill"]), timeout=60)
                # The first kill right away (inside the first run's fold, which every kill
                # undoes), the others at a random point of a run.
                await asyncio.sleep(rng.uniform(0.0, 0.6) * run_s if n > 1 else 0.0)
                landed += await analysis_running(urls["kill"])
            finally:
                service.kill()

        began = time.monotonic()
        service = await asyncio.to_thread(start, "kill")
        try:
            final = await asyncio.to_thread(
                eventually, lambda: _completed_run(service.target, admins["kill"], key), 120
            )
            recovery_s = time.monotonic() - began
        finally:
            service.stop()
        stored = await stored_snapshots(urls["kill"], key)
    finally:
        for name in names.values():
            await _drop(settings, name)
    changed = sum(figures(s) != reference for s in [final, *stored])
    fault_report.append(
        FaultRow(
            fault="Analysis process SIGKILLed mid-run",
            unit="analysis runs",
            requests=n + 1,
            failed=n,
            lost=0,
            duplicated=0,
            changed=changed,
            recovery_s=recovery_s,
            recovery="new process start → its run completes",
            notes=[
                f"{n} kills, {landed} while a run held its lock ({run_s:.2f} s per first run)",
                f"{units:,} units, {events:,} events",
                f"{len(stored)} stored snapshots, none torn or different",
            ],
        )
    )
    assert landed >= 1, "no kill landed during a run"
    assert changed == 0
