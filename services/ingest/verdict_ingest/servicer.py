"""IngestService over gRPC: decodes requests, calls the intake, encodes answers.

Domain errors raised here (InvalidArgument, ResourceExhausted, Unavailable) become gRPC statuses
in the platform's guard (which wraps every handler at registration).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from verdict.v1 import ingest_pb2, ingest_pb2_grpc
from verdict_ingest.intake import EventIntake, ExposureIntake, PendingOutcome
from verdict_ingest.validation import Rejection

MAX_UNACKED_BATCHES = 32
"""Batches of one stream read ahead of their acknowledgement (then the reader pauses)."""


def _rejections(rejections: Sequence[Rejection]) -> list[ingest_pb2.Rejection]:
    return [ingest_pb2.Rejection(index=r.index, field=r.field, reason=r.reason) for r in rejections]


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    """The gRPC face of the ingest use cases."""

    def __init__(self, events: EventIntake, exposures: ExposureIntake) -> None:
        self._events = events
        self._exposures = exposures

    async def TrackEvents(
        self, request: ingest_pb2.TrackEventsRequest, context: Any
    ) -> ingest_pb2.TrackEventsResponse:
        outcome = await self._events.track(request.request_id, request.events, request.ByteSize())
        return ingest_pb2.TrackEventsResponse(
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            rejected=outcome.rejected,
            rejections=_rejections(outcome.rejections),
        )

    async def StreamEvents(
        self, request_iterator: AsyncIterator[ingest_pb2.StreamEventsRequest], context: Any
    ) -> AsyncIterator[ingest_pb2.StreamEventsResponse]:
        # A reader task queues batches while this generator acknowledges them, in order, as
        # they commit; the bounded hand-over pauses the reader when acks fall behind.
        pending: asyncio.Queue[tuple[str, PendingOutcome] | BaseException | None] = asyncio.Queue(
            MAX_UNACKED_BATCHES
        )
        reader = asyncio.create_task(self._read(request_iterator, pending))
        try:
            while (item := await pending.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                batch_id, outcome_of = item
                outcome = await outcome_of.result()
                yield ingest_pb2.StreamEventsResponse(
                    batch_id=batch_id,
                    accepted=outcome.accepted,
                    duplicates=outcome.duplicates,
                    rejected=outcome.rejected,
                    rejections=_rejections(outcome.rejections),
                )
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read(
        self,
        requests: AsyncIterator[ingest_pb2.StreamEventsRequest],
        pending: asyncio.Queue[tuple[str, PendingOutcome] | BaseException | None],
    ) -> None:
        try:
            async for request in requests:
                outcome = await self._events.submit(
                    request.batch_id, request.events, request.ByteSize()
                )
                await pending.put((request.batch_id, outcome))
        except Exception as exc:  # ends the stream with this error after the earlier acks
            await pending.put(exc)
            return
        await pending.put(None)

    async def TrackExposures(
        self, request: ingest_pb2.TrackExposuresRequest, context: Any
    ) -> ingest_pb2.TrackExposuresResponse:
        outcome = await self._exposures.track(
            request.request_id, request.exposures, request.ByteSize()
        )
        return ingest_pb2.TrackExposuresResponse(
            accepted=outcome.counts.accepted,
            duplicates=outcome.counts.duplicates,
            conflicts=outcome.counts.conflicts,
            rejected=len(outcome.rejections),
            rejections=_rejections(outcome.rejections),
        )
