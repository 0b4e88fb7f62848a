"""Pure parts of the metrics package: proto mapping and the SQL text's parameterisation."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from verdict.v1 import experiment_pb2
from verdict_analysis import metrics, stats
from verdict_analysis.metrics import (
    MetricSpec,
    Segment,
    SpecError,
    metric_spec_from_proto,
    quantile_sorted,
    sql,
)


def test_public_interface_is_the_pure_specification() -> None:
    assert sorted(metrics.__all__) == [
        "CollectedStats",
        "MetricDiagnostics",
        "MetricSpec",
        "Segment",
        "SpecError",
        "metric_spec_from_proto",
    ]


def test_importing_the_package_root_loads_no_database_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import verdict_analysis.metrics, verdict_analysis.ports, "
        "verdict_analysis.analyzer; "
        "print(sorted(m for m in ('asyncpg', 'grpc', 'redis') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_count_metric_maps_to_mean_of_event_counts() -> None:
    proto = experiment_pb2.Metric(
        key="calls",
        type=experiment_pb2.METRIC_TYPE_COUNT,
        source=experiment_pb2.MetricSource(event_name="llm.call", measure="ignored"),
        window=Duration(seconds=3600),
        direction=experiment_pb2.DIRECTION_DECREASE,
    )
    spec = metric_spec_from_proto(proto)
    assert spec == MetricSpec(
        "calls",
        stats.MetricType.MEAN,
        "llm.call",
        "",
        window_s=3600.0,
        direction=stats.Direction.DECREASE,
    )


def test_percentile_capping_and_quantile_map_from_proto() -> None:
    proto = experiment_pb2.Metric(
        key="p95",
        type=experiment_pb2.METRIC_TYPE_QUANTILE,
        source=experiment_pb2.MetricSource(event_name="llm.call", measure="latency_ms"),
        quantile=0.95,
        capping=experiment_pb2.CAPPING_TYPE_PERCENTILE,
        capping_value=0.99,
    )
    spec = metric_spec_from_proto(proto)
    assert spec.quantile == 0.95 and spec.window_s is None
    assert spec.capping == stats.Capping(stats.CappingKind.PERCENTILE, upper=0.99)


@pytest.mark.parametrize(
    "spec",
    [
        MetricSpec("q", stats.MetricType.QUANTILE, "llm.call", ""),
        MetricSpec("q", stats.MetricType.QUANTILE, "llm.call", "x", quantile=1.0),
        MetricSpec("r", stats.MetricType.RATIO, "a", "x"),
        MetricSpec("m", stats.MetricType.MEAN, ""),
        MetricSpec("m", stats.MetricType.MEAN, "a", window_s=0.0),
    ],
)
def test_unusable_specs_are_rejected(spec: MetricSpec) -> None:
    with pytest.raises(SpecError):
        spec.validate()


def test_unspecified_proto_type_is_rejected() -> None:
    with pytest.raises(SpecError):
        metric_spec_from_proto(experiment_pb2.Metric(key="x"))


def test_values_travel_as_parameters_never_in_the_text() -> None:
    hostile = "x'; DROP TABLE events; --"
    scope = sql.UnitScope(hostile, [hostile], Segment(hostile, hostile))
    specs = [
        MetricSpec(
            "m",
            stats.MetricType.MEAN,
            hostile,
            hostile,
            window_s=60.0,
            capping=stats.Capping(upper=0.99),
        ),
        MetricSpec("r", stats.MetricType.RATIO, hostile, hostile, hostile, hostile),
    ]
    text, params = sql.sufficient_stats_query(scope, specs, 86400.0)
    assert hostile not in text and hostile in params
    q = MetricSpec("q", stats.MetricType.QUANTILE, hostile, hostile, quantile=0.95)
    text, params = quantile_sorted.quantile_values_query(scope, q)
    assert hostile not in text and hostile in params


def test_one_column_per_statistics_field() -> None:
    scope = sql.UnitScope("e", ["a", "b"])
    specs = [
        MetricSpec("p", stats.MetricType.PROPORTION, "conv"),
        MetricSpec("r", stats.MetricType.RATIO, "n", "x", "d"),
    ]
    text, _ = sql.sufficient_stats_query(scope, specs, 3600.0)
    for i, spec in enumerate(specs):
        _, fields = sql.stats_fields(spec, cuped=True)
        for name in fields:
            assert f"AS m{i}_{name}" in text
