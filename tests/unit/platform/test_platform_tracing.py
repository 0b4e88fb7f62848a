"""Where traces start and how the guard decides: a call follows its caller's W3C sampling
decision, a call without one starts a trace at the configured ratio, nothing else starts one;
JSON log lines carry the ids of the span they were written in."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

from verdict.trace_context import parent, traceparent, with_trace
from verdict_platform.logs import JsonFormatter
from verdict_platform.telemetry import sampling
from verdict_platform.telemetry.sampling import DecidedRoot, new_trace
from verdict_platform.telemetry.tracing import RpcTracing

METHOD = "/verdict.v1.AssignmentService/Assign"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> trace.Tracer:
    provider = TracerProvider(sampler=ParentBased(root=DecidedRoot()))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


@pytest.fixture
def ratio() -> Iterator[None]:
    yield
    sampling.set_ratio(0.0)


def test_a_sampled_caller_is_continued_with_its_trace_id_and_parent(tracer: trace.Tracer) -> None:
    rpc = RpcTracing(tracer, ratio=0.0)  # the ratio only decides for calls without a caller
    header = f"00-{TRACE_ID}-{CALLER}-01"
    span = rpc.start(METHOD, header, [("traceparent", header)])
    assert span is not None
    context = span.get_span_context()
    assert format(context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == CALLER  # type: ignore[attr-defined]
    assert span.name == "verdict.v1.AssignmentService/Assign"
    assert span.attributes["rpc.method"] == "Assign"  # type: ignore[attr-defined]


def test_an_unsampled_caller_starts_no_span_whatever_the_ratio(tracer: trace.Tracer) -> None:
    rpc = RpcTracing(tracer, ratio=1.0)
    assert rpc.start(METHOD, f"00-{TRACE_ID}-{CALLER}-00", ()) is None


def test_without_a_caller_the_ratio_decides(tracer: trace.Tracer) -> None:
    assert RpcTracing(tracer, ratio=0.0).start(METHOD, None, ()) is None
    span = RpcTracing(tracer, ratio=1.0).start(METHOD, None, ())
    assert span is not None and span.get_span_context().trace_flags.sampled
    assert span.parent is None  # type: ignore[attr-defined]
    started = [RpcTracing(tracer, ratio=0.25).start(METHOD, None, ()) for _ in range(4000)]
    assert 800 < sum(s is not None for s in started) < 1200


def test_a_malformed_traceparent_is_ignored_and_the_ratio_decides(tracer: trace.Tracer) -> None:
    span = RpcTracing(tracer, ratio=1.0).start(METHOD, "00-nothex-01", ())
    assert span is not None and span.parent is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("flags", "sampled"), [("00", False), ("01", True), ("02", False), ("03", True), ("0f", True)]
)
def test_the_sampled_flag_is_the_low_bit_of_the_flags(
    tracer: trace.Tracer, flags: str, sampled: bool
) -> None:
    header = f"00-{TRACE_ID}-{CALLER}-{flags}"
    span = RpcTracing(tracer, ratio=0.0).start(METHOD, header, [("traceparent", header)])
    assert (span is not None) is sampled


def test_spans_without_a_sampled_parent_are_never_recorded(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    with tracer.start_as_current_span("background write") as span:
        assert not span.is_recording()
    assert exporter.get_finished_spans() == ()


def test_new_trace_starts_a_sampled_root_at_the_processs_ratio(
    tracer: trace.Tracer, exporter: InMemorySpanExporter, ratio: None
) -> None:
    sampling.set_ratio(1.0)
    with (
        new_trace(),
        tracer.start_as_current_span("analysis.run") as run,
        tracer.start_as_current_span("child") as child,
    ):
        assert child.get_span_context().trace_id == run.get_span_context().trace_id
    sampling.set_ratio(0.0)
    with new_trace(), tracer.start_as_current_span("analysis.run") as skipped:
        assert not skipped.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["child", "analysis.run"]


def test_trace_context_travels_in_metadata_and_in_stored_text(tracer: trace.Tracer) -> None:
    assert with_trace((("authorization", "Bearer k"),)) == (("authorization", "Bearer k"),)
    rpc = RpcTracing(tracer, ratio=1.0)
    span = rpc.start(METHOD, None, ())
    assert span is not None
    with trace.use_span(span, end_on_exit=True):
        metadata = dict(with_trace((("authorization", "Bearer k"),)))
        stored = traceparent()
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert metadata["traceparent"] == stored and stored.split("-")[1] == trace_id
    with parent(stored), tracer.start_as_current_span("alert.deliver") as later:
        assert format(later.get_span_context().trace_id, "032x") == trace_id
        assert later.get_span_context().trace_flags.sampled


def test_json_log_lines_carry_the_ids_of_the_current_span(tracer: trace.Tracer) -> None:
    formatter = JsonFormatter("analysis")
    record = logging.LogRecord("verdict", logging.WARNING, __file__, 1, "stopped %s", ("x",), None)
    assert "trace_id" not in json.loads(formatter.format(record))
    span = RpcTracing(tracer, ratio=1.0).start(METHOD, None, ())
    assert span is not None
    with trace.use_span(span, end_on_exit=True):
        line = json.loads(formatter.format(record))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
    assert line["message"] == "stopped x"
