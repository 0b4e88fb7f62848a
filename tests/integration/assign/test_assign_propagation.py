"""Changes made through ExperimentService on one assignment process reach every assignment
process, and the local evaluators that follow them, through Redis: the processes here poll the
database only once an hour, so nothing else could bring a change in time for these tests."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio
from assign_rows import experiment

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict.evaluation import Reason
from verdict.local import LocalEvaluator
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
R = assignment_pb2.AssignmentReason
NO_POLL = {"VERDICT_CONFIG_POLL_S": "3600"}


@dataclass(frozen=True)
class Cluster:
    """Two assignment processes; changes are made through the first one only."""

    first: RunningService
    second: RunningService
    assign_key: str
    admin: tuple[tuple[str, str], ...]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(
    settings: Settings, make_key: Callable[[Role], Awaitable[str]]
) -> AsyncIterator[Cluster]:
    assign_key, admin_key = await make_key(Role.ASSIGN), await make_key(Role.ADMIN)

    def start() -> RunningService:
        return start_service_process(
            settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT", NO_POLL
        )

    first, second = await asyncio.gather(asyncio.to_thread(start), asyncio.to_thread(start))
    try:
        yield Cluster(first, second, assign_key, (("authorization", f"Bearer {admin_key}"),))
    finally:
        await asyncio.gather(asyncio.to_thread(first.stop), asyncio.to_thread(second.stop))


async def _created(cluster: Cluster, channel: grpc.aio.Channel) -> str:
    name = "prop-" + secrets.token_hex(3)
    await experiment_pb2_grpc.ExperimentServiceStub(channel).CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=experiment(name)), metadata=cluster.admin
    )
    return name


async def test_a_change_made_on_one_process_reaches_every_process(
    cluster: Cluster, pool: asyncpg.Pool
) -> None:
    md = (("authorization", f"Bearer {cluster.assign_key}"),)
    async with (
        grpc.aio.insecure_channel(cluster.first.target) as a,
        grpc.aio.insecure_channel(cluster.second.target) as b,
    ):
        experiments = experiment_pb2_grpc.ExperimentServiceStub(a)
        stubs = [assignment_pb2_grpc.AssignmentServiceStub(c) for c in (a, b)]
        name = await _created(cluster, a)
        request = assignment_pb2.AssignRequest(
            unit_id="u-1", experiment_keys=[name], skip_exposure_logging=True
        )

        async def everywhere(reason: int, version: int) -> bool:
            replies = [await stub.Assign(request, metadata=md) for stub in stubs]
            return all(
                r.assignments[0].reason == reason and r.config_version >= version for r in replies
            )

        changes = [  # (the change, made when its turn comes; the answer it must lead to)
            (
                lambda: experiments.StartExperiment(
                    experiment_pb2.StartExperimentRequest(key=name), metadata=cluster.admin
                ),
                R.ASSIGNMENT_REASON_ASSIGNED,
            ),
            (
                lambda: experiments.StopExperiment(
                    experiment_pb2.StopExperimentRequest(key=name, reason="propagation test"),
                    metadata=cluster.admin,
                ),
                R.ASSIGNMENT_REASON_NOT_RUNNING,
            ),
        ]
        for change, reason in changes:
            await change()  # committed when it returns
            version = await pool.fetchval("SELECT version FROM config_state")
            await eventually_async(
                lambda reason=reason, version=version: everywhere(reason, version),
                describe=lambda reason=reason: f"not every process answers {R.Name(reason)}",
            )


async def test_a_change_reaches_the_local_evaluators_of_another_process(
    cluster: Cluster, pool: asyncpg.Pool
) -> None:
    async with (
        grpc.aio.insecure_channel(cluster.first.target) as a,
        LocalEvaluator(cluster.second.target, cluster.assign_key) as local,
    ):
        experiments = experiment_pb2_grpc.ExperimentServiceStub(a)
        name = await _created(cluster, a)
        await experiments.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=name), metadata=cluster.admin
        )
        started = await pool.fetchval("SELECT version FROM config_state")
        await local.wait_for_version(started, wait_s=20)
        assert local.assign("u-1", {}, [name])[0].reason is Reason.ASSIGNED

        await experiments.StopExperiment(
            experiment_pb2.StopExperimentRequest(key=name, reason="propagation test"),
            metadata=cluster.admin,
        )
        stopped = await pool.fetchval("SELECT version FROM config_state")
        await local.wait_for_version(stopped, wait_s=20)
        assert local.assign("u-1", {}, [name])[0].reason is Reason.NOT_RUNNING
