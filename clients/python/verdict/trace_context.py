"""W3C trace context across Verdict's gRPC calls, with the OpenTelemetry API only (no SDK).

A client adds `traceparent` (and `tracestate`) of the current span to a call's metadata with
`with_trace`; nothing is added when no span is current, so an application without OpenTelemetry
configured pays a context lookup. The server side reads the same keys (the platform's guard).
Work that outlives the call that caused it (a batch sent later, an alert delivered later) keeps
the cause's `SpanContext` or its `traceparent` text and continues the trace under `parent`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from opentelemetry import context, propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

__all__ = ["parent", "sampled_span_context", "traceparent", "with_trace"]

Metadata = tuple[tuple[str, str], ...]


def with_trace(metadata: Sequence[tuple[str, str]] = ()) -> Metadata:
    """`metadata` plus the W3C trace context of the current span (if there is one)."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(carrier)
    return (*metadata, *carrier.items())


def sampled_span_context() -> SpanContext | None:
    """The current span's context when that span is recorded (sampled), else None."""
    span_context = trace.get_current_span().get_span_context()
    return span_context if span_context.trace_flags.sampled else None


def traceparent() -> str:
    """The `traceparent` of the current sampled span, or "" (to store with deferred work)."""
    if sampled_span_context() is None:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


@contextlib.contextmanager
def parent(cause: SpanContext | str | None) -> Iterator[None]:
    """Makes `cause` (a span context, or a stored `traceparent`) the parent of the spans started
    inside; with no cause, the block runs in the current context."""
    if not cause:
        yield
        return
    if isinstance(cause, SpanContext):
        ctx = trace.set_span_in_context(NonRecordingSpan(cause))
    else:
        ctx = propagate.extract({"traceparent": cause})
    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)
