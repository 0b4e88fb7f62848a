"""Benchmark: the console's experiment page and its live update, on the whole suite.

    python bench/bench_dashboard.py        # writes bench/results/dashboard.json

Starts assignment, ingest, analysis and the console as processes on free ports (a database of
its own, created and dropped here). Two measurements:

- **Page server time**: an experiment with 20 metrics × 3 variants and 200 stored snapshots
  (each with every per-scale figure filled, as a full analysis stores them); the Results page
  (`GET /experiments/<key>`, signed in) loaded 100 times over HTTP on loopback, timed from the
  request to the last byte. The Over time tab (which reads the 200 snapshots) is reported too.
- **Update latency**: a browser (Debian's chromium) holds a second experiment's Results page;
  20 times, `RunAnalysis` stores a new snapshot and returns its id, and the time until the page
  shows that snapshot (the live stream swapped it in) is measured.

Targets: page p95 ≤ 150 ms, update median ≤ 2 s.
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
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import asyncpg
import grpc
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.suite import Suite, start_suite  # noqa: E402
from verdict.v1 import (  # noqa: E402
    analysis_pb2,
    analysis_pb2_grpc,
    experiment_pb2,
    experiment_pb2_grpc,
)
from verdict_analysis.snapshot_store import SnapshotStore  # noqa: E402
from verdict_platform.db import with_database  # noqa: E402
from verdict_platform.embedded import resolve_servers  # noqa: E402
from verdict_platform.migrator import migrate  # noqa: E402
from verdict_platform.settings import load_settings  # noqa: E402

DB = "verdict_bench_dashboard"
METRICS, VARIANTS, SNAPSHOTS, LOADS, UPDATES = 20, ("control", "b", "c"), 200, 100, 20
PAGE_TARGET_MS, UPDATE_TARGET_S = 150.0, 2.0
RESULTS = ROOT / "bench" / "results" / "dashboard.json"


def bearer(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def estimate(value: float, width: float) -> dict[str, object]:
    return {
        "estimate": value,
        "stdError": width / 4,
        "pValue": 0.04,
        "interval": {"lower": value - width, "upper": value + width},
        "sequentialInterval": {"lower": value - 1.5 * width, "upper": value + 1.5 * width},
        "sequentialPValue": 0.2,
        "test": "z_unpooled",
    }


def big_snapshot(key: str, step: int) -> analysis_pb2.ResultSnapshot:
    """A snapshot as a full analysis of 20 metrics × 3 variants stores it."""
    shrink = 1 / (1 + step / 20)
    metrics = []
    for m in range(METRICS):
        role = (
            "METRIC_ROLE_PRIMARY"
            if m == 0
            else ("METRIC_ROLE_GUARDRAIL" if m >= 16 else "METRIC_ROLE_SECONDARY")
        )
        metrics.append(
            {
                "metricKey": f"bench_m{m:02d}",
                "role": role,
                "type": "METRIC_TYPE_BINOMIAL",
                "variants": [
                    {
                        "variantKey": v,
                        "units": 1000 * (step + 1),
                        "mean": 0.1 + 0.01 * i,
                        "interval": {"lower": 0.09, "upper": 0.11},
                    }
                    for i, v in enumerate(VARIANTS)
                ],
                "comparisons": [
                    {
                        "variantKey": v,
                        "absoluteEffect": 0.01 * i,
                        "relativeEffect": 0.1 * i,
                        "pValue": 0.04,
                        "adjustedPValue": 0.08,
                        "chanceToBeatControl": 0.9,
                        "significant": i == 1,
                        "absolute": estimate(0.01 * i, 0.02 * shrink),
                        "relative": estimate(0.1 * i, 0.2 * shrink),
                        "verdict": "METRIC_VERDICT_INCONCLUSIVE",
                        "decisionBasis": {
                            "scale": "EFFECT_SCALE_RELATIVE",
                            "sequential": True,
                            "adjusted": True,
                            "interval": {"lower": -0.1, "upper": 0.3},
                            "pValue": 0.08,
                            "alpha": 0.05,
                        },
                    }
                    for i, v in enumerate(VARIANTS)
                    if i > 0
                ],
            }
        )
    return json_format.ParseDict(
        {
            "experimentKey": key,
            "units": {v: 1000 * (step + 1) for v in VARIANTS},
            "srm": {"pValue": 0.5, "sequentialPValue": 1.0},
            "metrics": metrics,
            "recommendation": {"decision": "DECISION_KEEP_RUNNING"},
            "sequential": True,
            "alpha": 0.05,
            "correction": "MULTIPLE_TESTING_CORRECTION_HOLM",
            "decision": {
                "state": "DECISION_STATE_KEEP_RUNNING",
                "daysRemaining": 4.2,
                "plannedUnits": 60000,
                "exposedUnits": 3000 * (step + 1),
            },
        },
        analysis_pb2.ResultSnapshot(),
    )


def create(suite: Suite, key: str, metric_keys: list[str], variants: tuple[str, ...]) -> None:
    with grpc.insecure_channel(suite.assignment.target) as channel:
        stub = experiment_pb2_grpc.ExperimentServiceStub(channel)
        for m in metric_keys:
            metric = experiment_pb2.Metric(key=m, name=m, type=experiment_pb2.METRIC_TYPE_BINOMIAL)
            metric.source.event_name = m
            try:
                stub.CreateMetric(
                    experiment_pb2.CreateMetricRequest(metric=metric),
                    metadata=bearer(suite.admin_key),
                )
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
        spec = {
            "key": key,
            "name": key,
            "coverage": 1.0,
            "variants": [
                {"key": v, "weight": 1 / len(variants), "isControl": i == 0}
                for i, v in enumerate(variants)
            ],
            "metrics": [
                {
                    "metricKey": m,
                    "role": "METRIC_ROLE_PRIMARY" if i == 0 else "METRIC_ROLE_SECONDARY",
                }
                for i, m in enumerate(metric_keys)
            ],
            "analysisPlan": {"sequential": True},
        }
        stub.CreateExperiment(
            experiment_pb2.CreateExperimentRequest(
                experiment=json_format.ParseDict(spec, experiment_pb2.Experiment())
            ),
            metadata=bearer(suite.admin_key),
        )
        stub.StartExperiment(
            experiment_pb2.StartExperimentRequest(key=key), metadata=bearer(suite.admin_key)
        )


def signed_in_opener(suite: Suite) -> urllib.request.OpenerDirector:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    body = urllib.parse.urlencode({"api_key": suite.admin_key, "next": "/experiments"}).encode()
    opener.open(f"{suite.url}/signin", data=body).read()
    return opener


def time_loads(
    opener: urllib.request.OpenerDirector, url: str, loads: int, rows: int = 0
) -> list[float]:
    html = opener.open(url).read().decode()  # warm: channels connected, templates compiled
    # The page measured is the full one: a row per metric x treatment variant.
    assert html.count('<tr class="row-') == rows, html.count('<tr class="row-')
    timings = []
    for _ in range(loads):
        started = time.perf_counter()
        with opener.open(url) as reply:
            reply.read()
            assert reply.status == 200
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p95": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 2),
        "min": round(ordered[0], 2),
        "max": round(ordered[-1], 2),
    }


def update_latencies(suite: Suite, key: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    latencies = []
    with sync_playwright() as p, grpc.insecure_channel(suite.analysis.target) as channel:
        analysis = analysis_pb2_grpc.AnalysisServiceStub(channel)
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        # bypass_csp: Playwright evaluates its wait condition as a string, which the console's
        # CSP (script-src 'self') forbids; the page's own scripts are unchanged.
        page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        page.goto(f"{suite.url}/signin")
        page.fill("#api-key", suite.admin_key)
        page.click("form[action='/signin'] button[type=submit]")
        page.goto(f"{suite.url}/experiments/{key}")
        page.wait_for_function(
            "document.getElementById('live-status').textContent.includes('Live')"
        )
        for _ in range(UPDATES):
            reply = analysis.RunAnalysis(
                analysis_pb2.RunAnalysisRequest(experiment_key=key),
                metadata=bearer(suite.admin_key),
            )
            stored = time.perf_counter()
            shown = "document.querySelector('[data-live-url]').dataset.snapshot"
            page.wait_for_function(f"{shown} === '{reply.snapshot.id}'", polling="raf")
            latencies.append(time.perf_counter() - stored)
        browser.close()
    return latencies


async def prepare(url: str, server: str) -> None:
    admin = await asyncpg.connect(server)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DB}"')
    await admin.close()
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()


async def store_snapshots(url: str, key: str) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        store = SnapshotStore(pool)
        for step in range(SNAPSHOTS):
            await store.add(big_snapshot(key, step))
    finally:
        await pool.close()


async def drop(server: str) -> None:
    admin = await asyncpg.connect(server)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    await admin.close()


def main() -> None:
    base = resolve_servers(load_settings())
    server = base.require_database_url()
    url = with_database(server, DB)
    asyncio.run(prepare(url, server))
    settings = dataclasses.replace(
        base,
        database_url=url,
        redis_namespace=f"verdict-bench-{secrets.token_hex(3)}",
        key_refresh_s=0.5,
        grace_period_s=3.0,
    )
    # A long interval: the page's 200 snapshots stay the ones stored here.
    suite = start_suite(settings, analysis_interval_s=3600.0)
    try:
        big = "bench-page"
        create(suite, big, [f"bench_m{m:02d}" for m in range(METRICS)], VARIANTS)
        asyncio.run(store_snapshots(url, big))
        opener = signed_in_opener(suite)
        rows = METRICS * (len(VARIANTS) - 1)
        page_ms = time_loads(opener, f"{suite.url}/experiments/{big}", LOADS, rows)
        over_time_ms = time_loads(opener, f"{suite.url}/experiments/{big}?tab=over-time", 20)
        live = "bench-live"
        create(suite, live, ["bench_m00"], ("control", "b"))
        update_s = update_latencies(suite, live)
    finally:
        suite.stop()
        asyncio.run(drop(server))
    page = summary(page_ms)
    update = summary(update_s)
    report = {
        "benchmark": "dashboard",
        "page": {
            "what": f"GET /experiments/<key> (Results), {METRICS} metrics x {len(VARIANTS)}"
            f" variants, {SNAPSHOTS} stored snapshots, {LOADS} loads",
            "ms": page,
            "target_p95_ms": PAGE_TARGET_MS,
            "within_target": page["p95"] <= PAGE_TARGET_MS,
        },
        "over_time_tab": {
            "what": f"GET ?tab=over-time ({SNAPSHOTS} snapshots read), 20 loads",
            "ms": summary(over_time_ms),
        },
        "update": {
            "what": f"RunAnalysis stored a snapshot -> the browser shows it, {UPDATES} times",
            "s": update,
            "target_median_s": UPDATE_TARGET_S,
            "within_target": update["median"] <= UPDATE_TARGET_S,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
