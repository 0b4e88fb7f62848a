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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from verdict.integrations import genai_events as ge

DEFAULT_UNIT_ATTRIBUTES = ("enduser.id", "user.id")
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

    events: list[SpanEvent]
    sources: list[SpanRef]
    """The span each event came from (same order as `events`)."""
    rejected: list[tuple[SpanRef, str]]
    """GenAI spans that could not become events, with the reason."""
    dropped: int
    """Spans that are not GenAI spans."""


class SpanProblem(ValueError):
    """Why a GenAI span cannot become an event."""


@dataclass(frozen=True, slots=True)
class SpanTime:
    """An event's timestamp, as the intake reads it (a google.protobuf.Timestamp's fields)."""

    seconds: int
    nanos: int


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """A span's event, as the intake reads it (`validation.EventLike`): plain Python values,
    cheaper to build than a protobuf `Event`, validated and encoded the same way."""

    event_id: str
    unit_id: str
    name: str
    timestamp: SpanTime
    measures: dict[str, float]
    properties: dict[str, str]


_TTFT = "gen_ai.server.time_to_first_token"
_COST = "gen_ai.usage.cost"
_SYSTEM = "gen_ai.system"


def _scalar(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [_scalar(v) for v in value.array_value.values]
    return None


def _read(attributes: Sequence[common_pb2.KeyValue], wanted: frozenset[str]) -> dict[str, Any]:
    """The wanted attributes as plain values, in one pass (the others are not decoded)."""
    found: dict[str, Any] = {}
    for kv in attributes:
        key = kv.key
        if key in wanted:
            found[key] = _scalar(kv.value)
    return found


class _Attributes:
    """A span's attributes over its resource's (span first), decoded."""

    __slots__ = ("get",)

    def __init__(self, span: dict[str, Any], resource: dict[str, Any]) -> None:
        self.get = ({**resource, **span} if resource else span).get

    def text(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            return ""
        if type(value) is str:
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            raise SpanProblem(f"attribute {key} must be a string")
        return str(value)

    def number(self, key: str) -> float | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpanProblem(f"attribute {key} must be a number")
        if not math.isfinite(value) or value < 0:
            raise SpanProblem(f"attribute {key} must be a finite number >= 0")
        return float(value)

    def texts(self, key: str) -> list[str]:
        value = self.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            if any(not isinstance(i, str) for i in value):
                raise SpanProblem(f"attribute {key} must be an array of strings")
            return value
        return [self.text(key)]

    def flag(self, key: str) -> bool | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise SpanProblem(f"attribute {key} must be a boolean")


class SpanMapper:
    """Turns export requests into events; one per service (holds the configured unit
    attributes)."""

    def __init__(self, unit_attributes: Sequence[str] = DEFAULT_UNIT_ATTRIBUTES) -> None:
        if not unit_attributes:
            raise ValueError("at least one unit id attribute is needed")
        self._unit_attributes = tuple(unit_attributes)
        self._wanted = frozenset(
            (
                *unit_attributes,
                ge.OPERATION,
                ge.REQUEST_MODEL,
                ge.RESPONSE_MODEL,
                ge.PROVIDER,
                _SYSTEM,
                ge.RESPONSE_ID,
                ge.FINISH_REASONS,
                ge.INPUT_TOKENS,
                ge.OUTPUT_TOKENS,
                _COST,
                _TTFT,
                ge.ERROR_TYPE,
                ge.EXPERIMENT,
                ge.VARIANT,
                ge.PROMPT_VERSION,
                ge.CACHE_HIT,
            )
        )

    def map(self, request: trace_service_pb2.ExportTraceServiceRequest) -> MappedSpans:
        """Every span of the request: an event, a rejection, or dropped."""
        events: list[SpanEvent] = []
        sources: list[SpanRef] = []
        rejected: list[tuple[SpanRef, str]] = []
        dropped = 0
        wanted = self._wanted
        for r, resource_spans in enumerate(request.resource_spans):
            resource = _read(resource_spans.resource.attributes, wanted)
            for c, scope_spans in enumerate(resource_spans.scope_spans):
                for i, span in enumerate(scope_spans.spans):
                    found = _read(span.attributes, wanted)
                    if ge.OPERATION not in found and ge.REQUEST_MODEL not in found:
                        dropped += 1  # not a GenAI span
                        continue
                    ref = SpanRef(r, c, i)
                    try:
                        events.append(self._event(span, _Attributes(found, resource)))
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

    def _event(self, span: trace_pb2.Span, a: _Attributes) -> SpanEvent:
        trace_id, span_id = span.trace_id, span.span_id
        if len(trace_id) != 16 or len(span_id) != 8:
            raise SpanProblem("trace_id must be 16 bytes and span_id 8 bytes")
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if start == 0:
            raise SpanProblem("start_time_unix_nano must be set")
        ttft_s = a.number(_TTFT)
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
            cost_usd=a.number(_COST),
            operation=a.text(ge.OPERATION),
            request_model=a.text(ge.REQUEST_MODEL),
            response_model=a.text(ge.RESPONSE_MODEL),
            provider=a.text(ge.PROVIDER) or a.text(_SYSTEM),
            response_id=a.text(ge.RESPONSE_ID),
            finish_reasons=a.texts(ge.FINISH_REASONS),
            prompt_version=a.text(ge.PROMPT_VERSION),
            experiment=a.text(ge.EXPERIMENT),
            variant=a.text(ge.VARIANT),
            error_type=error_type,
            cache_hit=a.flag(ge.CACHE_HIT),
        )
        seconds, nanos = divmod(start, 1_000_000_000)
        return SpanEvent(
            ge.span_event_id(trace_id, span_id),
            call.unit_id,
            ge.LLM_CALL,
            SpanTime(seconds, nanos),
            ge.call_measures(call),
            ge.call_properties(call),
        )
