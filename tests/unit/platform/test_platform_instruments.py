"""Plain instruments and their export through OpenTelemetry's metrics SDK: counts, label
combinations, histogram buckets, gauges read at collection, all seen by an in-memory reader."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.resources import Resource

from verdict_platform.telemetry.export import InMemoryReader, meter_provider
from verdict_platform.telemetry.instruments import Registry

RESOURCE = Resource.create({"service.name": "verdict-test"})


def _metrics(data: MetricsData | None) -> dict[str, Any]:
    assert data is not None
    return {
        m.name: m.data
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }


def _points(data: Any) -> dict[tuple[tuple[str, Any], ...], Any]:
    return {tuple(sorted(p.attributes.items())): p for p in data.data_points}


def test_counters_are_read_per_label_combination_at_collection() -> None:
    registry = Registry()
    events = registry.counter("verdict_test_events", "events", ("outcome",))
    reader = InMemoryReader(registry, RESOURCE)
    meter_provider(registry, RESOURCE, [reader])
    events.inc("accepted", by=3)
    events.inc("rejected")
    events.inc("accepted")
    points = _points(_metrics(reader.get_metrics_data())["verdict_test_events"])
    assert points[(("outcome", "accepted"),)].value == 4
    assert points[(("outcome", "rejected"),)].value == 1
    events.inc("rejected", by=2)  # cumulative: a later collection sees the running total
    points = _points(_metrics(reader.get_metrics_data())["verdict_test_events"])
    assert points[(("outcome", "rejected"),)].value == 3


def test_a_tracked_counter_adds_its_owners_counts() -> None:
    registry = Registry()
    decisions = registry.counter("verdict_test_decisions", "decisions", ("reason",))
    owned: dict[str, int] = {"assigned": 5}
    decisions.track(lambda: [((reason,), float(n)) for reason, n in owned.items()])
    decisions.inc("assigned")
    reader = InMemoryReader(registry, RESOURCE)
    meter_provider(registry, RESOURCE, [reader])
    owned["not_targeted"] = 2
    points = _points(_metrics(reader.get_metrics_data())["verdict_test_decisions"])
    assert points[(("reason", "assigned"),)].value == 6
    assert points[(("reason", "not_targeted"),)].value == 2


def test_histograms_are_exported_with_their_buckets_sum_and_count() -> None:
    registry = Registry()
    latency = registry.histogram("verdict_test_latency", "latency", "s", (0.001, 0.01), ("code",))
    registry.count_of(latency, "verdict_test_requests", "requests")
    ok = latency.series("OK")
    for value in (0.0005, 0.001, 0.002, 0.5):  # 0.001 falls in the first bucket: le="0.001"
        ok.record(value)
    latency.record(0.02, "UNAVAILABLE")
    reader = InMemoryReader(registry, RESOURCE)
    meter_provider(registry, RESOURCE, [reader])
    metrics = _metrics(reader.get_metrics_data())
    histogram = metrics["verdict_test_latency"]
    assert isinstance(histogram, HistogramData)
    points = _points(histogram)
    ok_point = points[(("code", "OK"),)]
    assert list(ok_point.bucket_counts) == [2, 1, 1]
    assert list(ok_point.explicit_bounds) == [0.001, 0.01]
    assert ok_point.count == 4 and ok_point.sum == pytest.approx(0.5035)
    assert points[(("code", "UNAVAILABLE"),)].count == 1
    requests = _points(metrics["verdict_test_requests"])
    assert requests[(("code", "OK"),)].value == 4
    assert requests[(("code", "UNAVAILABLE"),)].value == 1


def test_gauges_read_their_source_at_each_collection() -> None:
    registry = Registry()
    depth = registry.gauge("verdict_test_depth", "depth")
    queue: list[int] = [1, 2, 3]
    depth.track(lambda: len(queue))
    reader = InMemoryReader(registry, RESOURCE)
    meter_provider(registry, RESOURCE, [reader])
    assert _points(_metrics(reader.get_metrics_data())["verdict_test_depth"])[()].value == 3
    queue.clear()
    assert _points(_metrics(reader.get_metrics_data())["verdict_test_depth"])[()].value == 0
