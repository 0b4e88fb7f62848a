"""The metric catalog's rows and the metric form's values (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from verdict.v1 import experiment_pb2
from verdict_dashboard import formatting as f
from verdict_dashboard.forms import CAPPING, DIRECTIONS, METRIC_TYPES


@dataclass(frozen=True)
class MetricRow:
    key: str
    name: str
    type: str
    source: str
    direction: str
    margin: str


def _source(s: experiment_pb2.MetricSource) -> str:
    return f"{s.event_name}.{s.measure}" if s.measure else f"{s.event_name} (count)"


def metric_row(m: experiment_pb2.Metric) -> MetricRow:
    """One catalog row."""
    source = _source(m.source)
    if m.type == experiment_pb2.METRIC_TYPE_RATIO:
        source = f"{source} ÷ {_source(m.denominator)}"
    if m.type == experiment_pb2.METRIC_TYPE_QUANTILE:
        source = f"p{m.quantile * 100:g} of {source}"
    return MetricRow(
        key=m.key,
        name=m.name,
        type=f.enum_label(experiment_pb2.MetricType.Name(m.type), "METRIC_TYPE_"),
        source=source,
        direction="lower is better"
        if m.direction == experiment_pb2.DIRECTION_DECREASE
        else "higher is better",
        margin=f.percent(m.non_inferiority_margin) if m.non_inferiority_margin else f.DASH,
    )


def _name_of(table: Mapping[str, int], value: int, default: str) -> str:
    return next((k for k, v in table.items() if v == value), default)


def metric_values(m: experiment_pb2.Metric) -> dict[str, str]:
    """A stored metric as the form's values (for editing)."""
    return {
        "key": m.key,
        "name": m.name,
        "description": m.description,
        "type": _name_of(METRIC_TYPES, m.type, "binomial"),
        "source.event_name": m.source.event_name,
        "source.measure": m.source.measure,
        "denominator.event_name": m.denominator.event_name,
        "denominator.measure": m.denominator.measure,
        "quantile": f"{m.quantile:g}" if m.quantile else "",
        "direction": _name_of(DIRECTIONS, m.direction, "increase"),
        "non_inferiority_margin": f"{m.non_inferiority_margin:g}"
        if m.non_inferiority_margin
        else "",
        "capping": _name_of(CAPPING, m.capping, "none"),
        "capping_value": f"{m.capping_value:g}" if m.capping_value else "",
        "window_days": f"{m.window.ToTimedelta().total_seconds() / 86400:g}"
        if m.HasField("window")
        else "",
    }
