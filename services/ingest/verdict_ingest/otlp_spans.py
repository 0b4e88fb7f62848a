"""OpenTelemetry GenAI spans as Verdict events (pure: protobuf messages in, events out).

A span is a GenAI span when it carries `gen_ai.operation.name` or `gen_ai.request.model`; it
becomes the same `llm.call` event the LiteLLM callback records (`verdict.integrations.
genai_events`), its id derived from trace id + span id so that a re-exported span is a
duplicate, never a second event. Other spans are counted and dropped. A GenAI span that cannot
become an event (no unit id, a token count that is no number, ids of the wrong length ...) is
rejected with its reason; the caller answers it as OTLP partial success.

Attributes read (span attributes first, then the resource's):
- unit id: the first present of the configured names (`VERDICT_OTLP_UNIT_ATTRIBUTES`, default
  `enduser.id,user.id`);
- `gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.provider.name`
  (or the older `gen_ai.system`), `gen_ai.response.id`, `gen_ai.response.finish_reasons`;
- `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.usage.cost` (USD),
  `gen_ai.server.time_to_first_token` (seconds);
- `error.type`, else the span's ERROR status (`error.type` = "error");
- `verdict.experiment`, `verdict.variant`, `prompt_version`, `cache_hit`.
Latency is the span's duration; the event's time is the span's start.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from verdict.integrations import genai_events as ge
from verdict.v1 import ingest_pb2

DEFAULT_UNIT_ATTRIBUTES = ("enduser.id", "user.id")
_GENAI_MARKERS = (ge.OPERATION, ge.REQUEST_MODEL)
_STATUS_ERROR = trace_pb2.Status.STATUS_CODE_ERROR


@dataclass(frozen=True)
class SpanRef:
    """Where a span sits in an export request, for error messages."""

    resource: int
    scope: int
    span: int

    def __str__(self) -> str:
        return f"resource_spans[{self.resource}].scope_spans[{self.scope}].spans[{self.span}]"


@dataclass(frozen=True)
class MappedSpans:
    """An export request's spans, sorted out."""

    events: list[ingest_pb2.Event]
    sources: list[SpanRef]
    """The span each event came from (same order as `events`)."""
    rejected: list[tuple[SpanRef, str]]
    """GenAI spans that could not become events, with the reason."""
    dropped: int
    """Spans that are not GenAI spans."""


class SpanProblem(ValueError):
    """Why a GenAI span cannot become an event."""


def _scalar(value: common_pb2.AnyValue) -> str | bool | int | float | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    return None


class _Attributes:
    """A span's attributes over its resource's (span first)."""

    __slots__ = ("_resource", "_span")

    def __init__(
        self, span: Sequence[common_pb2.KeyValue], resource: dict[str, common_pb2.AnyValue]
    ) -> None:
        self._span = {kv.key: kv.value for kv in span}
        self._resource = resource

    def get(self, key: str) -> common_pb2.AnyValue | None:
        found = self._span.get(key)
        return found if found is not None else self._resource.get(key)

    def has_span(self, key: str) -> bool:
        return key in self._span

    def text(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            return ""
        scalar = _scalar(value)
        if scalar is None:
            raise SpanProblem(f"attribute {key} must be a string")
        return str(scalar) if not isinstance(scalar, bool) else ("true" if scalar else "false")

    def number(self, key: str) -> float | None:
        value = self.get(key)
        if value is None:
            return None
        scalar = _scalar(value)
        if isinstance(scalar, bool) or not isinstance(scalar, int | float):
            raise SpanProblem(f"attribute {key} must be a number")
        if not math.isfinite(scalar) or scalar < 0:
            raise SpanProblem(f"attribute {key} must be a finite number >= 0")
        return float(scalar)

    def texts(self, key: str) -> list[str]:
        value = self.get(key)
        if value is None:
            return []
        if value.WhichOneof("value") == "array_value":
            items = [_scalar(v) for v in value.array_value.values]
            if any(not isinstance(i, str) for i in items):
                raise SpanProblem(f"attribute {key} must be an array of strings")
            return [str(i) for i in items]
        return [self.text(key)]

    def flag(self, key: str) -> bool | None:
        value = self.get(key)
        if value is None:
            return None
        scalar = _scalar(value)
        if isinstance(scalar, bool):
            return scalar
        if isinstance(scalar, str) and scalar.lower() in ("true", "false"):
            return scalar.lower() == "true"
        raise SpanProblem(f"attribute {key} must be a boolean")


class SpanMapper:
    """Turns export requests into events; one per service (holds the configured unit
    attributes)."""

    def __init__(self, unit_attributes: Sequence[str] = DEFAULT_UNIT_ATTRIBUTES) -> None:
        if not unit_attributes:
            raise ValueError("at least one unit id attribute is needed")
        self._unit_attributes = tuple(unit_attributes)

    def map(self, request: trace_service_pb2.ExportTraceServiceRequest) -> MappedSpans:
        """Every span of the request: an event, a rejection, or dropped."""
        events: list[ingest_pb2.Event] = []
        sources: list[SpanRef] = []
        rejected: list[tuple[SpanRef, str]] = []
        dropped = 0
        for ref, span, resource in _spans(request):
            attributes = _Attributes(span.attributes, resource)
            if not any(attributes.has_span(k) for k in _GENAI_MARKERS):
                dropped += 1
                continue
            try:
                events.append(self._event(span, attributes))
            except SpanProblem as problem:
                rejected.append((ref, str(problem)))
                continue
            sources.append(ref)
        return MappedSpans(events, sources, rejected, dropped)

    def _unit(self, attributes: _Attributes) -> str:
        for key in self._unit_attributes:
            unit = attributes.text(key)
            if unit:
                return unit
        raise SpanProblem(f"no unit id: none of {', '.join(self._unit_attributes)} is set")

    def _event(self, span: trace_pb2.Span, a: _Attributes) -> ingest_pb2.Event:
        if len(span.trace_id) != 16 or len(span.span_id) != 8:
            raise SpanProblem("trace_id must be 16 bytes and span_id 8 bytes")
        if span.start_time_unix_nano == 0:
            raise SpanProblem("start_time_unix_nano must be set")
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        ttft_s = a.number("gen_ai.server.time_to_first_token")
        error_type = a.text(ge.ERROR_TYPE)
        if not error_type and span.status.code == _STATUS_ERROR:
            error_type = "error"
        call = ge.LlmCall(
            unit_id=self._unit(a),
            start_ns=start,
            latency_ms=(end - start) / 1e6 if end >= start else None,
            ttft_ms=None if ttft_s is None else ttft_s * 1000.0,
            input_tokens=a.number(ge.INPUT_TOKENS),
            output_tokens=a.number(ge.OUTPUT_TOKENS),
            cost_usd=a.number("gen_ai.usage.cost"),
            operation=a.text(ge.OPERATION),
            request_model=a.text(ge.REQUEST_MODEL),
            response_model=a.text(ge.RESPONSE_MODEL),
            provider=a.text(ge.PROVIDER) or a.text("gen_ai.system"),
            response_id=a.text(ge.RESPONSE_ID),
            finish_reasons=a.texts(ge.FINISH_REASONS),
            prompt_version=a.text(ge.PROMPT_VERSION),
            experiment=a.text(ge.EXPERIMENT),
            variant=a.text(ge.VARIANT),
            error_type=error_type,
            cache_hit=a.flag(ge.CACHE_HIT),
        )
        return ge.call_event(call, ge.span_event_id(span.trace_id, span.span_id))


def _spans(
    request: trace_service_pb2.ExportTraceServiceRequest,
) -> Iterator[tuple[SpanRef, trace_pb2.Span, dict[str, common_pb2.AnyValue]]]:
    for r, resource_spans in enumerate(request.resource_spans):
        resource = {kv.key: kv.value for kv in resource_spans.resource.attributes}
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for i, span in enumerate(scope_spans.spans):
                yield SpanRef(r, s, i), span, resource
