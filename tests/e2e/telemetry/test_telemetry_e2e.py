"""Telemetry of the three real services, end to end: traces reach a real OTLP receiver across
processes (an Assign and the exposure it writes; a tracker batch and its database write; an
analysis run, the stop it causes through ExperimentService and the alert it sends), JSON logs
carry the trace ids, and each service's `/metrics` is scraped over HTTP."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telemetry_suite import Suite, sample, scrape, start_suite

from support.eventually import eventually
from support.otlp_receiver import ReceivedSpan
from verdict import Tracker, TrackerOptions
from verdict.v1 import (
    analysis_pb2,
    analysis_pb2_grpc,
    assignment_pb2,
    assignment_pb2_grpc,
    experiment_pb2,
    experiment_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
)
from verdict_platform.settings import Settings

ASSIGN = "verdict.v1.AssignmentService/Assign"
CALLER = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def suite(settings: Settings) -> Iterator[Suite]:
    started = start_suite(settings)
    yield started
    started.stop()


def traceparent(sampled: bool = True) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A new trace id and the metadata of a caller in that trace."""
    trace_id = secrets.token_hex(16)
    return trace_id, (("traceparent", f"00-{trace_id}-{CALLER}-{'01' if sampled else '00'}"),)


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def spans_of(suite: Suite, trace_id: str, names: set[str]) -> list[ReceivedSpan]:
    """The spans of `trace_id` once all of `names` arrived at the receiver."""

    def arrived() -> list[ReceivedSpan] | None:
        spans = suite.spans(trace_id)
        return spans if names <= {s.name for s in spans} else None

    return eventually(
        arrived, describe=lambda: f"received: {sorted(s.name for s in suite.spans(trace_id))}"
    )


def start_experiment(suite: Suite, spec: experiment_pb2.Experiment) -> None:
    """Creates and starts it, and waits until Assign serves it."""
    with grpc.insecure_channel(suite.assignment.target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        stub.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(experiment=spec), metadata=suite.admin
        )
        stub.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=spec.key), metadata=suite.admin
        )
        assigner = assignment_pb2_grpc.AssignmentServiceStub(channel)
        probe = assignment_pb2.AssignRequest(
            unit_id="probe", experiment_keys=[spec.key], skip_exposure_logging=True
        )
        eventually(
            lambda: (
                assigner.Assign(probe, metadata=suite.admin).assignments[0].reason
                == assignment_pb2.ASSIGNMENT_REASON_ASSIGNED
            )
        )


def fifty_fifty(key: str, **fields: object) -> experiment_pb2.Experiment:
    spec = experiment_pb2.Experiment(key=key, name=key, coverage=1.0, **fields)  # type: ignore[arg-type]
    spec.variants.add(key="control", weight=0.5, is_control=True)
    spec.variants.add(key="treatment", weight=0.5)
    return spec


def assign(suite: Suite, key: str, unit: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    with grpc.insecure_channel(suite.assignment.target) as channel:
        assignment_pb2_grpc.AssignmentServiceStub(channel).Assign(
            assignment_pb2.AssignRequest(unit_id=unit, experiment_keys=[key]),
            metadata=(*suite.admin, *metadata),
        )


async def _exposed(settings: Settings, unit: str) -> bool:
    conn = await asyncpg.connect(settings.require_database_url())
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM exposures WHERE unit_id = $1", unit))
    finally:
        await conn.close()


def test_an_assign_and_the_exposure_it_writes_are_one_trace(
    suite: Suite, settings: Settings
) -> None:
    key = f"tel-{secrets.token_hex(3)}"
    start_experiment(suite, fifty_fifty(key))
    trace_id, caller = traceparent()
    assign(suite, key, f"{key}-u1", caller)
    chain = {ASSIGN, "exposures.send", "verdict.v1.IngestService/TrackExposures",
             "exposures.write"}  # fmt: skip
    spans = spans_of(suite, trace_id, chain)
    call = one(spans, ASSIGN)
    send = one(spans, "exposures.send")
    track = one(spans, "verdict.v1.IngestService/TrackExposures")
    write = one(spans, "exposures.write")
    assert call.service == "verdict-assignment" and call.parent_span_id == CALLER
    assert (send.service, send.parent_span_id) == ("verdict-assignment", call.span_id)
    assert (track.service, track.parent_span_id) == ("verdict-ingest", send.span_id)
    assert (write.service, write.parent_span_id) == ("verdict-ingest", track.span_id)
    assert write.attributes["verdict.accepted"] == 1

    # A caller that did not sample: its exposure is written, and nothing of it is recorded.
    unsampled, metadata = traceparent(sampled=False)
    assign(suite, key, f"{key}-u2", metadata)
    eventually(lambda: asyncio.run(_exposed(settings, f"{key}-u2")))
    assert suite.spans(unsampled) == []


def test_a_tracker_batch_and_its_database_write_are_one_trace(suite: Suite) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracker = Tracker(
        TrackerOptions(suite.ingest.target, suite.admin_key, tracer_provider=provider)
    )
    for n in range(3):
        tracker.track(f"tel-unit-{n}", "tel.click", measures={"n": float(n)})
    stats = tracker.close()
    assert stats.sent == 3
    [batch] = exporter.get_finished_spans()
    trace_id = format(batch.context.trace_id, "032x")
    chain = {"verdict.v1.IngestService/TrackEvents", "events.write"}
    spans = spans_of(suite, trace_id, chain)
    track = one(spans, "verdict.v1.IngestService/TrackEvents")
    write = one(spans, "events.write")
    assert track.parent_span_id == format(batch.context.span_id, "016x")
    assert (write.service, write.parent_span_id) == ("verdict-ingest", track.span_id)
    assert write.attributes["verdict.accepted"] == 3


async def _expose(settings: Settings, key: str, counts: dict[str, int]) -> None:
    conn = await asyncpg.connect(settings.require_database_url())
    try:
        when = datetime.now(UTC) - timedelta(minutes=5)
        rows = [
            (key, f"{key}-{variant}-{i}", variant, when)
            for variant, n in counts.items()
            for i in range(n)
        ]
        await conn.copy_records_to_table(
            "exposures",
            records=rows,
            columns=["experiment_key", "unit_id", "variant_key", "exposed_at"],
        )
    finally:
        await conn.close()


def test_an_analysis_run_its_stop_and_its_alert_are_one_trace(
    suite: Suite, settings: Settings
) -> None:
    key = f"tel-srm-{secrets.token_hex(3)}"
    spec = fifty_fifty(key)
    spec.stopping_rules.srm_action = experiment_pb2.SRM_ACTION_STOP
    start_experiment(suite, spec)
    asyncio.run(_expose(settings, key, {"control": 1_000, "treatment": 1_400}))
    before = scrape(suite.metrics_ports["analysis"])
    trace_id, caller = traceparent()
    with grpc.insecure_channel(suite.analysis.target) as channel:
        analysis_pb2_grpc.AnalysisServiceStub(channel).RunAnalysis(
            analysis_pb2.RunAnalysisRequest(experiment_key=key), metadata=(*suite.admin, *caller)
        )
    chain = {"verdict.v1.AnalysisService/RunAnalysis", "analysis.run",
             "verdict.v1.ExperimentService/StopExperiment", "alert.deliver"}  # fmt: skip
    spans = spans_of(suite, trace_id, chain)
    rpc = one(spans, "verdict.v1.AnalysisService/RunAnalysis")
    run = one(spans, "analysis.run")
    stop = one(spans, "verdict.v1.ExperimentService/StopExperiment")
    deliver = one(spans, "alert.deliver")
    assert rpc.parent_span_id == CALLER and run.parent_span_id == rpc.span_id
    assert (stop.service, stop.parent_span_id) == ("verdict-assignment", run.span_id)
    assert (deliver.service, deliver.parent_span_id) == ("verdict-analysis", run.span_id)
    # The webhook receives the trace too, and the analysis log lines written in the run say it.
    [headers] = [h for h, b in zip(suite.webhook.headers, suite.webhook.bodies, strict=True)
                 if b["experiment_key"] == key]  # fmt: skip
    assert headers["traceparent"].split("-")[1] == trace_id
    logged = [
        json.loads(line) for line in suite.analysis.log().splitlines() if line.startswith("{")
    ]
    stopped = [line for line in logged if line["message"].startswith(f"stopped {key}")]
    assert [(line["trace_id"], line["span_id"]) for line in stopped] == [(trace_id, run.span_id)]

    after = scrape(suite.metrics_ports["analysis"])
    firings = "verdict_stopping_rule_firings_total"
    assert sample(after, firings, rule="srm", action="stop") == (
        sample(before, firings, rule="srm", action="stop") + 1
    )
    runs = "verdict_analysis_duration_seconds_count"
    assert sample(after, runs, experiment=key, outcome="ok") == 1
    assert sample(after, "verdict_alert_deliveries_total", outcome="delivered") >= 1


def event(unit: str, name: str = "tel.metric") -> ingest_pb2.Event:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ingest_pb2.Event(event_id=str(uuid.uuid4()), unit_id=unit, name=name, timestamp=ts)


def test_each_service_serves_its_metrics_over_http(suite: Suite) -> None:
    ports = suite.metrics_ports
    key = f"tel-metrics-{secrets.token_hex(3)}"
    start_experiment(suite, fifty_fifty(key))
    a0, i0 = scrape(ports["assignment"]), scrape(ports["ingest"])
    for n in range(3):
        assign(suite, key, f"{key}-u{n}")
    with (
        grpc.insecure_channel(suite.assignment.target) as a_channel,
        grpc.insecure_channel(suite.ingest.target) as i_channel,
    ):
        with pytest.raises(grpc.RpcError):  # no unit id: INVALID_ARGUMENT
            assignment_pb2_grpc.AssignmentServiceStub(a_channel).Assign(
                assignment_pb2.AssignRequest(), metadata=suite.admin
            )
        ingest = ingest_pb2_grpc.IngestServiceStub(i_channel)
        events = [event(f"{key}-u0"), event(f"{key}-u1"), event("", name="")]  # last: rejected
        for _ in range(2):  # the second time, the valid ones are duplicates
            ingest.TrackEvents(
                ingest_pb2.TrackEventsRequest(request_id=key, events=events), metadata=suite.admin
            )

    def assignment_caught_up() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        metrics = scrape(ports["assignment"])
        sent = "verdict_exposures_sent_total"
        return metrics if sample(metrics, sent) >= sample(a0, sent) + 3 else None

    a1 = eventually(assignment_caught_up)
    i1 = scrape(ports["ingest"])

    def grew(before: dict, after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
        return sample(after, name, **labels) - sample(before, name, **labels)

    requests = "verdict_rpc_server_requests_total"
    assert grew(a0, a1, requests, method=ASSIGN, code="OK") == 3
    assert grew(a0, a1, requests, method=ASSIGN, code="INVALID_ARGUMENT") == 1
    assert grew(a0, a1, "verdict_rpc_server_duration_seconds_count", method=ASSIGN, code="OK") == 3
    assert grew(a0, a1, "verdict_assign_decisions_total", reason="assigned") == 3
    assert grew(a0, a1, "verdict_exposures_recorded_total") == 3
    assert sample(a1, "verdict_exposure_buffer_depth") == 0
    assert sample(a1, "verdict_key_reloads_total", outcome="ok") >= 1
    assert grew(i0, i1, "verdict_ingest_events_total", outcome="accepted") == 2
    assert grew(i0, i1, "verdict_ingest_events_total", outcome="duplicate") == 2
    assert grew(i0, i1, "verdict_ingest_events_total", outcome="rejected") == 2
    assert grew(i0, i1, "verdict_ingest_exposures_total", outcome="accepted") == 3
    assert grew(i0, i1, "verdict_ingest_batch_size_count", kind="events") == 2
    assert grew(i0, i1, "verdict_ingest_write_duration_seconds_count", table="events",
                outcome="ok") == 2  # fmt: skip
    assert ("verdict_ingest_queue_depth", ()) in i1
    assert any(
        name == "target_info" and ("service_name", "verdict-ingest") in labels
        for name, labels in i1
    )
