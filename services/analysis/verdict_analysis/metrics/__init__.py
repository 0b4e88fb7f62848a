"""In-database metric computation: per-variant sufficient statistics from SQL.

``collect_stats`` runs the analysis queries for one experiment (optionally one segment)
and returns :class:`stats.MetricInput` values ready for :func:`stats.analyze_experiment`;
no per-unit rows leave PostgreSQL. See docs in :mod:`.sql` for the queries' shape.
"""

from .collect import CollectedStats, collect_stats, segment_values
from .spec import MetricSpec, Segment, SpecError, metric_spec_from_proto

__all__ = [
    "CollectedStats",
    "MetricSpec",
    "Segment",
    "SpecError",
    "collect_stats",
    "metric_spec_from_proto",
    "segment_values",
]
