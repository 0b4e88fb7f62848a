"""The one event shape of an LLM call (pure), and the OTLP span mapping that must produce it."""

from __future__ import annotations

import uuid

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from verdict.integrations import genai_events as ge
from verdict_ingest.otlp_spans import SpanMapper
from verdict_ingest.settings import IngestSettings
from verdict_platform.settings import EnvReader, SettingsError

CALL = ge.LlmCall(
    unit_id="u1",
    start_ns=1_700_000_000_250_000_000,
    latency_ms=812.5,
    ttft_ms=120.0,
    input_tokens=10,
    output_tokens=20,
    cost_usd=0.0021,
    request_model="gpt-4o-mini",
    response_model="gpt-4o-mini-2024",
    provider="openai",
    response_id="chatcmpl-1",
    finish_reasons=("stop",),
    prompt_version="v2",
    experiment="exp",
    variant="v2",
    cache_hit=False,
)


def test_a_call_becomes_one_llm_call_event_with_semconv_names() -> None:
    event = ge.call_event(CALL, "5b0b9f3e-0000-4000-8000-000000000001")
    assert event.name == "llm.call"
    assert (event.timestamp.seconds, event.timestamp.nanos) == (1_700_000_000, 250_000_000)
    assert dict(event.measures) == {
        "latency_ms": 812.5,
        "ttft_ms": 120.0,
        "gen_ai.usage.input_tokens": 10.0,
        "gen_ai.usage.output_tokens": 20.0,
        "cost_usd": 0.0021,
        "error": 0.0,
    }
    assert dict(event.properties) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": "stop",
        "prompt_version": "v2",
        "verdict.experiment": "exp",
        "verdict.variant": "v2",
        "cache_hit": "false",
    }


def test_unknown_or_nonsense_figures_are_left_out_and_errors_count() -> None:
    call = ge.LlmCall(
        "u1", 1, latency_ms=float("nan"), input_tokens=-1, error_type="RateLimitError"
    )
    assert ge.call_measures(call) == {"error": 1.0}
    assert ge.call_properties(call) == {
        "gen_ai.operation.name": "chat",
        "error.type": "RateLimitError",
    }


def test_ids_are_deterministic_uuids() -> None:
    a = ge.span_event_id(b"t" * 16, b"s" * 8)
    assert a == ge.span_event_id(b"t" * 16, b"s" * 8) != ge.span_event_id(b"t" * 16, b"x" * 8)
    assert uuid.UUID(a).version == 5
    assert a == str(uuid.uuid5(ge._SPAN_NAMESPACE, (b"t" * 16 + b"s" * 8).hex()))


def test_truncated_keeps_whole_characters_within_the_byte_limit() -> None:
    text = "é" * 600  # 1200 bytes
    cut = ge.truncated(text)
    assert len(cut.encode()) <= 1024 and text.startswith(cut) and len(cut) == 512
    assert ge.truncated("short") == "short"


def _kv(key: str, value: object) -> common_pb2.KeyValue:
    if isinstance(value, bool):
        any_value = common_pb2.AnyValue(bool_value=value)
    elif isinstance(value, int):
        any_value = common_pb2.AnyValue(int_value=value)
    elif isinstance(value, float):
        any_value = common_pb2.AnyValue(double_value=value)
    elif isinstance(value, list):
        any_value = common_pb2.AnyValue(
            array_value=common_pb2.ArrayValue(
                values=[common_pb2.AnyValue(string_value=v) for v in value]
            )
        )
    else:
        any_value = common_pb2.AnyValue(string_value=str(value))
    return common_pb2.KeyValue(key=key, value=any_value)


def _request(
    spans: list[dict[str, object]], resource: dict[str, object] | None = None
) -> trace_service_pb2.ExportTraceServiceRequest:
    start = CALL.start_ns
    built = [
        trace_pb2.Span(
            trace_id=b"t" * 16,
            span_id=bytes([i]) * 8,
            start_time_unix_nano=start,
            end_time_unix_nano=start + 812_500_000,
            attributes=[_kv(k, v) for k, v in attributes.items()],
        )
        for i, attributes in enumerate(spans)
    ]
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(
                    attributes=[_kv(k, v) for k, v in (resource or {}).items()]
                ),
                scope_spans=[trace_pb2.ScopeSpans(spans=built)],
            )
        ]
    )


GENAI_SPAN = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024",
    "gen_ai.provider.name": "openai",
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 20,
    "gen_ai.usage.cost": 0.0021,
    "gen_ai.server.time_to_first_token": 0.12,
    "prompt_version": "v2",
    "verdict.experiment": "exp",
    "verdict.variant": "v2",
    "cache_hit": False,
    "user.id": "u1",
}


def test_a_genai_span_maps_to_the_same_event_as_the_callback() -> None:
    mapped = SpanMapper().map(_request([GENAI_SPAN]))
    expected = ge.call_event(CALL, ge.span_event_id(b"t" * 16, b"\x00" * 8))
    assert len(mapped.events) == 1
    event = mapped.events[0]
    assert dict(event.measures) == pytest.approx(dict(expected.measures))
    assert dict(event.properties) == dict(expected.properties)
    assert (event.event_id, event.unit_id, event.name) == (expected.event_id, "u1", "llm.call")
    assert (event.timestamp.seconds, event.timestamp.nanos) == (
        expected.timestamp.seconds,
        expected.timestamp.nanos,
    )


def test_unit_ids_follow_the_configured_attributes_span_first_then_resource() -> None:
    span = {k: v for k, v in GENAI_SPAN.items() if k != "user.id"}
    mapper = SpanMapper(("tenant.user", "enduser.id"))
    mapped = mapper.map(_request([{**span, "enduser.id": "span-user"}], {"tenant.user": "res"}))
    assert mapped.events[0].unit_id == "res"  # the first configured name wins, wherever it is
    mapped = mapper.map(_request([{**span, "enduser.id": "span-user"}]))
    assert mapped.events[0].unit_id == "span-user"


def test_other_spans_are_dropped_and_bad_genai_spans_rejected_with_reasons() -> None:
    mapped = SpanMapper().map(
        _request(
            [
                {"http.route": "/"},
                {"gen_ai.request.model": "m"},
                {**GENAI_SPAN, "gen_ai.usage.output_tokens": "twenty"},
                {**GENAI_SPAN, "cache_hit": 3},
                GENAI_SPAN,
            ]
        )
    )
    assert mapped.dropped == 1
    assert [(str(ref), why) for ref, why in mapped.rejected] == [
        (
            "resource_spans[0].scope_spans[0].spans[1]",
            "no unit id: none of enduser.id, user.id is set",
        ),
        (
            "resource_spans[0].scope_spans[0].spans[2]",
            "attribute gen_ai.usage.output_tokens must be a number",
        ),
        ("resource_spans[0].scope_spans[0].spans[3]", "attribute cache_hit must be a boolean"),
    ]
    assert [str(s) for s in mapped.sources] == ["resource_spans[0].scope_spans[0].spans[4]"]


def test_the_unit_attributes_setting() -> None:
    assert IngestSettings.read(EnvReader({})).otlp_unit_attributes == ("enduser.id", "user.id")
    env = {"VERDICT_OTLP_UNIT_ATTRIBUTES": " app.user , enduser.id "}
    assert IngestSettings.read(EnvReader(env)).otlp_unit_attributes == ("app.user", "enduser.id")
    with pytest.raises(SettingsError, match="VERDICT_OTLP_UNIT_ATTRIBUTES"):
        IngestSettings.read(EnvReader({"VERDICT_OTLP_UNIT_ATTRIBUTES": " , "}))
