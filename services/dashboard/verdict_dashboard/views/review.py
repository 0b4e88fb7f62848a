"""The Review step: what will run, as the API will receive it (pure)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf import json_format

from verdict.v1 import experiment_pb2
from verdict_dashboard import formatting as f
from verdict_dashboard.views.effects import correction_name
from verdict_dashboard.views.history import rule_states
from verdict_dashboard.views.results import ROLE_LABELS


@dataclass(frozen=True)
class ReviewVariant:
    key: str
    name: str
    weight: str
    control: bool
    payload: str


@dataclass(frozen=True)
class Review:
    """The experiment to be created, in words."""

    key: str
    name: str
    hypothesis: str
    variants: tuple[ReviewVariant, ...]
    weights_total: str
    weights_ok: bool
    coverage: str
    targeting: str
    metrics: tuple[tuple[str, str, str], ...]
    """(key, name, role)."""
    plan: str
    rules: tuple[tuple[str, str], ...]


def review(
    experiment: experiment_pb2.Experiment, catalog: Mapping[str, experiment_pb2.Metric]
) -> Review:
    """The review of `experiment` (metric names from `catalog`)."""
    total = sum(v.weight for v in experiment.variants)
    plan = experiment.analysis_plan
    sides = {0: "two-sided", 1: "two-sided", 2: "one-sided (increase)", 3: "one-sided (decrease)"}
    mde = plan.minimum_detectable_effect
    plan_text = (
        f"α {plan.alpha or 0.05:g} · power {plan.power or 0.8:g} · "
        f"MDE {f.percent(mde) if mde else 'not set'} · "
        f"{sides.get(plan.sides, 'two-sided')} · "
        f"{'sequential (anytime-valid)' if plan.sequential else 'fixed horizon'} · "
        f"{correction_name(plan.correction)} correction"
    )
    if plan.proportion_test == experiment_pb2.PROPORTION_TEST_POOLED:
        plan_text += " · pooled score test for rates"
    if plan.segments:
        plan_text += f" · segments: {', '.join(plan.segments)}"
    targeting = (
        json_format.MessageToDict(experiment.targeting) if experiment.HasField("targeting") else {}
    )
    return Review(
        key=experiment.key,
        name=experiment.name,
        hypothesis=experiment.hypothesis,
        variants=tuple(
            ReviewVariant(
                v.key,
                v.name,
                f.percent(v.weight, 0),
                v.is_control,
                json.dumps(json_format.MessageToDict(v.payload), indent=2)
                if v.HasField("payload")
                else "{}",
            )
            for v in experiment.variants
        ),
        weights_total=f.percent(total, 0),
        weights_ok=math.isclose(total, 1.0, abs_tol=1e-9),
        coverage=f.percent(experiment.coverage, 0),
        targeting=json.dumps(targeting, indent=2) if targeting else "everyone",
        metrics=tuple(
            (
                m.metric_key,
                catalog[m.metric_key].name if m.metric_key in catalog else "",
                ROLE_LABELS.get(m.role, "?"),
            )
            for m in experiment.metrics
        ),
        plan=plan_text,
        rules=tuple((r.name, r.setting) for r in rule_states(experiment, 0)),
    )
