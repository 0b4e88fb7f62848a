"""Traces: the process's tracer provider and the guard's server spans.

`VERDICT_TRACE_EXPORTER=none` (the default) installs nothing: every span Verdict code starts is
the OpenTelemetry API's no-op. With `console` or `otlp` the SDK's provider records spans and a
batch processor exports them off the request path. Where a trace may start is `sampling`'s
business; the guard's decision is made before any OpenTelemetry call, so an unsampled RPC costs
a `random()` (or a look at its `traceparent` flags) and starts no span at all.
"""

from __future__ import annotations

import random
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from verdict_platform.settings import Settings
from verdict_platform.telemetry.sampling import DecidedRoot, new_trace_context, set_ratio

# Status codes that mean the server failed (OpenTelemetry's gRPC conventions); others are the
# caller's problem and leave the span's status unset.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _exporter(settings: Settings) -> SpanExporter | None:
    if settings.trace_exporter == "console":
        return ConsoleSpanExporter()
    if settings.trace_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint or ""
        if endpoint.startswith("https://"):
            ca = settings.tls_ca_file.read_bytes() if settings.tls_ca_file else None
            return OTLPSpanExporter(
                endpoint=endpoint.removeprefix("https://"),
                credentials=grpc.ssl_channel_credentials(root_certificates=ca),
            )
        return OTLPSpanExporter(endpoint=endpoint.removeprefix("http://"), insecure=True)
    return None


def configure_tracing(settings: Settings, service: str) -> Tracing | None:
    """Installs the process's tracer provider; None (and nothing installed) when the exporter
    is `none`."""
    exporter = _exporter(settings)
    if exporter is None:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"verdict-{service}"}),
        sampler=ParentBased(root=DecidedRoot()),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    set_ratio(settings.trace_sample_ratio)
    return Tracing(provider, settings.trace_sample_ratio)


class Tracing:
    """The configured tracing of a process."""

    def __init__(self, provider: TracerProvider, ratio: float) -> None:
        self.provider = provider
        self.ratio = ratio

    def rpc(self) -> RpcTracing:
        """What the guard uses to trace the calls it serves."""
        return RpcTracing(self.provider.get_tracer("verdict.rpc"), self.ratio)

    def shutdown(self) -> None:
        """Exports what is pending and stops the exporter."""
        self.provider.shutdown()


_SAMPLED_LAST_DIGIT = frozenset("13579bdf")
_UNSAMPLED_LAST_DIGIT = frozenset("02468ace")


def _sampled_flag(traceparent: str) -> bool | None:
    """The sampled flag of a W3C `traceparent` ("00-<32 hex>-<16 hex>-<2 hex flags>"): the low
    bit of the flags' last digit. None when it is not of that shape (W3C: then ignored). Only
    the shape is checked here, on every call; a sampled one is parsed in full before use."""
    if len(traceparent) != 55 or traceparent[2] != "-" or traceparent[35] != "-":
        return None
    if traceparent[52] != "-":
        return None
    last = traceparent[54]
    if last in _SAMPLED_LAST_DIGIT:
        return True
    return False if last in _UNSAMPLED_LAST_DIGIT else None


class RpcTracing:
    """Server spans of the calls the guard serves, started only for sampled calls."""

    def __init__(self, tracer: trace.Tracer, ratio: float) -> None:
        self._tracer = tracer
        self._ratio = ratio
        self._random = random.random
        self._root = new_trace_context()

    def start(self, method: str, traceparent: str | None, metadata: Any) -> Span | None:
        """The server span of a call to `method` (full path), or None when it is not sampled.
        `metadata` (the call's, or a function returning it) is read only for a sampled call
        that continues its caller's trace."""
        parent = None
        if traceparent is not None:
            sampled = _sampled_flag(traceparent)
            if sampled is False:
                return None
            if sampled:
                carrier = dict(metadata() if callable(metadata) else metadata)
                parent = propagate.extract(carrier)
                if not trace.get_current_span(parent).get_span_context().is_valid:
                    parent = None
        if parent is None:
            if self._random() >= self._ratio:
                return None
            parent = self._root
        service, _, name = method.strip("/").partition("/")
        return self._tracer.start_span(
            method.strip("/"),
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )


def end_server_span(span: Span, code: grpc.StatusCode, error: BaseException | None) -> None:
    """Ends a server span with the call's status code."""
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
        if error is not None:
            span.record_exception(error)
    span.end()
