"""Forms to protos, and the API's field violations back to form fields (pure).

Form fields are named after the request's field paths (`key`, `variants[1].weight`,
`analysis_plan.alpha`), so a `google.rpc.BadRequest` violation such as
`experiment.variants[1].weight` lands beside the input it names. What the browser cannot send as
the API wants it (a number, JSON) is checked here first, with the same field names; the form is
re-rendered with every value kept.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import duration_pb2, struct_pb2

from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2

GENERAL = "_form"
"""Errors that name no field of the form."""
MAX_VARIANTS = 8

ROLES = {
    "primary": experiment_pb2.METRIC_ROLE_PRIMARY,
    "secondary": experiment_pb2.METRIC_ROLE_SECONDARY,
    "guardrail": experiment_pb2.METRIC_ROLE_GUARDRAIL,
}
SIDES = {
    "two": common_pb2.SIDES_TWO_SIDED,
    "greater": common_pb2.SIDES_GREATER,
    "less": common_pb2.SIDES_LESS,
}
CORRECTIONS = {
    "holm": experiment_pb2.MULTIPLE_TESTING_CORRECTION_HOLM,
    "bh": experiment_pb2.MULTIPLE_TESTING_CORRECTION_BENJAMINI_HOCHBERG,
    "none": experiment_pb2.MULTIPLE_TESTING_CORRECTION_NONE,
}
PROPORTION_TESTS = {
    "unpooled": experiment_pb2.PROPORTION_TEST_UNPOOLED,
    "pooled": experiment_pb2.PROPORTION_TEST_POOLED,
}
SRM_ACTIONS = {
    "alert": experiment_pb2.SRM_ACTION_ALERT,
    "stop": experiment_pb2.SRM_ACTION_STOP,
    "ignore": experiment_pb2.SRM_ACTION_IGNORE,
}
METRIC_TYPES = {
    "binomial": experiment_pb2.METRIC_TYPE_BINOMIAL,
    "mean": experiment_pb2.METRIC_TYPE_MEAN,
    "count": experiment_pb2.METRIC_TYPE_COUNT,
    "ratio": experiment_pb2.METRIC_TYPE_RATIO,
    "quantile": experiment_pb2.METRIC_TYPE_QUANTILE,
}
DIRECTIONS = {
    "increase": experiment_pb2.DIRECTION_INCREASE,
    "decrease": experiment_pb2.DIRECTION_DECREASE,
}
CAPPING = {
    "none": experiment_pb2.CAPPING_TYPE_UNSPECIFIED,
    "absolute": experiment_pb2.CAPPING_TYPE_ABSOLUTE,
    "percentile": experiment_pb2.CAPPING_TYPE_PERCENTILE,
}
ALIASES = {
    "stopping_rules.max_duration": "stopping_rules.max_duration_days",
    "window": "window_days",
    "metric.window": "window_days",
}


@dataclass
class Parsed:
    """A form read into its proto, with the errors found on the way (field name → message)."""

    message: Any
    errors: dict[str, str] = field(default_factory=dict)


class _Reader:
    def __init__(self, values: Mapping[str, str], errors: dict[str, str]) -> None:
        self.values = values
        self.errors = errors

    def text(self, name: str) -> str:
        return str(self.values.get(name, "")).strip()

    def number(self, name: str, default: float = 0.0) -> float:
        raw = self.text(name)
        if raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self.errors[name] = "must be a number"
            return default
        return value

    def integer(self, name: str, default: int = 0) -> int:
        raw = self.text(name)
        if raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            self.errors[name] = "must be a whole number"
            return default

    def flag(self, name: str) -> bool:
        return self.text(name) in ("on", "true", "1", "yes")

    def choice(self, name: str, options: Mapping[str, int], default: str) -> int:
        raw = self.text(name) or default
        if raw not in options:
            self.errors[name] = f"must be one of {', '.join(options)}"
            return options[default]
        return options[raw]

    def json_object(self, name: str) -> struct_pb2.Struct | None:
        raw = self.text(name)
        if raw == "":
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            self.errors[name] = (
                f"is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
            )
            return None
        if not isinstance(value, dict):
            self.errors[name] = 'must be a JSON object, e.g. {"model": "gpt-4o"}'
            return None
        result = struct_pb2.Struct()
        result.update(value)
        return result


def variant_count(values: Mapping[str, str]) -> int:
    """How many variant rows the form has (at least 2)."""
    indexes = {int(m.group(1)) for k in values if (m := re.match(r"variants\[(\d+)\]\.", k))}
    return max(2, min(MAX_VARIANTS, max(indexes) + 1 if indexes else 2))


def parse_experiment(values: Mapping[str, str]) -> Parsed:
    """The new-experiment form as a CreateExperiment request's experiment."""
    errors: dict[str, str] = {}
    r = _Reader(values, errors)
    e = experiment_pb2.Experiment(
        key=r.text("key"),
        name=r.text("name"),
        description=r.text("description"),
        hypothesis=r.text("hypothesis"),
        hash_attribute=r.text("hash_attribute"),
    )
    control = r.text("control") or "0"
    for i in range(variant_count(values)):
        p = f"variants[{i}]"
        v = e.variants.add(
            key=r.text(f"{p}.key"),
            name=r.text(f"{p}.name"),
            weight=r.number(f"{p}.weight"),
            is_control=control == str(i),
            description=r.text(f"{p}.description"),
        )
        payload = r.json_object(f"{p}.payload")
        if payload is not None:
            v.payload.CopyFrom(payload)
    e.coverage = r.number("coverage", 1.0)
    targeting = r.json_object("targeting")
    if targeting is not None:
        e.targeting.CopyFrom(targeting)
    for name, raw in sorted(values.items()):
        if name.startswith("metric_role.") and str(raw).strip():
            role = r.choice(name, ROLES, "secondary")
            e.metrics.add(metric_key=name.removeprefix("metric_role."), role=role)
    plan = e.analysis_plan
    plan.alpha = r.number("analysis_plan.alpha")
    plan.power = r.number("analysis_plan.power")
    plan.minimum_detectable_effect = r.number("analysis_plan.minimum_detectable_effect")
    plan.sides = r.choice("analysis_plan.sides", SIDES, "two")  # type: ignore[assignment]
    plan.sequential = r.flag("analysis_plan.sequential")
    plan.correction = r.choice("analysis_plan.correction", CORRECTIONS, "holm")  # type: ignore[assignment]
    plan.proportion_test = r.choice(  # type: ignore[assignment]
        "analysis_plan.proportion_test", PROPORTION_TESTS, "unpooled"
    )
    plan.segments.extend(
        s.strip() for s in r.text("analysis_plan.segments").split(",") if s.strip()
    )
    rules = e.stopping_rules
    rules.efficacy = r.flag("stopping_rules.efficacy")
    rules.min_units_per_variant = r.integer("stopping_rules.min_units_per_variant")
    rules.guardrail_harm = r.flag("stopping_rules.guardrail_harm")
    rules.srm_action = r.choice("stopping_rules.srm_action", SRM_ACTIONS, "alert")  # type: ignore[assignment]
    rules.srm_p_value_threshold = r.number("stopping_rules.srm_p_value_threshold")
    rules.target_sample_size = r.integer("stopping_rules.target_sample_size")
    max_days = r.number("stopping_rules.max_duration_days")
    if max_days > 0:
        rules.max_duration.CopyFrom(duration_pb2.Duration(seconds=round(max_days * 86400)))
    return Parsed(e, errors)


def parse_metric(values: Mapping[str, str]) -> Parsed:
    """The metric form as a catalog Metric."""
    errors: dict[str, str] = {}
    r = _Reader(values, errors)
    m = experiment_pb2.Metric(
        key=r.text("key"), name=r.text("name"), description=r.text("description")
    )
    m.type = r.choice("type", METRIC_TYPES, "binomial")  # type: ignore[assignment]
    m.source.event_name = r.text("source.event_name")
    m.source.measure = r.text("source.measure")
    if m.type == experiment_pb2.METRIC_TYPE_RATIO:
        m.denominator.event_name = r.text("denominator.event_name")
        m.denominator.measure = r.text("denominator.measure")
    if m.type == experiment_pb2.METRIC_TYPE_QUANTILE:
        m.quantile = r.number("quantile")
    m.direction = r.choice("direction", DIRECTIONS, "increase")  # type: ignore[assignment]
    m.non_inferiority_margin = r.number("non_inferiority_margin")
    m.capping = r.choice("capping", CAPPING, "none")  # type: ignore[assignment]
    if m.capping != experiment_pb2.CAPPING_TYPE_UNSPECIFIED:
        m.capping_value = r.number("capping_value")
    window_days = r.number("window_days")
    if window_days > 0:
        m.window.CopyFrom(duration_pb2.Duration(seconds=round(window_days * 86400)))
    return Parsed(m, errors)


METRIC_MASK = (
    "name",
    "description",
    "type",
    "source",
    "denominator",
    "quantile",
    "window",
    "capping",
    "capping_value",
    "direction",
    "non_inferiority_margin",
)
"""Every field the metric form edits (UpdateMetric's mask)."""


def sample_size_request(values: Mapping[str, str]) -> Parsed:
    """The calculator's inputs (with the plan's alpha, power, sides, design and arms)."""
    errors: dict[str, str] = {}
    r = _Reader(values, errors)
    kinds = {
        "proportion": analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION,
        "mean": analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_MEAN,
        "ratio": analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_RATIO,
    }
    request = analysis_pb2.CalculateSampleSizeRequest(
        metric_type=r.choice("calc.metric_type", kinds, "proportion"),  # type: ignore[arg-type]
        baseline_mean=r.number("calc.baseline"),
        standard_deviation=r.number("calc.standard_deviation"),
        minimum_detectable_effect=r.number("calc.minimum_detectable_effect"),
        mde_is_absolute=r.text("calc.mde_scale") == "absolute",
        alpha=r.number("analysis_plan.alpha"),
        power=r.number("analysis_plan.power"),
        sides=r.choice("analysis_plan.sides", SIDES, "two"),  # type: ignore[arg-type]
        variants=variant_count(values),
        sequential=r.flag("analysis_plan.sequential"),
        daily_units=r.number("calc.daily_units"),
        coverage=r.number("coverage", 1.0),
    )
    return Parsed(request, errors)


CALC_FIELDS = {
    "metric_type": "calc.metric_type",
    "baseline_mean": "calc.baseline",
    "standard_deviation": "calc.standard_deviation",
    "minimum_detectable_effect": "calc.minimum_detectable_effect",
    "alpha": "analysis_plan.alpha",
    "power": "analysis_plan.power",
    "sides": "analysis_plan.sides",
    "daily_units": "calc.daily_units",
    "coverage": "coverage",
    "variants": "variants",
}


def field_errors(
    violations: Mapping[str, str],
    known: Iterable[str],
    prefix: str = "",
    renames: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """API violations keyed by the form field they name: the nearest known field up the path
    (`experiment.variants[1].payload.model` → `variants[1].payload`), else GENERAL."""
    fields = set(known)
    out: dict[str, str] = {}
    for path, message in violations.items():
        name = path.removeprefix(prefix)
        name = (renames or {}).get(name, ALIASES.get(name, name))
        while name and name not in fields:
            cut = max(name.rfind("."), name.rfind("["))
            name = name[:cut] if cut > 0 else ""
        target = name or GENERAL
        text = message if target != GENERAL else f"{path}: {message}"
        out[target] = f"{out[target]}; {text}" if target in out else text
    return out
