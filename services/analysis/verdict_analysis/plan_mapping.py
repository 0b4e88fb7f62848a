"""Translation of an experiment's proto configuration into the engine's plan and the rules (pure).

The engine's effect scale is RELATIVE: the contract reports the adjusted interval, the expected
loss and the stopping margins as relative lifts, so the decision's p-values are relative too
(each scale's own figures stand beside them in the snapshot, with their own p-values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, timedelta

from google.protobuf import json_format

from verdict.v1 import common_pb2, experiment_pb2
from verdict_analysis import stats
from verdict_analysis.rule_overrides import OverrideMode, RuleOverride
from verdict_analysis.stopping_rules import MetricContext, MetricRole, RuleName, Rules, SrmPolicy

DEFAULT_ALPHA = 0.05
DEFAULT_TUNING_N = 5_000
DEFAULT_SRM_THRESHOLD = 0.001

SIDES = {
    common_pb2.SIDES_UNSPECIFIED: stats.Sides.TWO_SIDED,
    common_pb2.SIDES_TWO_SIDED: stats.Sides.TWO_SIDED,
    common_pb2.SIDES_GREATER: stats.Sides.GREATER,
    common_pb2.SIDES_LESS: stats.Sides.LESS,
}
_CORRECTION = {
    experiment_pb2.MULTIPLE_TESTING_CORRECTION_UNSPECIFIED: stats.Correction.HOLM,
    experiment_pb2.MULTIPLE_TESTING_CORRECTION_NONE: stats.Correction.NONE,
    experiment_pb2.MULTIPLE_TESTING_CORRECTION_HOLM: stats.Correction.HOLM,
    experiment_pb2.MULTIPLE_TESTING_CORRECTION_BENJAMINI_HOCHBERG: (
        stats.Correction.BENJAMINI_HOCHBERG
    ),
}
_PROPORTION_TESTS = {
    experiment_pb2.PROPORTION_TEST_UNSPECIFIED: stats.ProportionTest.UNPOOLED,
    experiment_pb2.PROPORTION_TEST_UNPOOLED: stats.ProportionTest.UNPOOLED,
    experiment_pb2.PROPORTION_TEST_POOLED: stats.ProportionTest.POOLED,
}
_SRM = {
    experiment_pb2.SRM_ACTION_UNSPECIFIED: SrmPolicy.ALERT,
    experiment_pb2.SRM_ACTION_IGNORE: SrmPolicy.IGNORE,
    experiment_pb2.SRM_ACTION_ALERT: SrmPolicy.ALERT,
    experiment_pb2.SRM_ACTION_STOP: SrmPolicy.STOP,
}


def control_key(experiment: experiment_pb2.Experiment) -> str:
    """The control variant's key (the first variant when none is marked)."""
    for variant in experiment.variants:
        if variant.is_control:
            return variant.key
    return experiment.variants[0].key if experiment.variants else ""


def variant_keys(experiment: experiment_pb2.Experiment) -> list[str]:
    """Variant keys, control first."""
    control = control_key(experiment)
    return [control, *(v.key for v in experiment.variants if v.key != control)]


def srm_threshold(experiment: experiment_pb2.Experiment) -> float:
    """The SRM p-value threshold: the rule's, or 0.001."""
    return experiment.stopping_rules.srm_p_value_threshold or DEFAULT_SRM_THRESHOLD


def analysis_plan(experiment: experiment_pb2.Experiment) -> stats.AnalysisPlan:
    """The engine's plan for an experiment."""
    plan = experiment.analysis_plan
    weights = {v.key: v.weight for v in experiment.variants}
    usable_weights = weights if all(w > 0.0 for w in weights.values()) else None
    return stats.AnalysisPlan(
        alpha=plan.alpha or DEFAULT_ALPHA,
        sides=SIDES.get(plan.sides, stats.Sides.TWO_SIDED),
        sequential=(
            stats.SequentialDesign(plan.sequential_tuning_n or DEFAULT_TUNING_N)
            if plan.sequential
            else None
        ),
        correction=_CORRECTION.get(plan.correction, stats.Correction.HOLM),
        effect_scale=stats.EffectScale.RELATIVE,
        proportion_test=_PROPORTION_TESTS.get(plan.proportion_test, stats.ProportionTest.UNPOOLED),
        variant_weights=usable_weights,
        srm_alpha=srm_threshold(experiment),
    )


def cuped_lookback_s(experiment: experiment_pb2.Experiment) -> float | None:
    """CUPED's lookback in seconds; None when CUPED is off."""
    seconds = experiment.analysis_plan.cuped_lookback.ToTimedelta().total_seconds()
    return seconds if seconds > 0 else None


def stopping_rules(experiment: experiment_pb2.Experiment) -> Rules:
    """The experiment's stopping rules as the rule engine reads them."""
    proto = experiment.stopping_rules
    max_duration = proto.max_duration.ToTimedelta() if proto.HasField("max_duration") else None
    return Rules(
        max_duration=max_duration if max_duration and max_duration > timedelta(0) else None,
        target_sample_size=proto.target_sample_size or None,
        efficacy=proto.efficacy,
        min_units_per_variant=proto.min_units_per_variant,
        guardrail_harm=proto.guardrail_harm,
        srm=_SRM.get(proto.srm_action, SrmPolicy.ALERT),
    )


_ROLES = {
    experiment_pb2.METRIC_ROLE_PRIMARY: MetricRole.PRIMARY,
    experiment_pb2.METRIC_ROLE_SECONDARY: MetricRole.SECONDARY,
    experiment_pb2.METRIC_ROLE_GUARDRAIL: MetricRole.GUARDRAIL,
}


def metric_context(
    experiment: experiment_pb2.Experiment, metrics: Mapping[str, experiment_pb2.Metric]
) -> dict[str, MetricContext]:
    """Role and non-inferiority margin of each of the experiment's metrics."""
    out: dict[str, MetricContext] = {}
    for used in experiment.metrics:
        definition = metrics.get(used.metric_key)
        margin = definition.non_inferiority_margin if definition is not None else 0.0
        out[used.metric_key] = MetricContext(
            _ROLES.get(used.role, MetricRole.SECONDARY), abs(margin)
        )
    return out


def with_margins(
    inputs: Sequence[stats.MetricInput], context: Mapping[str, MetricContext]
) -> list[stats.MetricInput]:
    """The metric inputs with each guardrail's non-inferiority margin (relative, like the plan's
    effect scale), so that the engine's verdicts on guardrails use it; other roles carry none."""
    out = []
    for metric in inputs:
        ctx = context.get(metric.key)
        guardrail = ctx is not None and ctx.role is MetricRole.GUARDRAIL
        margin = ctx.non_inferiority_margin if ctx is not None and guardrail else None
        out.append(replace(metric, non_inferiority_margin=margin))
    return out


RULES: dict[RuleName, experiment_pb2.StoppingRule.ValueType] = {
    RuleName.SRM: experiment_pb2.STOPPING_RULE_SRM,
    RuleName.GUARDRAIL_HARM: experiment_pb2.STOPPING_RULE_GUARDRAIL_HARM,
    RuleName.EFFICACY: experiment_pb2.STOPPING_RULE_EFFICACY,
    RuleName.TARGET_SAMPLE_SIZE: experiment_pb2.STOPPING_RULE_TARGET_SAMPLE_SIZE,
    RuleName.MAX_DURATION: experiment_pb2.STOPPING_RULE_MAX_DURATION,
}
"""The rule engine's names and the contract's enum."""
_RULE_NAMES = {number: name for name, number in RULES.items()}
_MODES = {
    experiment_pb2.RULE_OVERRIDE_MODE_OVERRIDE: OverrideMode.OVERRIDE,
    experiment_pb2.RULE_OVERRIDE_MODE_SNOOZE: OverrideMode.SNOOZE,
    experiment_pb2.RULE_OVERRIDE_MODE_DISABLE: OverrideMode.DISABLE,
}


def rule_overrides(experiment: experiment_pb2.Experiment) -> list[RuleOverride]:
    """The operators' overrides in force for the current run (unknown values skipped)."""
    out = []
    for o in experiment.rule_overrides:
        rule, mode = _RULE_NAMES.get(o.rule), _MODES.get(o.mode)
        if rule is None or mode is None:
            continue
        out.append(
            RuleOverride(
                rule=rule,
                mode=mode,
                actor=o.actor,
                reason=o.reason,
                until=o.until.ToDatetime(tzinfo=UTC) if o.HasField("until") else None,
                baseline=json_format.MessageToDict(o.baseline) if o.HasField("baseline") else {},
            )
        )
    return out
