"""Every configuration change answers the configuration version that includes it, and that is the
version the assignment service reports once the change has reached it; the `qa` role reads and
assigns but changes nothing. Over a real assignment process (which hosts ExperimentService and
AssignmentService), with the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
import pytest_asyncio
from exp_server import experiment, unique
from google.protobuf.field_mask_pb2 import FieldMask

from support.eventually import eventually_async
from support.processes import RunningService, start_service_process
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
Metadata = tuple[tuple[str, str], ...]


def _bearer(key: str) -> Metadata:
    return (("authorization", f"Bearer {key}"),)


@dataclass(frozen=True)
class Served:
    """The assignment process, stubs on it, and an admin and a QA key."""

    experiments: experiment_pb2_grpc.ExperimentServiceStub
    assignment: assignment_pb2_grpc.AssignmentServiceStub
    admin: Metadata
    qa: Metadata

    async def snapshot_version(self) -> int:
        reply = await self.assignment.GetConfigSnapshot(
            assignment_pb2.GetConfigSnapshotRequest(), metadata=self.qa
        )
        version: int = reply.snapshot.version
        return version


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(
    settings: Settings, make_key: Callable[[Role], Awaitable[str]]
) -> AsyncIterator[Served]:
    admin, qa = await make_key(Role.ADMIN), await make_key(Role.QA)
    service: RunningService = await asyncio.to_thread(
        start_service_process, settings, "verdict_assignment", "VERDICT_ASSIGNMENT_PORT"
    )
    try:
        async with grpc.aio.insecure_channel(service.target) as channel:
            yield Served(
                experiment_pb2_grpc.ExperimentServiceStub(channel),
                assignment_pb2_grpc.AssignmentServiceStub(channel),
                _bearer(admin),
                _bearer(qa),
            )
    finally:
        await asyncio.to_thread(service.stop)


async def _reaches_the_snapshot(served: Served, pool: asyncpg.Pool, version: int) -> None:
    """`version` is the one this change committed, and the assignment service serves it."""
    assert version == await pool.fetchval("SELECT version FROM config_state")

    async def served_now() -> bool:
        return await served.snapshot_version() == version

    await eventually_async(served_now)


async def test_each_change_answers_the_version_the_snapshot_reports(
    served: Served, pool: asyncpg.Pool
) -> None:
    stub, md = served.experiments, served.admin
    key = unique("cv")
    versions: list[int] = []

    async def change(call: Awaitable[Any]) -> Any:
        reply = await call
        await _reaches_the_snapshot(served, pool, reply.config_version)
        versions.append(reply.config_version)
        return reply

    exp = experiment(key)
    await change(
        stub.CreateExperiment(experiment_pb2.CreateExperimentRequest(experiment=exp), metadata=md)
    )
    patch = experiment_pb2.Experiment(key=key, name="renamed")
    request = experiment_pb2.UpdateExperimentRequest(
        experiment=patch, update_mask=FieldMask(paths=["name"])
    )
    await change(stub.UpdateExperiment(request, metadata=md))
    await change(stub.StartExperiment(experiment_pb2.StartExperimentRequest(key=key), metadata=md))
    await change(
        stub.StopExperiment(
            experiment_pb2.StopExperimentRequest(key=key, reason="done"), metadata=md
        )
    )
    await change(
        stub.ArchiveExperiment(experiment_pb2.ArchiveExperimentRequest(key=key), metadata=md)
    )
    group = experiment_pb2.SavedGroup(key=unique("grp"))
    group.values.add(string_value="u1")
    await change(
        stub.PutSavedGroup(experiment_pb2.PutSavedGroupRequest(saved_group=group), metadata=md)
    )
    assert versions == sorted(set(versions)) and len(versions) == 6


async def test_archiving_again_answers_the_current_version(
    served: Served, pool: asyncpg.Pool
) -> None:
    key = unique("cv-arch")
    stub, md = served.experiments, served.admin
    await stub.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=experiment(key)), metadata=md
    )
    first = await stub.ArchiveExperiment(
        experiment_pb2.ArchiveExperimentRequest(key=key), metadata=md
    )
    again = await stub.ArchiveExperiment(
        experiment_pb2.ArchiveExperimentRequest(key=key), metadata=md
    )
    assert again.config_version == first.config_version
    assert again.config_version == await pool.fetchval("SELECT version FROM config_state")


async def test_a_refused_change_bumps_no_version(served: Served, pool: asyncpg.Pool) -> None:
    before = await pool.fetchval("SELECT version FROM config_state")
    bad = experiment(unique("cv-bad"), coverage=2.0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=bad), metadata=served.admin
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert await pool.fetchval("SELECT version FROM config_state") == before


async def test_the_qa_role_reads_and_assigns_but_changes_nothing(served: Served) -> None:
    key = unique("qa-read")
    admin, qa = served.admin, served.qa
    await served.experiments.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=experiment(key)), metadata=admin
    )
    started = await served.experiments.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=key), metadata=admin
    )
    await eventually_async(lambda: _serves(served, started.config_version))
    got = await served.experiments.GetExperiment(
        experiment_pb2.GetExperimentRequest(key=key), metadata=qa
    )
    assert got.experiment.key == key
    listed = await served.experiments.ListExperiments(
        experiment_pb2.ListExperimentsRequest(query=key), metadata=qa
    )
    assert [e.key for e in listed.experiments] == [key]
    reply = await served.assignment.Assign(
        assignment_pb2.AssignRequest(
            unit_id="u1", experiment_keys=[key], skip_exposure_logging=True
        ),
        metadata=qa,
    )
    assert reply.assignments[0].experiment_key == key
    for call in (
        served.experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=experiment(unique("qa-no"))),
            metadata=qa,
        ),
        served.experiments.StopExperiment(
            experiment_pb2.StopExperimentRequest(key=key, reason="qa"), metadata=qa
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def _serves(served: Served, version: int) -> bool:
    return await served.snapshot_version() >= version
