"""An in-test IngestService that stores exposures like ingest does (first one wins), records every
call, and can refuse or hold calls so that a test can observe the assignment service's sender.

It stores the hashed attribute and value of each exposure (`exposures.hash_attribute`,
`hash_value`, migration 0010)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc

from support.processes import free_port
from verdict.v1 import ingest_pb2, ingest_pb2_grpc


@dataclass(frozen=True)
class Call:
    """One TrackExposures call as received."""

    request_id: str
    exposures: tuple[ingest_pb2.Exposure, ...]
    refused: bool

    def experiment_keys(self) -> set[str]:
        """The experiment keys the call carried."""
        return {e.experiment_key for e in self.exposures}


class FakeIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Writes received exposures to `exposures` on the test's database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.calls: list[Call] = []
        self._refuse_once: set[str] = set()
        self._hold_next = False
        self._released = asyncio.Event()
        self.holding = asyncio.Event()
        """Set while a call waits for `release()`."""
        self.port = free_port()
        self.server = grpc.aio.server()
        ingest_pb2_grpc.add_IngestServiceServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def refuse_once(self, experiment_key: str) -> None:
        """The first call carrying `experiment_key` is answered UNAVAILABLE (a transient error)."""
        self._refuse_once.add(experiment_key)

    def hold_next(self) -> None:
        """The next call waits, before storing anything, until `release()`."""
        self._hold_next = True
        self._released.clear()

    def release(self) -> None:
        """Lets a held call (and any later one) go on."""
        self._released.set()

    def received(self, experiment_key: str) -> list[ingest_pb2.Exposure]:
        """Exposures of `experiment_key` in the calls that were accepted."""
        return [
            e
            for call in self.calls
            if not call.refused
            for e in call.exposures
            if e.experiment_key == experiment_key
        ]

    def calls_with(self, experiment_key: str) -> list[Call]:
        """The calls (refused ones included) that carried `experiment_key`."""
        return [call for call in self.calls if experiment_key in call.experiment_keys()]

    async def TrackExposures(
        self, request: ingest_pb2.TrackExposuresRequest, context: Any
    ) -> ingest_pb2.TrackExposuresResponse:
        if self._hold_next:
            self._hold_next = False
            self.holding.set()
            await self._released.wait()
            self.holding.clear()
        keys = {e.experiment_key for e in request.exposures}
        if self._refuse_once & keys:
            self._refuse_once -= keys
            self.calls.append(Call(request.request_id, tuple(request.exposures), refused=True))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        accepted = 0
        for e in request.exposures:
            status = await self.pool.execute(
                """INSERT INTO exposures (experiment_key, unit_id, variant_key, exposed_at,
                     allocation_version, segments, hash_attribute, hash_value)
                   VALUES ($1, $2, $3, to_timestamp($4), $5, $6::jsonb, $7, $8)
                   ON CONFLICT DO NOTHING""",
                e.experiment_key,
                e.unit_id,
                e.variant_key,
                e.timestamp.ToNanoseconds() / 1e9,
                e.allocation_version,
                json.dumps(dict(e.segments)),
                e.hash_attribute,
                e.hash_value,
            )
            accepted += status.endswith("1")
        self.calls.append(Call(request.request_id, tuple(request.exposures), refused=False))
        return ingest_pb2.TrackExposuresResponse(accepted=accepted)
