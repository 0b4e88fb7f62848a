"""OpenTelemetry GenAI spans into Verdict: the real OTLP/gRPC exporter of the OpenTelemetry SDK,
pointed at a real ingest process, authenticated like every RPC; spans stored as the same
`llm.call` events the LiteLLM callback records, checked field by field in PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from support.eventually import eventually
from support.processes import RunningService, start_service_process
from verdict.integrations import genai_events as ge
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def ingest(settings: Settings) -> Iterator[RunningService]:
    service = start_service_process(settings, "verdict_ingest", "VERDICT_INGEST_PORT")
    yield service
    service.stop()


def _auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
def ingest_key(ingest: RunningService, key_sync: Any) -> str:
    key: str = key_sync(Role.INGEST)
    with grpc.insecure_channel(ingest.target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        eventually(
            lambda: (
                stub.Export(trace_service_pb2.ExportTraceServiceRequest(), metadata=_auth(key))
                is not None
            )
        )
    return key


def _spans() -> list[ReadableSpan]:
    """Three spans as an instrumented gateway makes them: two GenAI calls and a plain one."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "chat-gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("gateway")
    with tracer.start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.usage.input_tokens": 42,
                "gen_ai.usage.output_tokens": 128,
                "gen_ai.response.finish_reasons": ["stop"],
                "user.id": "otel-user-1",
                "verdict.experiment": "prompt-test",
                "verdict.variant": "v2",
                "prompt_version": "v2",
            }
        )
        time.sleep(0.01)  # a measurable duration
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "enduser.id": "otel-user-2",
                "error.type": "RateLimitError",
            }
        )
        span.set_status(Status(StatusCode.ERROR))
    with tracer.start_as_current_span("GET /healthz") as span:
        span.set_attribute("http.route", "/healthz")
    provider.shutdown()
    return list(memory.get_finished_spans())


async def _rows(pool: asyncpg.Pool, event_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch(
        "SELECT * FROM events WHERE event_id = ANY($1::uuid[])", [uuid.UUID(e) for e in event_ids]
    )
    return {str(r["event_id"]): r for r in rows}


def _event_id(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return ge.span_event_id(
        context.trace_id.to_bytes(16, "big"), context.span_id.to_bytes(8, "big")
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_genai_spans_from_the_sdk_exporter_become_llm_call_events(
    ingest: RunningService, ingest_key: str, pool: asyncpg.Pool
) -> None:
    spans = _spans()
    exporter = OTLPSpanExporter(endpoint=ingest.target, insecure=True, headers=_auth(ingest_key))
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # a retry: no second events
    exporter.shutdown()

    ok, failed, _plain = spans
    rows = await _rows(pool, [_event_id(s) for s in spans])
    assert set(rows) == {_event_id(ok), _event_id(failed)}  # the plain span is dropped
    count = await pool.fetchval(
        "SELECT count(*) FROM events WHERE unit_id = ANY($1)", ["otel-user-1", "otel-user-2"]
    )
    assert count == 2

    first = rows[_event_id(ok)]
    assert first["unit_id"] == "otel-user-1"
    assert first["name"] == "llm.call"
    assert first["ts"].timestamp() == pytest.approx(ok.start_time / 1e9, abs=1e-6)
    measures = dict(zip(first["measure_names"], first["measure_values"], strict=True))
    assert measures.pop("latency_ms") == pytest.approx((ok.end_time - ok.start_time) / 1e6)
    assert measures == {
        "gen_ai.usage.input_tokens": 42.0,
        "gen_ai.usage.output_tokens": 128.0,
        "error": 0.0,
    }
    assert json.loads(first["properties"]) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": "stop",
        "verdict.experiment": "prompt-test",
        "verdict.variant": "v2",
        "prompt_version": "v2",
    }
    second = rows[_event_id(failed)]
    assert second["unit_id"] == "otel-user-2"
    assert dict(zip(second["measure_names"], second["measure_values"], strict=True))["error"] == 1.0
    assert json.loads(second["properties"])["error.type"] == "RateLimitError"


def _span(trace: bytes, attributes: dict[str, Any]) -> trace_pb2.Span:
    now = time.time_ns()
    span = trace_pb2.Span(
        trace_id=trace,
        span_id=uuid.uuid4().bytes[:8],
        name="chat",
        start_time_unix_nano=now - 5_000_000,
        end_time_unix_nano=now,
    )
    for key, value in attributes.items():
        any_value = (
            common_pb2.AnyValue(int_value=value)
            if isinstance(value, int)
            else common_pb2.AnyValue(string_value=value)
        )
        span.attributes.append(common_pb2.KeyValue(key=key, value=any_value))
    return span


@pytest.mark.asyncio(loop_scope="session")
async def test_bad_spans_are_partial_success_and_the_good_ones_land(
    ingest: RunningService, ingest_key: str, pool: asyncpg.Pool
) -> None:
    trace = uuid.uuid4().bytes
    unit = f"partial-{uuid.uuid4().hex[:8]}"
    good = {"gen_ai.request.model": "m", "user.id": unit, "gen_ai.usage.output_tokens": 3}
    spans = [
        _span(trace, good),
        _span(trace, {"gen_ai.request.model": "m"}),  # no unit id
        _span(trace, {**good, "gen_ai.request.model": "x" * 2000}),  # over a property's limit
        _span(trace, {**good, "gen_ai.usage.input_tokens": "many"}),  # not a number
        _span(trace, {"http.route": "/"}),  # not a GenAI span: dropped, not rejected
    ]
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )
    with grpc.insecure_channel(ingest.target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        reply = stub.Export(request, metadata=_auth(ingest_key), timeout=10)
    assert reply.partial_success.rejected_spans == 3
    message = reply.partial_success.error_message
    assert "spans[1]: no unit id: none of enduser.id, user.id is set" in message
    assert "spans[2]: event properties[gen_ai.request.model] value must be at most 1024" in message
    assert "spans[3]: attribute gen_ai.usage.input_tokens must be a number" in message
    stored = await pool.fetch("SELECT measure_names FROM events WHERE unit_id = $1", unit)
    assert [sorted(r["measure_names"]) for r in stored] == [
        ["error", "gen_ai.usage.output_tokens", "latency_ms"]
    ]


def test_otlp_export_needs_an_ingest_key_and_a_valid_message(
    ingest: RunningService, ingest_key: str, key_sync: Any
) -> None:
    read_key = key_sync(Role.READ)
    request = trace_service_pb2.ExportTraceServiceRequest()
    with grpc.insecure_channel(ingest.target) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as anonymous:
            stub.Export(request, timeout=10)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

        def refused() -> bool:
            try:
                stub.Export(request, metadata=_auth(read_key), timeout=10)
            except grpc.RpcError as error:
                return error.code() == grpc.StatusCode.PERMISSION_DENIED
            return False

        assert eventually(refused)
        raw = channel.unary_unary(EXPORT)
        with pytest.raises(grpc.RpcError) as malformed:
            raw(b"\xff\xff\xff", metadata=_auth(ingest_key), timeout=10)
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
