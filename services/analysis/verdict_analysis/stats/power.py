"""Power and sample size: two means, two proportions, ratio metrics; MDE; duration.

Per arm, with the difference's per-unit variance ``V0`` under the null and ``V1``
under the alternative (``V0 = V1 = 2 sigma^2`` for means and ratios; ``V0 = 2 pbar
qbar``, ``V1 = p1 q1 + p2 q2`` for proportions, Fleiss, Levin & Paik 2003, eq. 4.14
without continuity correction):

    n = ( z_{1-a/2} sqrt(V0) + z_{1-b} sqrt(V1) )^2 / delta^2          (rounded up)

The closed form ignores the chance of rejecting in the wrong direction (below 1e-6
at usual settings); :func:`achieved_power` includes both tails, as statsmodels does.
Ratio metrics use the delta-method per-unit variance ``(s_a^2 - 2R s_ab + R^2 s_b^2)/mean(b)^2``.

Sequential designs replace ``z_{1-a/2}`` by the normal-mixture boundary at the final
look (see :mod:`.sequential`; ``n`` there counts both compared arms; one-sided designs
use the one-sided boundary); the resulting sample size is conservative because earlier
looks can only add rejections.

Results stay in their natural range: a size above :data:`MAX_UNITS` (per arm or in
total), an MDE below 1e-15 or one that does not fit a float is ``OUT_OF_RANGE``; a power
at or below alpha is ``INVALID_INPUT`` (the formula would answer a meaningless size);
fewer than :data:`SMALL_SAMPLE_UNITS` units per arm is flagged ``SMALL_SAMPLE``, since
the normal approximation behind the formula does not hold there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize

from ._numeric import normal_cdf, normal_quantile
from .plan import SequentialDesign, Sides
from .reasons import Reason
from .sequential import mixture_boundary, mixture_rho
from .sufficient import RatioStats

__all__ = [
    "MAX_UNITS",
    "SMALL_SAMPLE_UNITS",
    "DurationResult",
    "MdeResult",
    "MeanBaseline",
    "ProportionBaseline",
    "RatioBaseline",
    "SampleSizeResult",
    "achieved_power",
    "expected_duration",
    "mde",
    "sample_size",
]


@dataclass(frozen=True)
class MeanBaseline:
    """Control mean and per-unit standard deviation (assumed equal in every arm)."""

    mean: float
    std_dev: float


@dataclass(frozen=True)
class ProportionBaseline:
    """Control conversion rate."""

    rate: float


@dataclass(frozen=True)
class RatioBaseline:
    """Per-unit means, variances and covariance of a ratio's numerator and denominator."""

    mean_num: float
    mean_den: float
    var_num: float
    var_den: float
    cov: float

    @property
    def ratio(self) -> float:
        return self.mean_num / self.mean_den if self.mean_den != 0.0 else 0.0

    @property
    def unit_variance(self) -> float:
        r = self.ratio
        return (
            (self.var_num - 2.0 * r * self.cov + r * r * self.var_den)
            / self.mean_den
            / self.mean_den
        )

    @classmethod
    def from_stats(cls, stats: RatioStats) -> RatioBaseline:
        """Baseline from historical sufficient statistics (zero variances below two units)."""
        k = stats.n_units
        if k < 2:
            mean_num, mean_den = (stats.sum_num / k, stats.sum_den / k) if k == 1 else (0.0, 0.0)
            return cls(mean_num, mean_den, 0.0, 0.0, 0.0)
        return cls(
            mean_num=stats.sum_num / k,
            mean_den=stats.sum_den / k,
            var_num=(stats.sum_num_sq - stats.sum_num * (stats.sum_num / k)) / (k - 1),
            var_den=(stats.sum_den_sq - stats.sum_den * (stats.sum_den / k)) / (k - 1),
            cov=(stats.sum_num_den - stats.sum_num * stats.sum_den / k) / (k - 1),
        )


Baseline = MeanBaseline | ProportionBaseline | RatioBaseline

MAX_UNITS = 10**12
"""Largest sample size (per arm and in total) the calculator answers: far beyond any
experiment, far inside int64."""
SMALL_SAMPLE_UNITS = 30
"""Per-arm sizes below this are flagged ``SMALL_SAMPLE``."""
_MIN_MDE = 1e-15


@dataclass(frozen=True)
class SampleSizeResult:
    per_arm: int | None
    """Units per arm (equal allocation)."""
    total: int | None
    """Units over all ``n_arms`` arms."""
    n_arms: int
    absolute_mde: float
    fixed_per_arm: int | None
    """Per-arm size of the fixed-horizon design."""
    sequential_inflation: float | None
    """``per_arm / fixed_per_arm`` for a sequential design, else ``None``."""
    reason: Reason | None = None
    """Why ``per_arm`` and ``total`` (and maybe ``fixed_per_arm``) are ``None``."""
    warnings: tuple[Reason, ...] = ()
    """``SMALL_SAMPLE`` when ``per_arm`` is below :data:`SMALL_SAMPLE_UNITS`."""


@dataclass(frozen=True)
class MdeResult:
    absolute: float | None
    relative: float | None
    """``absolute / baseline`` (``None`` when the baseline is zero)."""
    reason: Reason | None = None
    """Why a figure is ``None`` (``CONTROL_MEAN_ZERO`` when only ``relative`` is)."""


@dataclass(frozen=True)
class DurationResult:
    days: int | None
    reason: Reason | None = None


def _baseline_value(baseline: Baseline) -> float:
    if isinstance(baseline, MeanBaseline):
        return baseline.mean
    if isinstance(baseline, ProportionBaseline):
        return baseline.rate
    return baseline.ratio


def _variances(baseline: Baseline, delta: float) -> tuple[float, float]:
    """``(V0, V1)``: per-unit variance of the difference under null and alternative."""
    if isinstance(baseline, ProportionBaseline):
        p1 = baseline.rate
        p2 = p1 + delta
        pbar = (p1 + p2) / 2.0
        return 2.0 * pbar * (1.0 - pbar), p1 * (1.0 - p1) + p2 * (1.0 - p2)
    v = 2.0 * (
        baseline.std_dev * baseline.std_dev
        if isinstance(baseline, MeanBaseline)
        else baseline.unit_variance
    )
    return v, v


def _z_alpha(alpha: float, sides: Sides) -> float:
    return normal_quantile(1.0 - (alpha / 2.0 if sides is Sides.TWO_SIDED else alpha))


def _sequential_z(n_per_arm: float, alpha: float, design: SequentialDesign, sides: Sides) -> float:
    one_sided = sides is not Sides.TWO_SIDED
    rho = mixture_rho(alpha, design.tuning_sample_size, one_sided=one_sided)
    return mixture_boundary(alpha, 2.0 * n_per_arm, rho, one_sided=one_sided)


def achieved_power(
    baseline: Baseline,
    delta: float,
    n_per_arm: float,
    *,
    alpha: float = 0.05,
    sides: Sides = Sides.TWO_SIDED,
) -> float:
    """Fixed-horizon power at ``n_per_arm`` for an absolute effect ``delta`` (both tails)."""
    v0, v1 = _variances(baseline, delta)
    se0, se1 = math.sqrt(v0 / n_per_arm), math.sqrt(v1 / n_per_arm)
    z = _z_alpha(alpha, sides)
    if sides is Sides.GREATER:
        return normal_cdf((delta - z * se0) / se1)
    if sides is Sides.LESS:
        return normal_cdf((-delta - z * se0) / se1)
    return normal_cdf((delta - z * se0) / se1) + normal_cdf((-delta - z * se0) / se1)


def _levels_invalid(alpha: float, power: float) -> bool:
    return not (0.0 < alpha < 1.0 and 0.0 < power < 1.0 and power > alpha)


def _invalid(baseline: Baseline, delta: float, alpha: float, power: float) -> Reason | None:
    if isinstance(baseline, RatioBaseline) and baseline.mean_den == 0.0:
        return Reason.ZERO_DENOMINATOR
    if _levels_invalid(alpha, power) or not math.isfinite(delta) or delta == 0.0:
        return Reason.INVALID_INPUT
    if isinstance(baseline, ProportionBaseline) and not (
        0.0 < baseline.rate < 1.0 and 0.0 < baseline.rate + delta < 1.0
    ):
        return Reason.INVALID_INPUT
    v0, v1 = _variances(baseline, delta)
    if not (math.isfinite(v0) and math.isfinite(v1)):
        return Reason.OUT_OF_RANGE
    if not (v0 > 0.0 and v1 > 0.0):
        return Reason.ZERO_VARIANCE
    return None


def sample_size(
    baseline: Baseline,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    sides: Sides = Sides.TWO_SIDED,
    n_arms: int = 2,
    sequential: SequentialDesign | None = None,
) -> SampleSizeResult:
    """Units per arm and in total to detect ``mde`` (absolute, or relative to the baseline)."""
    delta = mde * _baseline_value(baseline) if relative else mde
    reason = _invalid(baseline, delta, alpha, power)
    if reason is None and n_arms < 2:
        reason = Reason.INVALID_INPUT
    if reason is not None:
        return SampleSizeResult(None, None, n_arms, delta, None, None, reason)
    v0, v1 = _variances(baseline, delta)
    z_b = normal_quantile(power)
    size = abs(delta)
    root = (_z_alpha(alpha, sides) * math.sqrt(v0) + z_b * math.sqrt(v1)) / size
    fixed = root * root  # a product, not **: float ** raises on overflow
    if not fixed <= MAX_UNITS:
        return SampleSizeResult(None, None, n_arms, delta, None, None, Reason.OUT_OF_RANGE)
    fixed_n = max(1, math.ceil(fixed - 1e-9))
    per_arm, inflation = fixed_n, None
    if sequential is not None:

        def gap(n: float) -> float:
            return size * math.sqrt(n / v1) - _sequential_z(n, alpha, sequential, sides) - z_b

        upper = max(fixed, 1.0)
        while gap(upper) < 0.0 and upper <= MAX_UNITS:
            upper *= 2.0
        if upper > MAX_UNITS:
            return SampleSizeResult(None, None, n_arms, delta, fixed_n, None, Reason.OUT_OF_RANGE)
        lower = max(fixed / 2.0, 0.5)
        found = lower if gap(lower) >= 0.0 else optimize.brentq(gap, lower, upper, xtol=1e-6)
        # Never fewer than the fixed design: for proportions the fixed formula uses the
        # pooled null variance, the sequence the unpooled one, and a large effect can
        # otherwise make the sequential design look smaller than the fixed one.
        per_arm = max(fixed_n, math.ceil(found - 1e-9))
        inflation = per_arm / fixed_n
    total = per_arm * n_arms
    if total > MAX_UNITS:
        return SampleSizeResult(None, None, n_arms, delta, fixed_n, None, Reason.OUT_OF_RANGE)
    warnings = (Reason.SMALL_SAMPLE,) if per_arm < SMALL_SAMPLE_UNITS else ()
    return SampleSizeResult(per_arm, total, n_arms, delta, fixed_n, inflation, None, warnings)


def mde(
    baseline: Baseline,
    n_per_arm: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    sides: Sides = Sides.TWO_SIDED,
    sequential: SequentialDesign | None = None,
) -> MdeResult:
    """Smallest positive absolute (and relative) effect detectable with ``n_per_arm``."""
    if not 0 < n_per_arm <= MAX_UNITS or _levels_invalid(alpha, power):
        return MdeResult(None, None, Reason.INVALID_INPUT)
    if isinstance(baseline, RatioBaseline) and baseline.mean_den == 0.0:
        return MdeResult(None, None, Reason.ZERO_DENOMINATOR)
    z_a = (
        _sequential_z(n_per_arm, alpha, sequential, sides)
        if sequential is not None
        else _z_alpha(alpha, sides)
    )
    z_b = normal_quantile(power)

    def gap(delta: float) -> float:
        v0, v1 = _variances(baseline, delta)
        if sequential is not None:
            v0 = v1
        return delta * math.sqrt(n_per_arm) - z_a * math.sqrt(v0) - z_b * math.sqrt(v1)

    if isinstance(baseline, ProportionBaseline):
        hi = 1.0 - baseline.rate - 1e-12
        if not 0.0 < baseline.rate < 1.0 or gap(hi) < 0.0:
            return MdeResult(None, None, Reason.INSUFFICIENT_DATA)
        if gap(_MIN_MDE) >= 0.0:
            return MdeResult(None, None, Reason.OUT_OF_RANGE)
        delta = float(optimize.brentq(gap, _MIN_MDE, hi, xtol=1e-14))
    else:
        v = _variances(baseline, 0.0)[1]
        if not math.isfinite(v):
            return MdeResult(None, None, Reason.OUT_OF_RANGE)
        if not v > 0.0:
            return MdeResult(None, None, Reason.ZERO_VARIANCE)
        delta = (z_a + z_b) * math.sqrt(v / n_per_arm)
        if not _MIN_MDE <= delta < math.inf:
            return MdeResult(None, None, Reason.OUT_OF_RANGE)
    base = _baseline_value(baseline)
    if base == 0.0:
        return MdeResult(delta, None, Reason.CONTROL_MEAN_ZERO)
    relative = delta / base
    if not math.isfinite(relative):
        return MdeResult(delta, None, Reason.OUT_OF_RANGE)
    return MdeResult(delta, relative)


def expected_duration(
    total_units: int, daily_units: float, *, traffic_fraction: float = 1.0
) -> DurationResult:
    """Days to enrol ``total_units`` when ``daily_units`` new units arrive per day.

    Assumes new eligible units arrive at a steady rate; returning users count once,
    so use the daily number of *new* units.
    """
    rate = daily_units * traffic_fraction
    if total_units < 0 or not rate > 0.0 or not 0.0 < traffic_fraction <= 1.0:
        return DurationResult(None, Reason.INVALID_INPUT)
    return DurationResult(math.ceil(total_units / rate - 1e-9))
