"""The Export tab's files: the current results as CSV (one row per metric × variant) and as the
snapshot's proto JSON (pure)."""

from __future__ import annotations

import csv
import io
import json

from google.protobuf import json_format

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_dashboard.views.effects import scale_effect

CSV_COLUMNS = (
    "experiment",
    "snapshot_id",
    "computed_at",
    "metric",
    "role",
    "variant",
    "control_units",
    "control_mean",
    "variant_units",
    "variant_mean",
    "absolute_effect",
    "absolute_lower",
    "absolute_upper",
    "absolute_p_value",
    "relative_effect",
    "relative_lower",
    "relative_upper",
    "relative_p_value",
    "anytime_valid",
    "significant",
    "verdict",
    "chance_to_beat_control",
    "absolute_test",
    "relative_test",
    "decision_scale",
    "decision_anytime_valid",
    "decision_adjusted",
    "decision_lower",
    "decision_upper",
    "decision_p_value",
    "chance_fixed_horizon",
)
"""The figures of each scale come with their test's name; `decision_*` is the interval the
verdict and `significant` are decided on (empty for snapshots that do not carry it)."""


def results_csv(snapshot: analysis_pb2.ResultSnapshot, sequential: bool) -> str:
    """One row per metric × treatment variant, figures unrounded."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    at = snapshot.create_time.ToJsonString() if snapshot.HasField("create_time") else ""
    for result in snapshot.metrics:
        control = result.variants[0] if result.variants else analysis_pb2.VariantSummary()
        by_key = {v.variant_key: v for v in result.variants}
        for c in result.comparisons:
            variant = by_key.get(c.variant_key, analysis_pb2.VariantSummary())
            ab = scale_effect(c, relative=False, sequential=sequential)
            rel = scale_effect(c, relative=True, sequential=sequential)
            basis = c.decision_basis
            decision: list[object] = ["", "", "", "", "", ""]
            if c.HasField("decision_basis"):
                decision = [
                    analysis_pb2.EffectScale.Name(basis.scale),
                    basis.sequential,
                    basis.adjusted,
                    basis.interval.lower,
                    basis.interval.upper,
                    basis.p_value,
                ]
            writer.writerow(
                [
                    snapshot.experiment_key,
                    snapshot.id,
                    at,
                    result.metric_key,
                    experiment_pb2.MetricRole.Name(result.role),
                    c.variant_key,
                    control.units,
                    control.mean,
                    variant.units,
                    variant.mean,
                    ab.estimate,
                    ab.lower,
                    ab.upper,
                    ab.p_value,
                    rel.estimate,
                    rel.lower,
                    rel.upper,
                    rel.p_value,
                    rel.anytime,
                    c.significant,
                    analysis_pb2.MetricVerdict.Name(c.verdict),
                    c.chance_to_beat_control,
                    ab.test,
                    rel.test,
                    *decision,
                    c.chance_to_beat_control_fixed_horizon,
                ]
            )
    return out.getvalue()


def results_json(snapshot: analysis_pb2.ResultSnapshot) -> str:
    """The snapshot as proto JSON (the same shape `buf curl` prints)."""
    return json.dumps(json_format.MessageToDict(snapshot), indent=2, sort_keys=True)
