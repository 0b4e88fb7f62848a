"""Exposures end to end, with both real processes: a unit's first assignment becomes a row in
`exposures` (via the assignment service's batched sink and IngestService.TrackExposures), with
its variant and segments; repeated calls and `skip_exposure_logging` add nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import asyncpg
import grpc
from google.protobuf import struct_pb2

from support.processes import RunningService
from verdict.v1 import assignment_pb2, assignment_pb2_grpc, experiment_pb2, experiment_pb2_grpc
from verdict_platform.roles import Role
from verdict_platform.settings import Settings


def experiment() -> experiment_pb2.Experiment:
    e = experiment_pb2.Experiment(key="e2e-exposures", name="exposures e2e", coverage=1.0)
    for key, model, control in (("control", "gpt-4o", True), ("mini", "gpt-4o-mini", False)):
        variant = e.variants.add(key=key, name=model, weight=0.5, is_control=control)
        variant.payload.update({"model": model})
    e.analysis_plan.segments.append("country")
    return e


async def exposure_rows(settings: Settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.require_database_url())
    try:
        return await conn.fetch(
            "SELECT unit_id, variant_key, segments FROM exposures WHERE experiment_key = $1",
            "e2e-exposures",
        )
    finally:
        await conn.close()


def test_first_assignments_become_exposure_rows(
    settings: Settings,
    start_service: Callable[..., RunningService],
    make_key_sync: str,
    key_sync: Callable[[Role], str],
) -> None:
    ingest_key = key_sync(Role.INGEST)
    ingest = start_service("verdict_ingest", "VERDICT_INGEST_PORT")
    assignment = start_service(
        "verdict_assignment",
        "VERDICT_ASSIGNMENT_PORT",
        VERDICT_INGEST_TARGET=ingest.target,
        VERDICT_SERVICE_API_KEY=ingest_key,
    )
    admin = (("authorization", f"Bearer {make_key_sync}"),)
    with grpc.insecure_channel(assignment.target) as channel:
        experiments = experiment_pb2_grpc.ExperimentServiceStub(channel)
        experiments.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=experiment()), metadata=admin
        )
        experiments.StartExperiment(
            experiment_pb2.StartExperimentRequest(key="e2e-exposures"), metadata=admin
        )
        stub = assignment_pb2_grpc.AssignmentServiceStub(channel)
        answers: dict[str, str] = {}
        deadline = time.monotonic() + 5
        units = [f"user-{i}" for i in range(300)]
        for unit in units:
            attributes = struct_pb2.Struct()
            attributes.update({"country": "FR" if unit.endswith(("0", "2", "4")) else "DE"})
            request = assignment_pb2.AssignRequest(
                unit_id=unit, attributes=attributes, experiment_keys=["e2e-exposures"]
            )
            while True:  # the first calls may precede the config's arrival
                result = stub.Assign(request, metadata=admin).assignments[0]
                if result.in_experiment or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert result.in_experiment, result
            answers[unit] = result.variant_key
            stub.Assign(request, metadata=admin)  # a repeat is not a new exposure
        preview = assignment_pb2.AssignRequest(
            unit_id="preview-only", experiment_keys=["e2e-exposures"], skip_exposure_logging=True
        )
        assert stub.Assign(preview, metadata=admin).assignments[0].in_experiment

    rows: list[asyncpg.Record] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = asyncio.run(exposure_rows(settings))
        if len(rows) >= len(units):
            break
        time.sleep(0.2)
    assert {r["unit_id"]: r["variant_key"] for r in rows} == answers
    countries = {r["unit_id"]: json.loads(r["segments"]).get("country") for r in rows}
    assert countries["user-10"] == "FR" and countries["user-11"] == "DE"
    assert "preview-only" not in {r["unit_id"] for r in rows}
