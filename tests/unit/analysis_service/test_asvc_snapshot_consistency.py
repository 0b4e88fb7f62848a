"""No figure of a snapshot contradicts the one beside it, as a client reads it off the wire.

A property test over random sufficient statistics and plans (the engine's strategies), through
`build_snapshot` and a serialisation round trip:

* each `significant` flag agrees with the interval `decision_basis` names and its p-value;
* each `Estimate`'s interval agrees with its p-value, fixed-horizon and anytime-valid alike;
* the deprecated flat fields hold what their comments say;
* every NaN figure of a comparison has its reason in `missing_reasons`.
"""

from __future__ import annotations

import math

from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings

from support.stats_strategies import metrics, plans
from verdict.v1 import analysis_pb2, common_pb2, experiment_pb2
from verdict_analysis import stats as vs
from verdict_analysis.snapshot_proto import Observed, build_snapshot
from verdict_analysis.stopping_rules import Decision, Evaluation


def _excludes_zero(interval: common_pb2.Interval) -> bool:
    """The contract's reading: 0 is not strictly inside (a bound on 0 excludes it)."""
    return interval.lower >= 0.0 or interval.upper <= 0.0


def _nan_paths(message: object, prefix: str = "") -> list[str]:
    """Paths of the NaN numbers inside a message (intervals' bounds included)."""
    out = []
    for field, value in message.ListFields():  # type: ignore[attr-defined]
        path = f"{prefix}{field.name}"
        if isinstance(value, Message):
            out += _nan_paths(value, f"{path}.")
        elif isinstance(value, float) and math.isnan(value):
            out.append(path)
    # proto3 leaves fields at their default unset: a NaN is always set, so nothing is missed.
    return out


def _explained(path: str, reasons: dict[str, str]) -> bool:
    parts = path.split(".")
    return any(".".join(parts[:i]) in reasons for i in range(1, len(parts) + 1))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _check_estimate(estimate: analysis_pb2.Estimate, alpha: float, sequential: bool) -> None:
    if math.isnan(estimate.estimate):
        assert estimate.missing_reason and not estimate.test
        return
    assert estimate.test
    assert _excludes_zero(estimate.interval) == (estimate.p_value <= alpha)
    assert estimate.HasField("sequential_interval") == sequential
    if sequential:
        assert estimate.sequential_test.startswith("normal_mixture_")
        anytime = estimate.sequential_interval
        assert _excludes_zero(anytime) == (estimate.sequential_p_value <= alpha)
    else:
        assert math.isnan(estimate.sequential_p_value)
        assert estimate.missing_reason == "NOT_SEQUENTIAL"


def _check_comparison(comp: analysis_pb2.Comparison, snapshot: analysis_pb2.ResultSnapshot) -> None:
    alpha, sequential = snapshot.alpha, snapshot.sequential
    basis = comp.decision_basis
    assert basis.alpha == alpha and basis.sequential == sequential
    if math.isnan(basis.p_value):
        assert not comp.significant
        assert comp.verdict == analysis_pb2.METRIC_VERDICT_INCONCLUSIVE
    else:
        assert comp.significant == _excludes_zero(basis.interval) == (basis.p_value <= alpha)
    for estimate in (comp.absolute, comp.relative):
        _check_estimate(estimate, alpha, sequential)
    # The deprecated flat fields, as documented.
    assert _same(comp.adjusted_p_value, basis.p_value)
    assert _same(comp.absolute_effect, comp.absolute.estimate)
    assert _same(comp.relative_effect, comp.relative.estimate)
    relative = basis.scale == analysis_pb2.EFFECT_SCALE_RELATIVE
    on_scale = comp.relative if relative else comp.absolute
    raw_p = on_scale.sequential_p_value if sequential else on_scale.p_value
    assert _same(comp.p_value, raw_p) or math.isnan(basis.p_value)
    for flat, estimate in ((comp.absolute_interval, comp.absolute),
                           (comp.relative_interval, comp.relative)):  # fmt: skip
        view = estimate.sequential_interval if sequential else estimate.interval
        if not math.isnan(estimate.estimate):
            assert (flat.lower, flat.upper) == (view.lower, view.upper)
    if relative and not math.isnan(basis.p_value):
        bounds = comp.adjusted_relative_interval
        assert (bounds.lower, bounds.upper) == (basis.interval.lower, basis.interval.upper)
    assert comp.chance_to_beat_control_fixed_horizon
    reasons = dict(comp.missing_reasons)
    for path in _nan_paths(comp):
        assert _explained(path, reasons), (path, reasons)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(metrics(), plans)
def test_each_significant_flag_agrees_with_its_basis_and_each_interval_with_its_p_value(
    inputs: list[vs.MetricInput], plan: vs.AnalysisPlan
) -> None:
    analysis = vs.analyze_experiment(inputs, plan)
    names = sorted({name for m in inputs for name in m.variants})
    names.remove("control")
    order = ["control", *names]
    experiment = experiment_pb2.Experiment(
        key="exp",
        variants=[experiment_pb2.Variant(key=k, weight=1.0 / len(order)) for k in order],
    )
    built = build_snapshot(
        experiment,
        {},
        order,
        analysis,
        Observed(dict.fromkeys(order, 0), 0),
        Evaluation(Decision.KEEP_RUNNING, "", (), ()),
    )
    snapshot = analysis_pb2.ResultSnapshot.FromString(built.SerializeToString())
    assert snapshot.alpha == plan.alpha
    assert snapshot.sequential == (plan.sequential is not None)
    compared = 0
    for metric, given_ in zip(snapshot.metrics, inputs, strict=True):
        assert metric.non_inferiority_margin == (given_.non_inferiority_margin or 0.0)
        assert (metric.reason != "") == (len(metric.comparisons) == 0)
        for variant in metric.variants:
            if math.isnan(variant.mean):
                assert variant.reason and not variant.method
            else:
                assert variant.method
        for comp in metric.comparisons:
            _check_comparison(comp, snapshot)
            compared += 1
    assert compared == sum(len(m.comparisons) for m in analysis.metrics)
