"""An LLM call as a Verdict event: the one mapping shared by the LiteLLM callback and ingest's
OpenTelemetry GenAI intake, so both gateways produce identical events for identical calls. Pure.

Names follow OpenTelemetry's GenAI semantic conventions where one exists
(`gen_ai.request.model`, `gen_ai.usage.input_tokens`, `error.type` ...); the rest are Verdict's
(`latency_ms`, `ttft_ms`, `cost_usd`, `verdict.experiment` ...). Feedback events name what a user
did after a response and carry the response's id (`gen_ai.response.id`).
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from verdict.v1 import ingest_pb2

LLM_CALL = "llm.call"
"""The event recorded for each LLM call (success or error)."""

# Measures of `llm.call`.
LATENCY_MS = "latency_ms"
TTFT_MS = "ttft_ms"
"""Time to first token; streamed calls only."""
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
COST_USD = "cost_usd"
ERROR = "error"
"""1 for a failed call, 0 otherwise (so that an error rate is a sum over a count)."""

# Properties of `llm.call`.
OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
PROVIDER = "gen_ai.provider.name"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
PROMPT_VERSION = "prompt_version"
EXPERIMENT = "verdict.experiment"
VARIANT = "verdict.variant"
ERROR_TYPE = "error.type"
CACHE_HIT = "cache_hit"

# What users do after a response (each event carries RESPONSE_ID when known).
THUMBS_UP = "feedback.thumbs_up"
THUMBS_DOWN = "feedback.thumbs_down"
RATING = "feedback.rating"
"""Carries the measure RATING_MEASURE."""
RATING_MEASURE = "rating"
REGENERATE = "feedback.regenerate"
COPY = "feedback.copy"
CONVERSION = "conversion"
"""Carries the measure VALUE_MEASURE when the conversion has a value."""
VALUE_MEASURE = "value"

MAX_PROPERTY_BYTES = 1024
"""Ingest's limit on a property value (`verdict_ingest.validation`)."""

_SPAN_NAMESPACE = uuid.UUID("6f1d3c1e-4b7a-5b8e-9a53-2f0d6c0e7a11")


@dataclass(frozen=True, slots=True)
class LlmCall:
    """What is known about one LLM call, whichever gateway saw it."""

    unit_id: str
    start_ns: int
    """When the call started, nanoseconds since the epoch (the event's timestamp)."""
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: float | None = None
    output_tokens: float | None = None
    cost_usd: float | None = None
    operation: str = "chat"
    request_model: str = ""
    response_model: str = ""
    provider: str = ""
    response_id: str = ""
    finish_reasons: Sequence[str] = ()
    prompt_version: str = ""
    experiment: str = ""
    variant: str = ""
    error_type: str = ""
    """The error's class; empty for a successful call."""
    cache_hit: bool | None = None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


def call_measures(call: LlmCall) -> dict[str, float]:
    """The measures of the call's event: only those known (negative or non-finite ones are
    left out rather than recorded as nonsense)."""
    measures = {ERROR: 1.0 if call.error_type else 0.0}
    for name, value in (
        (LATENCY_MS, call.latency_ms),
        (TTFT_MS, call.ttft_ms),
        (INPUT_TOKENS, call.input_tokens),
        (OUTPUT_TOKENS, call.output_tokens),
        (COST_USD, call.cost_usd),
    ):
        if _finite(value):
            measures[name] = float(value)  # type: ignore[arg-type]
    return measures


def call_properties(call: LlmCall) -> dict[str, str]:
    """The properties of the call's event: only those known, as ingest stores them."""
    properties = {
        OPERATION: call.operation,
        REQUEST_MODEL: call.request_model,
        RESPONSE_MODEL: call.response_model,
        PROVIDER: call.provider,
        RESPONSE_ID: call.response_id,
        FINISH_REASONS: ",".join(call.finish_reasons),
        PROMPT_VERSION: call.prompt_version,
        EXPERIMENT: call.experiment,
        VARIANT: call.variant,
        ERROR_TYPE: call.error_type,
    }
    if call.cache_hit is not None:
        properties[CACHE_HIT] = "true" if call.cache_hit else "false"
    return {k: v for k, v in properties.items() if v}


def call_event(call: LlmCall, event_id: str) -> ingest_pb2.Event:
    """The `llm.call` event of a call."""
    event = ingest_pb2.Event(
        event_id=event_id,
        unit_id=call.unit_id,
        name=LLM_CALL,
        measures=call_measures(call),
        properties=call_properties(call),
    )
    event.timestamp.seconds, event.timestamp.nanos = divmod(call.start_ns, 1_000_000_000)
    return event


def truncated(value: str, most: int = MAX_PROPERTY_BYTES) -> str:
    """`value` cut to at most `most` UTF-8 bytes (on a character boundary): a gateway records a
    long model name shortened rather than losing the call."""
    if len(value) <= most // 4:
        return value
    data = value.encode()
    return value if len(data) <= most else data[:most].decode(errors="ignore")


_SPAN_NAMESPACE_BYTES = _SPAN_NAMESPACE.bytes


def span_event_id(trace_id: bytes, span_id: bytes) -> str:
    """The event id of a span: the same span exported twice is the same event. It is
    `uuid.uuid5(namespace, hex of the 24 bytes of trace id and span id)`, computed without the
    `UUID` object (ingest derives one per span)."""
    digest = bytearray(
        hashlib.sha1(_SPAN_NAMESPACE_BYTES + (trace_id + span_id).hex().encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
