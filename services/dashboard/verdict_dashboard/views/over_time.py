"""The Over time tab: a metric's cumulative effect per snapshot with its interval band (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC

from verdict.v1 import analysis_pb2
from verdict_dashboard.formatting import json_for_html
from verdict_dashboard.views.effects import scale_effect


def _value(x: float) -> float | None:
    return x if math.isfinite(x) else None


def over_time_json(
    snapshots: Sequence[analysis_pb2.ResultSnapshot], metric_key: str, sequential: bool
) -> str:
    """Per treatment variant, oldest first: time, relative effect, interval bounds."""
    series: dict[str, list[list[object]]] = {}
    for snapshot in sorted(snapshots, key=lambda s: s.id):
        at = snapshot.create_time.ToDatetime(tzinfo=UTC).isoformat()
        for result in snapshot.metrics:
            if result.metric_key != metric_key:
                continue
            for comparison in result.comparisons:
                e = scale_effect(comparison, relative=True, sequential=sequential)
                series.setdefault(comparison.variant_key, []).append(
                    [at, _value(e.estimate), _value(e.lower), _value(e.upper)]
                )
    return json_for_html(
        {"kind": "overtime", "metric": metric_key, "anytime": sequential, "series": series}
    )
