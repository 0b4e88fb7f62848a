"""The ingest service as the platform runs it: wiring, writers and partition maintenance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import asyncpg
import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from verdict.v1 import ingest_pb2, ingest_pb2_grpc
from verdict_ingest.exposures import ExposureStore
from verdict_ingest.intake import EventIntake, ExposureIntake
from verdict_ingest.otlp_servicer import TraceIntake, TraceServicer
from verdict_ingest.otlp_spans import SpanMapper
from verdict_ingest.partitions import maintain_forever
from verdict_ingest.queue import WriteQueue
from verdict_ingest.servicer import IngestServicer
from verdict_ingest.settings import IngestSettings
from verdict_ingest.validation import BatchLimits, TimeWindow
from verdict_ingest.writer import Connect, EventWriter
from verdict_platform.db import CONNECT_TIMEOUT_S
from verdict_platform.server import Resources, ServiceDefinition, grpc_service_name
from verdict_platform.settings import Settings

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0


class IngestService:
    """IngestService: the servicer, its writer tasks and the partition maintenance task."""

    def __init__(self, resources: Resources, settings: IngestSettings) -> None:
        self._resources = resources
        self._settings = settings
        self._queue = WriteQueue(settings.queue_events, settings.write_events)
        window = TimeWindow(settings.past_window_s, settings.future_window_s)
        limits = BatchLimits(settings.max_batch, settings.max_batch_bytes)
        events = EventIntake(self._queue, window, limits)
        self._servicer = IngestServicer(
            events, ExposureIntake(ExposureStore(resources.pool), window, limits)
        )
        # OTLP/gRPC trace intake: GenAI spans become events through the same intake.
        self._traces = TraceServicer(
            TraceIntake(events, SpanMapper(settings.otlp_unit_attributes), settings.max_batch)
        )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def service_names(self) -> Sequence[str]:
        """The gRPC services this process serves."""
        return (
            grpc_service_name(ingest_pb2, "IngestService"),
            grpc_service_name(trace_service_pb2, "TraceService"),
        )

    def register(self, server: grpc.aio.Server) -> None:
        """Adds the servicers to the server."""
        ingest_pb2_grpc.add_IngestServiceServicer_to_server(self._servicer, server)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            self._traces, server
        )

    async def start(self) -> None:
        """Starts the writers and the partition maintenance."""
        connect = _connector(self._resources.settings)
        for n in range(self._settings.writers):
            writer = EventWriter(self._queue, connect, name=f"writer-{n}")
            self._tasks.append(asyncio.create_task(writer.run(), name=f"ingest-writer-{n}"))
        self._tasks.append(
            asyncio.create_task(
                maintain_forever(
                    self._resources.pool,
                    self._settings.past_window_days,
                    self._settings.retention_days,
                ),
                name="ingest-partitions",
            )
        )

    async def stop(self) -> None:
        """Lets the writers finish what is queued (bounded), then stops the tasks."""
        if not await self._queue.wait_empty(DRAIN_TIMEOUT_S):
            log.warning("stopping with %d events unwritten (not acknowledged)", self._queue.depth)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _connector(settings: Settings) -> Connect:
    url = settings.require_database_url()

    async def connect() -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            url, timeout=CONNECT_TIMEOUT_S, command_timeout=60
        )
        return conn

    return connect


async def build(resources: Resources, settings: IngestSettings) -> IngestService:
    """The service factory `run_service` calls."""
    return IngestService(resources, settings)


DEFINITION = ServiceDefinition("ingest", lambda s: s.ingest_port, IngestSettings.read, build)
"""The ingest process, as the service template runs it."""
