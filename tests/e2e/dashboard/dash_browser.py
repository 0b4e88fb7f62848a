"""Helpers of the console's browser tests: the browser, signing in, screenshots at both sizes,
the axe-core check, and data sent through the real services."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from playwright.sync_api import Browser, BrowserContext, Page

from support.eventually import eventually
from support.suite import Suite
from verdict.v1 import (
    assignment_pb2,
    assignment_pb2_grpc,
    experiment_pb2,
    experiment_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
)

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "tests" / "e2e" / "artifacts"
AXE = ROOT / "services" / "dashboard" / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def new_context(browser: Browser) -> BrowserContext:
    """A fresh browser profile at desktop size. CSP is bypassed only so that the test can inject
    axe-core; the pages themselves load nothing but the console's own files."""
    return browser.new_context(viewport=DESKTOP, bypass_csp=True)


def sign_in(page: Page, suite: Suite, key: str) -> None:
    """Signs in through the form."""
    page.goto(f"{suite.url}/signin")
    page.fill("#api-key", key)
    page.click("form[action='/signin'] button[type=submit]")
    page.wait_for_url(f"{suite.url}/experiments")


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def shoot(page: Page, name: str) -> list[dict[str, Any]]:
    """Screenshots of the page at 1280×800 and 390×844 (full page) under tests/e2e/artifacts,
    and the axe-core check at each size; returns the violations found."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    found = []
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)  # the charts redraw on resize
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
        found += [dict(v, size=label) for v in serious_violations(page)]
    page.set_viewport_size(DESKTOP)
    return found


def bearer(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def create_metric(suite: Suite, key: str, event: str) -> None:
    """A binomial metric in the catalog, through ExperimentService."""
    with grpc.insecure_channel(suite.assignment.target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        metric = experiment_pb2.Metric(
            key=key,
            name=key.replace("_", " ").capitalize(),
            type=experiment_pb2.METRIC_TYPE_BINOMIAL,
        )
        metric.source.event_name = event
        stub.CreateMetric(
            experiment_pb2.CreateMetricRequest(metric=metric), metadata=bearer(suite.admin_key)
        )


def create_experiment(suite: Suite, metric_key: str, start: bool = True) -> str:
    """A two-variant experiment on `metric_key` (primary), started unless `start` is False."""
    key = f"exp-{secrets.token_hex(3)}"
    spec = {
        "key": key,
        "name": f"Experiment {key}",
        "variants": [
            {"key": "control", "weight": 0.5, "isControl": True, "payload": {"model": "a"}},
            {"key": "treatment", "weight": 0.5, "payload": {"model": "b"}},
        ],
        "coverage": 1.0,
        "metrics": [{"metricKey": metric_key, "role": "METRIC_ROLE_PRIMARY"}],
        "analysisPlan": {"sequential": True},
    }
    with grpc.insecure_channel(suite.assignment.target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        stub.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(
                experiment=json_format.ParseDict(spec, experiment_pb2.Experiment())
            ),
            metadata=bearer(suite.admin_key),
        )
        if start:
            stub.StartExperiment(
                experiment_pb2.StartExperimentRequest(key=key), metadata=bearer(suite.admin_key)
            )
            STARTED.append(key)
    return key


STARTED: list[str] = []
"""Experiments `create_experiment` started: stopped when the module ends (`stop_started`)."""


def stop_started(suite: Suite) -> None:
    """Stops the experiments this module started that still run: they assign every unit (full
    coverage, payloads naming models "a" and "b"), which later modules' gateways would route."""
    with grpc.insecure_channel(suite.assignment.target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        for key in STARTED:
            try:
                stub.StopExperiment(
                    experiment_pb2.StopExperimentRequest(key=key, reason="the test module ends"),
                    metadata=bearer(suite.admin_key),
                )
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:  # already stopped
                    raise
    STARTED.clear()


def experiment_status(suite: Suite, key: str) -> int:
    with grpc.insecure_channel(suite.assignment.target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        reply = stub.GetExperiment(
            experiment_pb2.GetExperimentRequest(key=key), metadata=bearer(suite.admin_key)
        )
        status: int = reply.experiment.status
        return status


def send_traffic(
    suite: Suite, key: str, units: int, event: str, rates: dict[str, float]
) -> dict[str, int]:
    """Assigns `units` fresh units through AssignmentService (their exposures reach ingest by
    the assignment process's sink), then sends `event` for a deterministic share of each
    variant's units through IngestService. Returns units per variant."""
    per_variant: dict[str, int] = {}
    events = []
    with grpc.insecure_channel(suite.assignment.target) as channel:
        assign = assignment_pb2_grpc.AssignmentServiceStub(channel)
        for i in range(units):
            unit = f"{key}-{secrets.token_hex(4)}-{i}"
            attributes = struct_pb2.Struct()
            attributes.update({"country": "FR" if i % 2 else "DE"})
            request = assignment_pb2.AssignRequest(
                unit_id=unit, attributes=attributes, experiment_keys=[key]
            )

            def assigned(request: assignment_pb2.AssignRequest = request) -> Any:
                return assign.Assign(request, metadata=bearer(suite.assign_key)).assignments[0]

            result = assigned()
            if i == 0 and not result.in_experiment:
                # A new experiment reaches the assignment process's snapshot within a second.
                result = eventually(lambda: (r := assigned()).in_experiment and r) or result
            if not result.in_experiment:
                continue
            seen = per_variant.get(result.variant_key, 0)
            per_variant[result.variant_key] = seen + 1
            if (seen % 100) < rates[result.variant_key] * 100:
                at = timestamp_pb2.Timestamp()
                at.GetCurrentTime()
                at.seconds += 2  # after the exposure, within ingest's future window
                events.append(
                    ingest_pb2.Event(
                        event_id=str(uuid.uuid4()), unit_id=unit, name=event, timestamp=at
                    )
                )
    assert per_variant, f"no unit of {key} was assigned"
    if not events:
        return per_variant
    with grpc.insecure_channel(suite.ingest.target) as channel:
        ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        reply = ingest.TrackEvents(
            ingest_pb2.TrackEventsRequest(request_id=str(uuid.uuid4()), events=events),
            metadata=bearer(suite.ingest_key),
        )
        assert reply.accepted == len(events), reply
    return per_variant


def _event(unit: str, name: str, at: timestamp_pb2.Timestamp) -> ingest_pb2.Event:
    return ingest_pb2.Event(event_id=str(uuid.uuid4()), unit_id=unit, name=name, timestamp=at)


def send_stray_events(suite: Suite, key: str, event: str, ghosts: int, early: int) -> None:
    """Events the analysis leaves out: `ghosts` from units never assigned, and `early` from new
    units, each timestamped just before the unit's assignment (so before its exposure, which
    Assign stamps, and after the experiment's first exposure when traffic came before)."""
    events = []
    with grpc.insecure_channel(suite.assignment.target) as channel:
        assign = assignment_pb2_grpc.AssignmentServiceStub(channel)
        for _ in range(early):
            unit = f"{key}-early-{secrets.token_hex(4)}"
            at = timestamp_pb2.Timestamp()
            at.GetCurrentTime()
            reply = assign.Assign(
                assignment_pb2.AssignRequest(unit_id=unit, experiment_keys=[key]),
                metadata=bearer(suite.assign_key),
            )
            assert reply.assignments[0].in_experiment
            events.append(_event(unit, event, at))
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    events += [_event(f"{key}-ghost-{i}", event, now) for i in range(ghosts)]
    with grpc.insecure_channel(suite.ingest.target) as channel:
        reply = ingest_pb2_grpc.IngestServiceStub(channel).TrackEvents(
            ingest_pb2.TrackEventsRequest(request_id=str(uuid.uuid4()), events=events),
            metadata=bearer(suite.ingest_key),
        )
        assert reply.accepted == len(events), reply
