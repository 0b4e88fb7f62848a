"""In-process spans for tests: the process's tracer provider, sampling as a service's does
(`ParentBased(DecidedRoot())`), recording into memory.

OpenTelemetry allows one global provider per process, so it is installed once, on first use,
and each test clears what was recorded before it looks. Nothing is sampled unless a test starts
a trace itself (a sampled parent, or `new_trace` with a ratio), so tests that do not look at
spans are unaffected.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

from verdict_platform.telemetry.sampling import DecidedRoot

_exporter: InMemorySpanExporter | None = None


def recorded_spans() -> InMemorySpanExporter:
    """The exporter of the process's test tracer provider (installed on first call)."""
    global _exporter
    if _exporter is None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=ParentBased(root=DecidedRoot()))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _exporter = exporter
    return _exporter


def named(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The spans called `name`."""
    return [s for s in spans if s.name == name]
