"""One effect of one comparison on one scale, as the page shows it (pure).

Figures come from the comparison's per-scale `Estimate` (each interval with the p-value of its
own test; the anytime-valid pair in sequential plans). Snapshots from an analysis that does not
fill `absolute`/`relative` yet fall back to the older flat fields, flagged as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from verdict.v1 import analysis_pb2, experiment_pb2
from verdict_dashboard import formatting as f

NAN = math.nan
TEST_LABELS = {
    "welch_t": "Welch t",
    "z_unpooled": "z (unpooled)",
    "z_pooled": "score z (pooled)",
    "ratio_delta_method": "delta method (ratio)",
    "cuped_z": "CUPED z",
    "cuped_ratio_delta_method": "CUPED delta method",
    "quantile_outer_ci": "outer CI (quantile)",
    "delta_method": "delta method",
}
"""The contract's test names (`Estimate.test`), as a reader says them."""


@dataclass(frozen=True)
class Effect:
    """An effect with its interval and p-value on one scale."""

    estimate: float
    lower: float
    upper: float
    p_value: float
    anytime: bool
    """True when the interval and p-value are anytime-valid (sequential)."""
    test: str
    """The test behind the interval and p-value (the contract's name); empty when unknown."""
    missing: str
    """Why the figures are missing; empty when sound."""
    text: str
    interval_text: str
    p_text: str

    @property
    def test_text(self) -> str:
        """E.g. "delta method · anytime-valid": which test produced the figures shown."""
        if not self.test:
            return ""
        name = TEST_LABELS.get(self.test, self.test.replace("_", " "))
        return f"{name} · {'anytime-valid' if self.anytime else 'fixed-horizon'}"

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval is on one side of zero."""
        return self.lower > 0 or self.upper < 0


def _effect(
    estimate: float,
    lower: float,
    upper: float,
    p: float,
    anytime: bool,
    test: str,
    missing: str,
    relative: bool,
) -> Effect:
    fmt = "percent" if relative else "number"
    text = f.signed_percent(estimate) if relative else f.number(estimate, signed=True)
    return Effect(
        estimate=estimate,
        lower=lower,
        upper=upper,
        p_value=p,
        anytime=anytime,
        test=test,
        missing=missing,
        text=text,
        interval_text=f.interval(lower, upper, fmt),
        p_text=f.p_value(p),
    )


def scale_effect(comparison: analysis_pb2.Comparison, relative: bool, sequential: bool) -> Effect:
    """The comparison's effect on the relative or absolute scale."""
    has_estimate = comparison.HasField("relative" if relative else "absolute")
    if has_estimate:
        est = comparison.relative if relative else comparison.absolute
        anytime = sequential and est.HasField("sequential_interval")
        bounds = est.sequential_interval if anytime else est.interval
        p = est.sequential_p_value if anytime else est.p_value
        return _effect(
            est.estimate,
            bounds.lower,
            bounds.upper,
            p,
            anytime,
            est.test,
            est.missing_reason,
            relative,
        )
    # An analysis without per-scale estimates: the flat fields, whose p-value belongs to the
    # plan's scale only (shown on that scale alone).
    bounds = comparison.relative_interval if relative else comparison.absolute_interval
    estimate = comparison.relative_effect if relative else comparison.absolute_effect
    has_bounds = comparison.HasField("relative_interval" if relative else "absolute_interval")
    lower, upper = (bounds.lower, bounds.upper) if has_bounds else (NAN, NAN)
    # The flat p-value is the plan's scale's (relative, the default): shown there only.
    p = comparison.p_value if relative else NAN
    return _effect(
        estimate, lower, upper, p, sequential, "", comparison.degenerate_reason, relative
    )


@dataclass(frozen=True)
class Basis:
    """What `significant` was decided on, in words."""

    text: str
    available: bool


_CORRECTIONS: dict[int, str] = {
    experiment_pb2.MULTIPLE_TESTING_CORRECTION_NONE: "no correction",
    experiment_pb2.MULTIPLE_TESTING_CORRECTION_HOLM: "Holm",
    experiment_pb2.MULTIPLE_TESTING_CORRECTION_BENJAMINI_HOCHBERG: "Benjamini-Hochberg",
    experiment_pb2.MULTIPLE_TESTING_CORRECTION_UNSPECIFIED: "Holm",
}


def correction_name(correction: int) -> str:
    """The multiple-testing correction, named."""
    return _CORRECTIONS.get(correction, "Holm")


def decision_basis(comparison: analysis_pb2.Comparison) -> Basis:
    """The interval `significant` is decided on, with its p-value, e.g. "relative ·
    anytime-valid · adjusted [+1.2 %, +7.0 %] · p 0.003 vs α 0.05"."""
    if not comparison.HasField("decision_basis"):
        return Basis("not available from this analysis", False)
    basis = comparison.decision_basis
    absolute = basis.scale == analysis_pb2.EFFECT_SCALE_ABSOLUTE
    parts = ["absolute" if absolute else "relative"]
    parts.append("anytime-valid" if basis.sequential else "fixed-horizon")
    if math.isnan(basis.p_value):
        return Basis(" · ".join([*parts, "no interval (see the notes)"]), True)
    bounds = f.interval(
        basis.interval.lower, basis.interval.upper, "number" if absolute else "percent"
    )
    parts.append(f"adjusted {bounds}" if basis.adjusted else bounds)
    parts.append(f"p {f.p_value(basis.p_value)} vs α {basis.alpha:g}")
    return Basis(" · ".join(parts), True)


def verdict_of(
    comparison: analysis_pb2.Comparison, direction: int, relative_effect: Effect
) -> tuple[str, str]:
    """(kind, label): win, loss, inconclusive or unknown, from the analysis's verdict; for an
    analysis without one, from `significant` and the metric's desired direction."""
    v = comparison.verdict
    if v == analysis_pb2.METRIC_VERDICT_WIN:
        return "win", "win"
    if v == analysis_pb2.METRIC_VERDICT_LOSS:
        return "loss", "loss"
    if v == analysis_pb2.METRIC_VERDICT_INCONCLUSIVE:
        return "inconclusive", "inconclusive"
    if not math.isfinite(relative_effect.estimate) and not comparison.significant:
        return "unknown", "no verdict"
    if comparison.significant:
        better = (relative_effect.estimate > 0) == (direction != experiment_pb2.DIRECTION_DECREASE)
        return ("win", "win") if better else ("loss", "loss")
    return "inconclusive", "inconclusive"
