"""Domain view of metric definitions: what the SQL layer computes for each metric."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from verdict.v1 import experiment_pb2
from verdict_analysis import stats

__all__ = [
    "CollectedStats",
    "MetricDiagnostics",
    "MetricSpec",
    "Segment",
    "SpecError",
    "metric_spec_from_proto",
]


class SpecError(ValueError):
    """A metric definition the SQL layer cannot compute (e.g. a quantile without a measure)."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric as the analysis computes it (the domain view of ``verdict.v1.Metric``).

    Per unit, over the unit's events named ``event_name`` from its first exposure (and
    within ``window_s`` after it when set): ``PROPORTION`` is 1 with at least one event;
    ``MEAN`` is the sum of ``measure`` (the number of events when ``measure`` is empty, which
    is the proto's COUNT), 0 without events; ``RATIO`` is the sum of the numerator over the
    sum of the denominator, clustered by unit; ``QUANTILE`` is the ``quantile`` of
    ``measure`` over all events, clustered by unit.
    """

    key: str
    type: stats.MetricType
    event_name: str
    measure: str = ""
    """Measure name; empty: count the events."""
    denominator_event_name: str = ""
    """RATIO only: the denominator's event (its ``denominator_measure``, or its count)."""
    denominator_measure: str = ""
    quantile: float = 0.5
    """QUANTILE only: the level in (0, 1)."""
    window_s: float | None = None
    """Only events within this many seconds after the unit's first exposure count."""
    capping: stats.Capping | None = None
    """MEAN only: winsorises per-unit values (percentile thresholds pooled over arms)."""
    direction: stats.Direction = stats.Direction.INCREASE
    non_inferiority_margin: float = 0.0

    def validate(self) -> None:
        """Raises :class:`SpecError` for a definition the SQL layer cannot compute."""
        if not self.event_name:
            raise SpecError(f"metric {self.key!r}: event_name is empty")
        if self.type is stats.MetricType.RATIO and not self.denominator_event_name:
            raise SpecError(f"metric {self.key!r}: a ratio needs a denominator event")
        if self.type is stats.MetricType.QUANTILE:
            if not self.measure:
                raise SpecError(f"metric {self.key!r}: a quantile needs a measure")
            if not 0.0 < self.quantile < 1.0:
                raise SpecError(f"metric {self.key!r}: quantile must be in (0, 1)")
        if self.window_s is not None and self.window_s <= 0:
            raise SpecError(f"metric {self.key!r}: window must be positive")


@dataclass(frozen=True)
class Segment:
    """A breakdown: units whose exposure recorded ``segments[dimension] == value``."""

    dimension: str
    value: str


_TYPES = {
    experiment_pb2.METRIC_TYPE_BINOMIAL: stats.MetricType.PROPORTION,
    experiment_pb2.METRIC_TYPE_MEAN: stats.MetricType.MEAN,
    experiment_pb2.METRIC_TYPE_COUNT: stats.MetricType.MEAN,
    experiment_pb2.METRIC_TYPE_RATIO: stats.MetricType.RATIO,
    experiment_pb2.METRIC_TYPE_QUANTILE: stats.MetricType.QUANTILE,
}


def _capping(metric: experiment_pb2.Metric) -> stats.Capping | None:
    if metric.capping == experiment_pb2.CAPPING_TYPE_ABSOLUTE:
        return stats.Capping(stats.CappingKind.ABSOLUTE, upper=metric.capping_value)
    if metric.capping == experiment_pb2.CAPPING_TYPE_PERCENTILE:
        return stats.Capping(stats.CappingKind.PERCENTILE, upper=metric.capping_value)
    return None


def metric_spec_from_proto(metric: experiment_pb2.Metric) -> MetricSpec:
    """The domain view of a catalog metric; raises :class:`SpecError` when it is unusable."""
    metric_type = _TYPES.get(metric.type)
    if metric_type is None:
        raise SpecError(f"metric {metric.key!r}: type is unspecified")
    is_count = metric.type == experiment_pb2.METRIC_TYPE_COUNT
    spec = MetricSpec(
        key=metric.key,
        type=metric_type,
        event_name=metric.source.event_name,
        measure="" if is_count else metric.source.measure,
        denominator_event_name=metric.denominator.event_name,
        denominator_measure=metric.denominator.measure,
        quantile=metric.quantile or 0.5,
        window_s=metric.window.ToTimedelta().total_seconds() if metric.HasField("window") else None,
        capping=_capping(metric),
        direction=(
            stats.Direction.DECREASE
            if metric.direction == experiment_pb2.DIRECTION_DECREASE
            else stats.Direction.INCREASE
        ),
        non_inferiority_margin=metric.non_inferiority_margin,
    )
    spec.validate()
    return spec


@dataclass(frozen=True)
class MetricDiagnostics:
    """What the analysis of one metric left out or changed (docs/ARCHITECTURE.md, Analysis)."""

    key: str
    events_before_exposure: int
    """The metric's events of exposed units timestamped before the unit's first exposure."""
    events_from_unexposed_units: int
    """The metric's events of units not exposed to the experiment."""
    capped_units: int
    """Analysed units whose value was capped."""


@dataclass(frozen=True)
class CollectedStats:
    """What :func:`collect_stats` measured for one experiment (and optionally one segment)."""

    units: dict[str, int]
    """Analysed units (exposed, not excluded) per variant key; 0 for a variant without any."""
    excluded_units: int
    """Units seen in more than one variant, left out of every metric."""
    metrics: list[stats.MetricInput]
    """One per metric spec, in order, ready for :func:`stats.analyze_experiment`."""
    first_exposed_at: datetime | None = None
    """The earliest exposure of an analysed unit."""
    diagnostics: tuple[MetricDiagnostics, ...] | None = None
    """Per metric spec, in order; None when not counted (a segment, or ``until``)."""
