"""The guard's telemetry on a real in-process gRPC server: every call is counted and timed per
method and status code (read through OpenTelemetry's in-memory reader); with tracing, a call
that carries a sampled W3C `traceparent` gets a server span in its caller's trace, current in
the handler, and a call whose caller did not sample gets none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

from verdict.v1 import experiment_pb2, experiment_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from verdict_platform.errors import InvalidArgument, NotFound
from verdict_platform.guard import guarded_server
from verdict_platform.keyring import KeyRing
from verdict_platform.keys import hash_key
from verdict_platform.roles import Role
from verdict_platform.telemetry.catalog import REGISTRY
from verdict_platform.telemetry.export import InMemoryReader, meter_provider
from verdict_platform.telemetry.sampling import DecidedRoot
from verdict_platform.telemetry.tracing import RpcTracing

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider(sampler=ParentBased(root=DecidedRoot()))
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
TRACER = _provider.get_tracer("test")
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"
GET = "verdict.v1.ExperimentService/GetExperiment"
STREAM = "verdict.v1.IngestService/StreamEvents"


class Directory:
    async def active_hashes(self) -> dict[bytes, tuple[str, Role]]:
        return {hash_key("admin-key"): ("ops", Role.ADMIN)}


class Experiments(experiment_pb2_grpc.ExperimentServiceServicer):
    async def GetExperiment(self, request: Any, context: Any) -> Any:
        with TRACER.start_as_current_span("handler work"):  # joins the call's span, if any
            pass
        if request.key == "missing":
            raise NotFound("no such experiment")
        if request.key == "bad":
            raise InvalidArgument.of("key", "must be a slug")
        if request.key == "bug":
            raise ZeroDivisionError
        if request.key == "abort":  # a handler may still answer with grpc's own abort
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "exists")
        return experiment_pb2.GetExperimentResponse(
            experiment=experiment_pb2.Experiment(key=request.key)
        )


class Ingest(ingest_pb2_grpc.IngestServiceServicer):
    async def StreamEvents(self, requests: Any, context: Any) -> AsyncIterator[Any]:
        async for request in requests:
            yield ingest_pb2.StreamEventsResponse(batch_id=request.batch_id)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    keyring = KeyRing(Directory(), refresh_s=60)
    await keyring.load()
    server = guarded_server(keyring, tracing=RpcTracing(TRACER, ratio=0.0))
    experiment_pb2_grpc.add_ExperimentServiceServicer_to_server(Experiments(), server)
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(Ingest(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    await server.stop(None)


READER = InMemoryReader(REGISTRY, Resource.create({}))
meter_provider(REGISTRY, Resource.create({}), [READER])


def rpc_counts() -> dict[tuple[str, str], int]:
    """(method, code) -> calls counted so far, as the in-memory reader collects them."""
    data = READER.get_metrics_data()
    assert data is not None
    counts = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "verdict_rpc_server_duration":
                    for p in metric.data.data_points:
                        key = (str(p.attributes["method"]), str(p.attributes["code"]))
                        counts[key] = p.count
    return counts


def delta(before: dict[tuple[str, str], int], after: dict[tuple[str, str], int]) -> dict[Any, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def meta(key: str = "admin-key", sampled: bool | None = None) -> tuple[tuple[str, str], ...]:
    found: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {key}"),)
    if sampled is not None:
        found += (("traceparent", f"00-{TRACE_ID}-{CALLER}-{'01' if sampled else '00'}"),)
    return found


async def test_every_call_is_counted_and_timed_per_method_and_status_code(
    channel: grpc.aio.Channel,
) -> None:
    stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
    before = rpc_counts()
    for key in ("a", "b"):
        await stub.GetExperiment(experiment_pb2.GetExperimentRequest(key=key), metadata=meta())
    for key, metadata in (
        ("missing", meta()),
        ("bad", meta()),
        ("abort", meta()),
        ("a", meta("forged")),
    ):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetExperiment(
                experiment_pb2.GetExperimentRequest(key=key), metadata=metadata
            )
    call = ingest_pb2_grpc.IngestServiceStub(channel).StreamEvents(
        iter([ingest_pb2.StreamEventsRequest(batch_id="b1")]), metadata=meta()
    )
    assert [r.batch_id async for r in call] == ["b1"]
    assert delta(before, rpc_counts()) == {
        (GET, "OK"): 2,
        (GET, "NOT_FOUND"): 1,
        (GET, "INVALID_ARGUMENT"): 1,
        (GET, "ALREADY_EXISTS"): 1,
        (GET, "UNAUTHENTICATED"): 1,
        (STREAM, "OK"): 1,
    }


async def test_a_sampled_caller_gets_a_server_span_current_in_the_handler(
    channel: grpc.aio.Channel,
) -> None:
    EXPORTER.clear()
    stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
    await stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key="a"), metadata=meta(sampled=True)
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetExperiment(
            experiment_pb2.GetExperimentRequest(key="bug"), metadata=meta(sampled=True)
        )
    spans = EXPORTER.get_finished_spans()
    servers = [s for s in spans if s.name == GET]
    assert len(servers) == 2
    for server in servers:
        assert format(server.context.trace_id, "032x") == TRACE_ID
        assert server.parent is not None and format(server.parent.span_id, "016x") == CALLER
        assert server.kind is trace.SpanKind.SERVER
    ok, failed = servers
    assert ok.attributes["rpc.grpc.status_code"] == 0
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    assert failed.status.status_code is trace.StatusCode.ERROR
    work = [s for s in spans if s.name == "handler work"]
    assert {s.parent.span_id for s in work if s.parent} == {s.context.span_id for s in servers}


async def test_a_caller_that_did_not_sample_gets_no_span(channel: grpc.aio.Channel) -> None:
    EXPORTER.clear()
    stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
    await stub.GetExperiment(
        experiment_pb2.GetExperimentRequest(key="a"), metadata=meta(sampled=False)
    )
    await stub.GetExperiment(experiment_pb2.GetExperimentRequest(key="a"), metadata=meta())
    assert EXPORTER.get_finished_spans() == ()  # ratio 0: no new traces either


async def test_a_sampled_stream_is_one_span(channel: grpc.aio.Channel) -> None:
    EXPORTER.clear()
    call = ingest_pb2_grpc.IngestServiceStub(channel).StreamEvents(
        iter([ingest_pb2.StreamEventsRequest(batch_id=b) for b in ("b1", "b2")]),
        metadata=meta(sampled=True),
    )
    assert [r.batch_id async for r in call] == ["b1", "b2"]
    [span] = EXPORTER.get_finished_spans()
    assert span.name == STREAM and format(span.context.trace_id, "032x") == TRACE_ID
