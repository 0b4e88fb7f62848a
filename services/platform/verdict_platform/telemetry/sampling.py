"""Where a trace may start: Verdict decides, the SDK's sampler follows.

A root span is recorded only when the code that starts it decided to start a trace (a flag in
the context): the guard, for an RPC that arrives without a `traceparent` (`tracing.RpcTracing`),
and `new_trace` around scheduled work. Both decide with the process's ratio
(`VERDICT_TRACE_SAMPLE_RATIO`). Any other span follows its parent (W3C parent-based sampling),
so a span started with no sampled parent is never recorded by accident. No gRPC or SDK import
here: use cases may call `new_trace`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

_DECIDED = context.create_key("verdict-new-trace-sampled")
_ratio = 0.0
"""The process's sample ratio of new traces (0 until tracing is configured)."""


def set_ratio(ratio: float) -> None:
    """Sets the process's sample ratio of new traces (at start, with the tracer provider)."""
    global _ratio
    _ratio = ratio


def new_trace_context() -> Context:
    """A context in which a span with no parent is a sampled root."""
    return context.set_value(_DECIDED, True, Context())


@contextlib.contextmanager
def new_trace() -> Iterator[None]:
    """Spans started inside with no other parent start a trace, sampled at the process's ratio
    (for scheduled work; RPCs get theirs from the guard)."""
    if _ratio <= 0.0 or random.random() >= _ratio:
        yield
        return
    token = context.attach(new_trace_context())
    try:
        yield
    finally:
        context.detach(token)


class DecidedRoot(Sampler):
    """Root spans: sampled when Verdict decided to start a trace here, dropped otherwise."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        # No context given means the current one (the SDK passes the caller's argument on).
        if context.get_value(_DECIDED, parent_context):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "VerdictDecidedRoot"
