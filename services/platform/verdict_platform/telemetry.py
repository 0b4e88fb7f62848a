"""OpenTelemetry set-up hook: a tracer provider per process, exporters off unless configured.

With `VERDICT_TRACE_EXPORTER=console` spans go to stderr; with `none` (the default) spans are
created but dropped, so instrumented code costs next to nothing.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from verdict_platform.settings import Settings


def configure_tracing(settings: Settings, service: str) -> TracerProvider:
    """Installs the process's tracer provider with the configured exporter."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"verdict-{service}"}))
    if settings.trace_exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider
