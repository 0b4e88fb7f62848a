"""Exposures end to end, with both real processes: a unit's first assignment becomes a row in
`exposures` (via the assignment service's batched sink and IngestService.TrackExposures), with
its variant and segments; `skip_exposure_logging` adds nothing.

The module's fixture runs the journey once: start ingest and assignment, create and start the
experiment through ExperimentService, assign a preview, then 300 units twice each, and wait for
their rows. The tests read what it left.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
import pytest_asyncio

from support.eventually import eventually_async
from support.processes import start_service_process
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
KEY = "e2e-exposures"
UNITS = [f"user-{i}" for i in range(300)]


def experiment() -> experiment_pb2.Experiment:
    e = experiment_pb2.Experiment(key=KEY, name="exposures e2e", coverage=1.0)
    for key, model, control in (("control", "gpt-4o", True), ("mini", "gpt-4o-mini", False)):
        variant = e.variants.add(key=key, name=model, weight=0.5, is_control=control)
        variant.payload.update({"model": model})
    e.analysis_plan.segments.append("country")
    return e


def country(unit: str) -> str:
    return "FR" if unit.endswith(("0", "2", "4")) else "DE"


@dataclass(frozen=True)
class Journey:
    answers: dict[str, str]
    """The variant each unit was given."""
    rows: list[asyncpg.Record]
    """The experiment's exposure rows once every unit's had arrived."""


async def _rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT unit_id, variant_key, segments FROM exposures WHERE experiment_key = $1", KEY
        )
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def journey(
    settings: Settings, pool: asyncpg.Pool, make_key: Callable[[Role], Awaitable[str]]
) -> AsyncIterator[Journey]:
    ingest_key, admin_key = await make_key(Role.INGEST), await make_key(Role.ADMIN)
    admin = (("authorization", f"Bearer {admin_key}"),)
    ingest = await asyncio.to_thread(
        start_service_process, settings, "verdict_ingest", "VERDICT_INGEST_PORT"
    )
    try:
        assignment = await asyncio.to_thread(
            start_service_process,
            settings,
            "verdict_assignment",
            "VERDICT_ASSIGNMENT_PORT",
            {"VERDICT_INGEST_TARGET": ingest.target, "VERDICT_SERVICE_API_KEY": ingest_key},
        )
        try:
            async with grpc.aio.insecure_channel(assignment.target) as channel:
                answers = await _assign_everyone(channel, admin)
            rows = await eventually_async(
                lambda: _all_rows(pool), describe=lambda: assignment.log() + ingest.log()
            )
            yield Journey(answers, rows)
        finally:
            await asyncio.to_thread(assignment.stop)
    finally:
        await asyncio.to_thread(ingest.stop)


async def _all_rows(pool: asyncpg.Pool) -> list[asyncpg.Record] | None:
    rows = await _rows(pool)
    return rows if len(rows) >= len(UNITS) else None


async def _assign_everyone(
    channel: grpc.aio.Channel, admin: tuple[tuple[str, str], ...]
) -> dict[str, str]:
    experiments = experiment_pb2_grpc.ExperimentServiceStub(channel)
    await experiments.CreateExperiment(
        experiment_pb2.CreateExperimentRequest(experiment=experiment()), metadata=admin
    )
    await experiments.StartExperiment(
        experiment_pb2.StartExperimentRequest(key=KEY), metadata=admin
    )
    stub = assignment_pb2_grpc.AssignmentServiceStub(channel)

    async def assign(unit: str, skip: bool = False) -> assignment_pb2.Assignment:
        request = assignment_pb2.AssignRequest(
            unit_id=unit, experiment_keys=[KEY], skip_exposure_logging=skip
        )
        request.attributes.update({"country": country(unit)})
        reply = await stub.Assign(request, metadata=admin)
        result: assignment_pb2.Assignment = reply.assignments[0]
        return result

    # The configuration reaches the snapshot after StartExperiment returns.
    await eventually_async(lambda: _in_experiment(assign("probe", skip=True)))
    # Buffered before the units: it would have reached ingest with them, or before.
    assert (await assign("preview-only", skip=True)).in_experiment
    answers = {}
    for unit in UNITS:
        result = await assign(unit)
        assert result.in_experiment, result
        answers[unit] = result.variant_key
        await assign(unit)  # a repeat is not a new exposure
    return answers


async def _in_experiment(result: Awaitable[assignment_pb2.Assignment]) -> bool:
    return bool((await result).in_experiment)


async def test_each_first_assignment_becomes_a_row_with_its_variant(journey: Journey) -> None:
    assert {r["unit_id"]: r["variant_key"] for r in journey.rows} == journey.answers


async def test_repeated_assignments_are_not_recorded_as_conflicts(
    journey: Journey, pool: asyncpg.Pool
) -> None:
    conflicts = await pool.fetchval(
        "SELECT count(*) FROM exposure_conflicts WHERE experiment_key = $1", KEY
    )
    assert conflicts == 0


async def test_exposure_rows_carry_the_experiments_segments(journey: Journey) -> None:
    countries = {r["unit_id"]: json.loads(r["segments"]).get("country") for r in journey.rows}
    assert countries == {unit: country(unit) for unit in UNITS}


async def test_a_preview_assignment_leaves_no_row(journey: Journey) -> None:
    assert "preview-only" not in {r["unit_id"] for r in journey.rows}
    assert "probe" not in {r["unit_id"] for r in journey.rows}
