"""An Assign and the exposure it records are one trace: a sampled Assign's span context rides
with its exposures; the batch that carries them is sent under a span continuing the first
sampled Assign and linking the others, and that span's context is what the sender propagates.
Unsampled Assigns add nothing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags

from support.tracing import named, recorded_spans
from verdict.trace_context import parent, with_trace
from verdict.v1 import experiment_pb2
from verdict_assignment.assign.assigner import Assigner
from verdict_assignment.assign.exposures import ExposureSink, PendingExposure
from verdict_assignment.assign.holder import SnapshotHolder
from verdict_assignment.assign.snapshot import build_snapshot, snapshot_proto
from verdict_platform.telemetry.catalog import EXPOSURES_RECORDED, EXPOSURES_SENT

pytestmark = pytest.mark.asyncio(loop_scope="session")


class PropagatingSender:
    """Records the trace context it would send with each batch."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    async def send(self, request_id: str, exposures: Sequence[PendingExposure]) -> None:
        self.metadata.append(dict(with_trace(())))


def assign_span(n: int) -> SpanContext:
    return SpanContext(trace_id=0x1000 + n, span_id=0x100 + n, is_remote=False,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))  # fmt: skip


def exposure(unit: str, span: SpanContext | None) -> PendingExposure:
    return PendingExposure("exp", "a", unit, 1.0, 1, (), span)


async def test_a_batch_continues_the_first_sampled_assign_and_links_the_others() -> None:
    spans = recorded_spans()
    spans.clear()
    sender = PropagatingSender()
    sink = ExposureSink(sender)
    first, second = assign_span(1), assign_span(2)
    for unit, span in (("u1", first), ("u2", None), ("u3", second), ("u4", first)):
        sink.record(exposure(unit, span))
    await sink.flush()
    [send] = named(spans.get_finished_spans(), "exposures.send")
    assert send.context.trace_id == first.trace_id
    assert send.parent is not None and send.parent.span_id == first.span_id
    assert [link.context.span_id for link in send.links] == [second.span_id]
    assert send.attributes is not None and send.attributes["verdict.exposures"] == 4
    [sent] = sender.metadata
    assert sent["traceparent"] == f"00-{first.trace_id:032x}-{send.context.span_id:016x}-01"


async def test_a_batch_of_unsampled_exposures_carries_no_trace() -> None:
    spans = recorded_spans()
    spans.clear()
    sender = PropagatingSender()
    sink = ExposureSink(sender)
    sink.record(exposure("u1", None))
    recorded, sent = EXPOSURES_RECORDED.values(), EXPOSURES_SENT.values()
    await sink.flush()
    assert sender.metadata == [{}]
    assert named(spans.get_finished_spans(), "exposures.send") == []
    assert recorded  # the counters saw it
    assert dict(EXPOSURES_SENT.values())[()] == dict(sent).get((), 0) + 1


async def test_a_sampled_assign_records_its_span_with_the_exposure() -> None:
    recorded_spans()
    experiment = json_format.ParseDict(
        {
            "key": "e",
            "status": "EXPERIMENT_STATUS_RUNNING",
            "coverage": 1.0,
            "variants": [
                {"key": "a", "weight": 0.5, "isControl": True},
                {"key": "b", "weight": 0.5},
            ],
        },
        experiment_pb2.Experiment(),
    )
    holder = SnapshotHolder()
    holder.swap(build_snapshot(snapshot_proto(1, [experiment])))
    sink = ExposureSink(PropagatingSender())
    assigner = Assigner(holder, None, sink)
    caller = assign_span(3)
    with parent(caller), trace.get_tracer("test").start_as_current_span("Assign") as span:
        await assigner.assign("u1", {}, [])
    await assigner.assign("u2", {}, [])  # no span current: nothing to carry
    traced, untraced = sink._buffer
    assert traced.trace == span.get_span_context() and traced.trace.trace_id == caller.trace_id
    assert untraced.trace is None
