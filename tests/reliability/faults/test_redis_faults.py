"""Redis stopped and started while Assign runs under load and operators change the
configuration: no Assign fails or changes its answer, every exposure is stored once, a change
made while Redis is down arrives through the database poll, and the assignment process
subscribes again when Redis returns."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from fault_kit import (
    AssignLoad,
    FaultRow,
    OwnRedis,
    create_and_start,
    exposure_conflicts,
    exposure_figures,
    reference_answers,
    serves,
    size,
    stored_exposures,
)

from support.eventually import eventually_async
from support.processes import start_service_process
from verdict.v1 import assignment_pb2_grpc, experiment_pb2_grpc
from verdict_platform import redis_conn
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_redis_stopped_and_started_during_assign_and_config_changes(
    settings: Settings,
    make_key: Callable[[Role], object],
    tmp_path: Path,
    fault_report: list[FaultRow],
) -> None:
    redis = OwnRedis(tmp_path)
    redis.start()
    mine = dataclasses.replace(settings, redis_url=redis.url)
    admin, assign, ingest_key = [await make_key(r) for r in (Role.ADMIN, Role.ASSIGN, Role.INGEST)]  # type: ignore[misc]
    ingest = start_service_process(mine, "verdict_ingest", "VERDICT_INGEST_PORT")
    assignment = start_service_process(
        mine,
        "verdict_assignment",
        "VERDICT_ASSIGNMENT_PORT",
        {"VERDICT_INGEST_TARGET": ingest.target, "VERDICT_SERVICE_API_KEY": ingest_key},
    )
    prefix = "redis-" + secrets.token_hex(3)
    keys = [f"{prefix}-e{i}" for i in range(3)]
    stop = asyncio.Event()
    config_calls = config_failed = 0
    try:
        async with grpc.aio.insecure_channel(assignment.target) as channel:
            experiments = experiment_pb2_grpc.ExperimentServiceStub(channel)
            stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
            for key in keys:
                await create_and_start(experiments, key, admin)
            await eventually_async(lambda: serves(stub, assign, keys[-1]))
            units = [f"{prefix}-u{i}" for i in range(size(300, 2000))]
            reference = await reference_answers(stub, assign, keys, units)
            load = AssignLoad(stub, assign, keys, reference, log_exposures=True)
            running = asyncio.create_task(load.run(stop))
            await asyncio.sleep(size(1.0, 3.0))

            redis.stop()
            down_at = time.monotonic()
            # A change while Redis is down: committed in PostgreSQL, found by the poll.
            during = f"{prefix}-during"
            config_calls += 2
            try:
                await create_and_start(experiments, during, admin)
            except grpc.aio.AioRpcError:
                config_failed += 2
            changed_at = time.monotonic()
            await eventually_async(lambda: serves(stub, assign, during), timeout=30)
            by_poll_s = time.monotonic() - changed_at
            await asyncio.sleep(max(0.0, size(4.0, 15.0) - (time.monotonic() - down_at)))

            redis.start()
            up_at = time.monotonic()
            channel_name = redis_conn.name(mine, redis_conn.CONFIG_CHANNEL)
            await eventually_async(
                lambda: asyncio.to_thread(redis.subscribers, channel_name), timeout=60
            )
            recovery_s = time.monotonic() - up_at
            after = f"{prefix}-after"
            config_calls += 2
            await create_and_start(experiments, after, admin)
            changed_at = time.monotonic()
            await eventually_async(lambda: serves(stub, assign, after), interval=0.01)
            by_pubsub_s = time.monotonic() - changed_at
            await asyncio.sleep(size(1.0, 3.0))
            stop.set()
            await running
    finally:
        stop.set()
        assignment.stop()  # flushes the exposure buffer to ingest
        ingest.stop()
        redis.stop()

    url = settings.require_database_url()
    stored = await stored_exposures(url, keys, load.assigned)
    lost, exposures_changed = exposure_figures(reference, load.assigned, stored)
    conflicts = await exposure_conflicts(url, keys)
    fault_report.append(
        FaultRow(
            fault="Redis stopped and started during Assign and config changes",
            unit="Assign calls",
            requests=load.calls + config_calls,
            failed=load.failed + config_failed,
            lost=lost,
            duplicated=conflicts,
            changed=load.changed + exposures_changed,
            recovery_s=recovery_s,
            recovery="Redis start → assignment subscribed again",
            notes=[
                f"outage {size(4, 15)} s",
                f"change while down served after {by_poll_s:.2f} s (poll)",
                f"change after recovery served after {by_pubsub_s:.3f} s (pub/sub)",
                f"{len(load.assigned) * len(keys)} exposures checked",
            ],
        )
    )
    assert (load.failed, config_failed) == (0, 0), load.errors
    assert load.changed == 0 and exposures_changed == 0
    assert lost == 0 and conflicts == 0
