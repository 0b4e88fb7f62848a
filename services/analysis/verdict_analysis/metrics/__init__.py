"""In-database metric computation: per-variant sufficient statistics from SQL.

The package root exports only the pure metric specification (`spec`), so use cases and ports can
name metrics without importing a database driver. The adapter is `collect.collect_stats`: it runs
the analysis queries for one experiment (optionally one segment) and returns
:class:`stats.MetricInput` values ready for :func:`stats.analyze_experiment`; no per-unit rows
leave PostgreSQL. See docs in :mod:`.sql` for the queries' shape, and docs/ARCHITECTURE.md for
which path runs when.
"""

from .spec import (
    CollectedStats,
    MetricDiagnostics,
    MetricSpec,
    Segment,
    SpecError,
    metric_spec_from_proto,
)

__all__ = [
    "CollectedStats",
    "MetricDiagnostics",
    "MetricSpec",
    "Segment",
    "SpecError",
    "metric_spec_from_proto",
]
