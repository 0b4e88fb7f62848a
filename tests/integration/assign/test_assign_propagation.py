"""Changes made through ExperimentService reach every assignment process (and local evaluators)
within 1 s."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis
from assign_rows import experiment

from support.processes import RunningService
from verdict.evaluation import Reason
from verdict.local import LocalEvaluator
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason


async def test_a_change_reaches_two_processes_within_one_second(
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: Settings,
    make_key: Callable[..., object],
    start_service: Callable[..., RunningService],
) -> None:
    name = "prop-" + secrets.token_hex(3)
    key = await make_key(Role.ASSIGN)  # type: ignore[misc]
    admin = (("authorization", f"Bearer {await make_key(Role.ADMIN)}"),)  # type: ignore[misc]
    first = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    second = start_service("verdict_assignment", "VERDICT_ASSIGNMENT_PORT")
    md = (("authorization", f"Bearer {key}"),)
    request = assignment_pb2.AssignRequest(
        unit_id="u-1", experiment_keys=[name], skip_exposure_logging=True
    )
    async with (
        grpc.aio.insecure_channel(first.target) as a,
        grpc.aio.insecure_channel(second.target) as b,
        LocalEvaluator(first.target, key) as local,
    ):
        stubs = [assignment_pb2_grpc.AssignmentServiceStub(c) for c in (a, b)]
        experiments = experiment_pb2_grpc.ExperimentServiceStub(a)  # changes go to the first only
        await experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=experiment(name)), metadata=admin
        )
        start = experiment_pb2.StartExperimentRequest(key=name)
        stop = experiment_pb2.StopExperimentRequest(key=name, reason="propagation test")
        changes = [  # (the call, made when its turn comes; the answer it must lead to)
            (
                lambda: experiments.StartExperiment(start, metadata=admin),
                R.ASSIGNMENT_REASON_ASSIGNED,
            ),
            (
                lambda: experiments.StopExperiment(stop, metadata=admin),
                R.ASSIGNMENT_REASON_NOT_RUNNING,
            ),
            (
                lambda: experiments.StartExperiment(start, metadata=admin),
                R.ASSIGNMENT_REASON_ASSIGNED,
            ),
        ]
        for change, reason in changes:
            await change()  # committed when it returns
            started = time.monotonic()
            version = await pool.fetchval("SELECT version FROM config_state")
            pending = set(range(len(stubs)))
            while pending:
                assert time.monotonic() - started < 1.0, f"not propagated to {pending}"
                for i in list(pending):
                    reply = await stubs[i].Assign(request, metadata=md)
                    if reply.assignments[0].reason == reason:
                        assert reply.config_version >= version
                        pending.discard(i)
                await asyncio.sleep(0.01)
            await local.wait_for_version(version, wait_s=1.0 - (time.monotonic() - started))
            expected = (
                Reason.ASSIGNED if reason == R.ASSIGNMENT_REASON_ASSIGNED else Reason.NOT_RUNNING
            )
            assert local.assign("u-1", {}, [name])[0].reason is expected
