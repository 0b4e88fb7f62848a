"""OTLP/gRPC trace intake: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

Any gateway or SDK that exports OpenTelemetry spans can point its OTLP exporter at ingest (with
an `ingest` key in the `authorization` header). GenAI spans become `llm.call` events through the
same intake as `TrackEvents` (validation, queue, COPY, deduplication by event id); other spans
are dropped. The method checks its input itself (`verdict.limits.SELF_CHECKED`): one bad span
never refuses the export; it is counted in OTLP's partial success (`rejected_spans`, with the
first reasons in `error_message`), and the rest lands. Only bytes that are no export request are
INVALID_ARGUMENT (the guard's decoding).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from verdict_ingest.intake import EventIntake
from verdict_ingest.otlp_spans import SpanMapper, SpanRef
from verdict_ingest.validation import Rejection

log = logging.getLogger(__name__)

MAX_REASONS = 5
"""Reasons quoted in `error_message` (the count covers them all)."""


class TraceIntake:
    """The use case: map an export's spans, hand the events to the intake in batches, count."""

    def __init__(self, events: EventIntake, mapper: SpanMapper, max_batch: int) -> None:
        self._events = events
        self._mapper = mapper
        self._max_batch = max_batch
        self.dropped_spans = 0
        """Spans that were not GenAI spans, since start (logged at debug level per export)."""

    async def export(
        self, request: trace_service_pb2.ExportTraceServiceRequest
    ) -> tuple[int, list[str]]:
        """Stores the GenAI spans' events; returns the rejected spans' count and reasons.
        Raises ResourceExhausted / Unavailable like `TrackEvents` (the exporter retries; the
        events already stored are duplicates then)."""
        mapped = self._mapper.map(request)
        self.dropped_spans += mapped.dropped
        reasons = [f"{ref}: {why}" for ref, why in mapped.rejected]
        rejected = len(mapped.rejected)
        events, sources = mapped.events, mapped.sources
        # The events' size: a share of the request's (they hold less than their spans).
        size = request.ByteSize() // max(1, -(-len(events) // self._max_batch))
        for start in range(0, len(events), self._max_batch):
            chunk = events[start : start + self._max_batch]
            outcome = await self._events.track(f"otlp-{uuid.uuid4()}", chunk, size)
            rejected += outcome.rejected
            reasons.extend(_reasons(outcome.rejections, sources[start:]))
        if mapped.dropped:
            log.debug("dropped %d spans that are not GenAI spans", mapped.dropped)
        return rejected, reasons


def _reasons(rejections: Sequence[Rejection], sources: Sequence[SpanRef]) -> list[str]:
    return [f"{sources[r.index]}: event {r.field} {r.reason}" for r in rejections]


class TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    """The gRPC face of `TraceIntake`."""

    def __init__(self, intake: TraceIntake) -> None:
        self._intake = intake

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        rejected, reasons = await self._intake.export(request)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            shown = "; ".join(reasons[:MAX_REASONS])
            more = len(reasons) - MAX_REASONS
            response.partial_success.error_message = shown + (
                f"; and {more} more" if more > 0 else ""
            )
        return response
