"""An in-test IngestService that stores exposures like ingest does (first one wins)."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc

from support.processes import free_port
from verdict.v1 import ingest_pb2, ingest_pb2_grpc


class FakeIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Writes received exposures to `exposures`; can fail the first calls with UNAVAILABLE."""

    def __init__(self, pool: asyncpg.Pool, fail_first: int = 0) -> None:
        self.pool = pool
        self.fail_first = fail_first
        self.calls = 0
        self.request_ids: list[str] = []
        self.exposures: list[ingest_pb2.Exposure] = []
        self.port = free_port()
        self.server = grpc.aio.server()
        ingest_pb2_grpc.add_IngestServiceServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def TrackExposures(
        self, request: ingest_pb2.TrackExposuresRequest, context: Any
    ) -> ingest_pb2.TrackExposuresResponse:
        self.calls += 1
        self.request_ids.append(request.request_id)
        if self.calls <= self.fail_first:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        accepted = 0
        for e in request.exposures:
            status = await self.pool.execute(
                """INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at,
                     allocation_version, segments)
                   VALUES ($1, $2, $3, to_timestamp($4), $5, $6::jsonb)
                   ON CONFLICT DO NOTHING""",
                e.experiment_key,
                e.unit_id,
                e.variant_key,
                e.timestamp.ToNanoseconds() / 1e9,
                e.allocation_version,
                __import__("json").dumps(dict(e.segments)),
            )
            accepted += status.endswith("1")
        self.exposures.extend(request.exposures)
        return ingest_pb2.TrackExposuresResponse(accepted=accepted)
