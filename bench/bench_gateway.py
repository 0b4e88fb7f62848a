"""Benchmark of the gateway path (`make bench-gateway`, results in bench/results/gateway.json).

1. The LiteLLM callback's added latency: 10,000 `litellm.completion` calls with `mock_response`
   (no network), without callbacks and with `VerdictCallback` (its `Tracker` sending to a real
   ingest process), interleaved in blocks of 500 so a shared machine's load hits both alike;
   median and p99 per call. LiteLLM runs sync success callbacks on a worker thread, so the
   callback's own cost (`record`: standard logging object -> event -> tracker) is also timed on
   the caller's thread over the same calls. Target: <= 50 us median added.
2. OTLP intake against `TrackEvents` in the same run, on the same ingest process: batches of 500
   GenAI spans (`TraceService/Export`) and of 500 equivalent events, 4 concurrent senders,
   alternating rounds; spans/s over events/s. Target: >= 0.5.

Uses VERDICT_DATABASE_URL / VERDICT_REDIS_URL when set, else the embedded servers; a fresh
database, dropped at the end. BENCH_GATEWAY_CALLS / BENCH_GATEWAY_SPANS make smaller runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import grpc  # noqa: E402
import litellm  # noqa: E402
from bench_ingest import _create_key, _drop, _prepare  # noqa: E402
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import (  # noqa: E402
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.proto.common.v1 import common_pb2  # noqa: E402
from opentelemetry.proto.trace.v1 import trace_pb2  # noqa: E402

from support.processes import start_service_process  # noqa: E402
from verdict.integrations import genai_events as ge  # noqa: E402
from verdict.integrations.litellm.recording import VerdictCallback  # noqa: E402
from verdict.tracking import Tracker, TrackerOptions, WhenFull  # noqa: E402
from verdict.v1 import ingest_pb2, ingest_pb2_grpc  # noqa: E402
from verdict_platform.embedded import resolve_servers  # noqa: E402
from verdict_platform.settings import load_settings  # noqa: E402

CALLS = int(os.environ.get("BENCH_GATEWAY_CALLS", "10000"))
SPANS = int(os.environ.get("BENCH_GATEWAY_SPANS", "200000"))
BLOCK, BATCH, SENDERS = 500, 500, 4
TARGET_ADDED_US, TARGET_RATIO = 50.0, 0.5
CALL = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "hello"}],
    "mock_response": "Hi! How can I help?",
    "user": "bench-user",
}


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[int(0.99 * (len(ordered) - 1))] * 1e6,
    }


class _NoopLogger(CustomLogger):  # type: ignore[misc]
    """A callback that does nothing: what LiteLLM itself costs per call once any is registered
    (it builds the standard logging object and schedules the callbacks)."""

    def log_success_event(self, *args: Any) -> None:
        return None

    def log_failure_event(self, *args: Any) -> None:
        return None


def bench_callback(ingest_target: str, key: str) -> dict[str, Any]:
    tracker = Tracker(TrackerOptions(target=ingest_target, api_key=key, when_full=WhenFull.RAISE))
    callback = VerdictCallback(tracker)
    timings: dict[str, list[float]] = {"without": [], "noop": [], "with": []}
    noop = _NoopLogger()
    record_s: list[float] = []
    recorder_record = callback.record

    def timed_record(kwargs: dict[str, Any], failed: bool) -> None:
        t0 = time.perf_counter()
        recorder_record(kwargs, failed)
        record_s.append(time.perf_counter() - t0)

    callback.record = timed_record  # type: ignore[method-assign]
    for _ in range(20):  # warm up both paths
        litellm.completion(**CALL)
    for block in range(3 * CALLS // BLOCK):
        mode = ("without", "noop", "with")[block % 3]
        callback.uninstall()
        litellm.callbacks[:] = [c for c in litellm.callbacks if c is not noop]
        for name in (
            "success_callback",
            "failure_callback",
            "_async_success_callback",
            "_async_failure_callback",
            "input_callback",
        ):
            listed = getattr(litellm, name, None)
            if isinstance(listed, list):
                listed[:] = [c for c in listed if c is not noop]
        if mode == "with":
            callback.install()
        elif mode == "noop":
            litellm.callbacks.append(noop)
        samples = timings[mode]
        for _ in range(BLOCK):
            t0 = time.perf_counter()
            litellm.completion(**CALL)
            samples.append(time.perf_counter() - t0)
    callback.uninstall()
    deadline = time.monotonic() + 30
    while len(record_s) < CALLS and time.monotonic() < deadline:
        time.sleep(0.05)  # the last callbacks run on LiteLLM's worker thread
    tracker.flush(30)
    stats = tracker.stats()
    tracker.close()
    without, with_ = _quantiles(timings["without"]), _quantiles(timings["with"])
    any_callback = _quantiles(timings["noop"])
    record = _quantiles(record_s)
    return {
        "calls_each": CALLS,
        "without_callback": without,
        "with_noop_callback": any_callback,
        "with_callback": with_,
        "added_median_us": with_["median_us"] - without["median_us"],
        "added_p99_us": with_["p99_us"] - without["p99_us"],
        "added_by_litellm_for_any_callback_median_us": any_callback["median_us"]
        - without["median_us"],
        "added_by_verdict_over_a_noop_callback_median_us": with_["median_us"]
        - any_callback["median_us"],
        "callback_record": {**record, "count": len(record_s)},
        "events_sent": stats.sent,
        "target_added_median_us": TARGET_ADDED_US,
    }


def _span_batch(n: int, offset: int) -> trace_service_pb2.ExportTraceServiceRequest:
    now = time.time_ns()
    spans = []
    for i in range(n):
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.provider.name": "openai",
            "user.id": f"u{(offset + i) % 5000}",
        }
        kvs = [
            common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))
            for k, v in attributes.items()
        ]
        kvs += [
            common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(int_value=v))
            for k, v in (("gen_ai.usage.input_tokens", 42), ("gen_ai.usage.output_tokens", 128))
        ]
        spans.append(
            trace_pb2.Span(
                trace_id=uuid.uuid4().bytes,
                span_id=uuid.uuid4().bytes[:8],
                name="chat gpt-4o-mini",
                start_time_unix_nano=now - 800_000_000,
                end_time_unix_nano=now,
                attributes=kvs,
            )
        )
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )


def _event_batch(n: int, offset: int) -> ingest_pb2.TrackEventsRequest:
    now = time.time_ns() - 800_000_000
    events = []
    for i in range(n):
        call = ge.LlmCall(
            unit_id=f"u{(offset + i) % 5000}",
            start_ns=now,
            latency_ms=800.0,
            input_tokens=42,
            output_tokens=128,
            request_model="gpt-4o-mini",
            response_model="gpt-4o-mini",
            provider="openai",
        )
        events.append(ge.call_event(call, str(uuid.uuid4())))
    return ingest_pb2.TrackEventsRequest(request_id=str(uuid.uuid4()), events=events)


async def _send(target: str, key: str, kind: str, batches: list[Any]) -> float:
    metadata = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        if kind == "otlp":
            call = trace_service_pb2_grpc.TraceServiceStub(channel).Export
        else:
            call = ingest_pb2_grpc.IngestServiceStub(channel).TrackEvents
        queue = list(batches)
        t0 = time.perf_counter()

        async def sender() -> None:
            while queue:
                reply = await call(queue.pop(), metadata=metadata, timeout=60)
                if kind == "otlp":
                    assert not reply.partial_success.rejected_spans, reply.partial_success
                else:
                    assert not reply.rejected, reply.rejections[:1]

        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        return time.perf_counter() - t0


def bench_intake(target: str, key: str) -> dict[str, Any]:
    rounds = 4
    per_round = max(1, SPANS // rounds // BATCH)
    totals = {"otlp": 0.0, "events": 0.0}
    for r in range(rounds):
        for kind in ("otlp", "events") if r % 2 == 0 else ("events", "otlp"):
            make = _span_batch if kind == "otlp" else _event_batch
            batches = [make(BATCH, i * BATCH) for i in range(per_round)]
            totals[kind] += asyncio.run(_send(target, key, kind, batches))
    items = rounds * per_round * BATCH
    spans_per_s, events_per_s = items / totals["otlp"], items / totals["events"]
    return {
        "items_each": items,
        "batch": BATCH,
        "senders": SENDERS,
        "otlp_spans_per_s": spans_per_s,
        "track_events_per_s": events_per_s,
        "ratio": spans_per_s / events_per_s,
        "target_ratio": TARGET_RATIO,
    }


def main() -> None:
    base = load_settings()
    if "VERDICT_DATA_DIR" not in os.environ:
        base = dataclasses.replace(base, data_dir=ROOT / ".data")
    base = resolve_servers(base)
    server_url = base.require_database_url()
    name = f"verdict_bench_{secrets.token_hex(4)}"
    url = asyncio.run(_prepare(server_url, name))
    settings = dataclasses.replace(
        base, database_url=url, redis_namespace=f"bench-{secrets.token_hex(4)}"
    )
    try:
        key = asyncio.run(_create_key(url))
        service = start_service_process(settings, "verdict_ingest", "VERDICT_INGEST_PORT")
        try:
            callback = bench_callback(service.target, key)
            intake = bench_intake(service.target, key)
        finally:
            service.stop()
    finally:
        asyncio.run(_drop(server_url, name))
    result = {
        "benchmark": "gateway",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "litellm": litellm.__version__ if hasattr(litellm, "__version__") else "",
        "callback": callback,
        "intake": intake,
        "met": {
            "added_median_us": callback["added_median_us"] <= TARGET_ADDED_US,
            "otlp_ratio": intake["ratio"] >= TARGET_RATIO,
        },
    }
    out = ROOT / "bench" / "results" / "gateway.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
