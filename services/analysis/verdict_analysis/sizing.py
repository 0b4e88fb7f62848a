"""CalculateSampleSize: the request checked field by field, then the engine's power functions."""

from __future__ import annotations

import math

from verdict.v1 import analysis_pb2
from verdict_analysis import stats
from verdict_analysis.plan_mapping import DEFAULT_TUNING_N, SIDES
from verdict_analysis.stats.power import Baseline
from verdict_platform.errors import InvalidArgument

_A = analysis_pb2
DEFAULT_POWER = 0.8


def _baseline(request: analysis_pb2.CalculateSampleSizeRequest) -> Baseline:
    kind = request.metric_type
    if kind == _A.SAMPLE_SIZE_METRIC_TYPE_UNSPECIFIED:
        raise InvalidArgument.of("metric_type", "must be PROPORTION, MEAN or RATIO")
    if not math.isfinite(request.baseline_mean):
        raise InvalidArgument.of("baseline_mean", "must be finite")
    if kind == _A.SAMPLE_SIZE_METRIC_TYPE_PROPORTION:
        if not 0.0 < request.baseline_mean < 1.0:
            raise InvalidArgument.of("baseline_mean", "a rate must be in (0, 1)")
        return stats.ProportionBaseline(request.baseline_mean)
    if not (request.standard_deviation > 0.0 and math.isfinite(request.standard_deviation)):
        raise InvalidArgument.of("standard_deviation", "must be positive for means and ratios")
    return stats.MeanBaseline(request.baseline_mean, request.standard_deviation)


def _level(value: float, default: float, field: str, upper: float) -> float:
    if value == 0.0:
        return default
    if not 0.0 < value < upper:
        raise InvalidArgument.of(field, f"must be in (0, {upper:g}); 0 means {default:g}")
    return value


def calculate(
    request: analysis_pb2.CalculateSampleSizeRequest,
) -> analysis_pb2.CalculateSampleSizeResponse:
    """Sample size (or MDE for a given sample) and expected duration."""
    baseline = _baseline(request)
    alpha = _level(request.alpha, 0.05, "alpha", 0.5 + 1e-12)
    power = _level(request.power, DEFAULT_POWER, "power", 1.0)
    arms = request.variants or 2
    if arms < 2:
        raise InvalidArgument.of("variants", "must be at least 2 (0 means 2)")
    coverage = request.coverage or 1.0
    if not 0.0 < coverage <= 1.0:
        raise InvalidArgument.of("coverage", "must be in (0, 1] (0 means 1)")
    if request.daily_units < 0.0 or not math.isfinite(request.daily_units):
        raise InvalidArgument.of("daily_units", "must be a non-negative number")
    if request.sequential_tuning_n < 0:
        raise InvalidArgument.of("sequential_tuning_n", "must not be negative")
    sides = SIDES.get(request.sides, stats.Sides.TWO_SIDED)
    sequential = (
        stats.SequentialDesign(request.sequential_tuning_n or DEFAULT_TUNING_N)
        if request.sequential
        else None
    )
    mde = request.minimum_detectable_effect
    if mde == 0.0:
        return _mde_mode(request, baseline, alpha, power, sides, sequential, arms, coverage)
    if not math.isfinite(mde) or mde < 0.0:
        raise InvalidArgument.of("minimum_detectable_effect", "must be positive")
    relative = not request.mde_is_absolute
    result = stats.sample_size(
        baseline,
        mde,
        relative=relative,
        alpha=alpha,
        power=power,
        sides=sides,
        n_arms=arms,
        sequential=sequential,
    )
    if result.per_arm is None or result.total is None:
        raise InvalidArgument.of(
            "minimum_detectable_effect",
            f"no sample size for this effect and baseline ({result.reason})",
        )
    base = request.baseline_mean
    relative_mde = mde if relative else (mde / base if base != 0.0 else math.nan)
    return _A.CalculateSampleSizeResponse(
        units_per_variant=result.per_arm,
        total_units=result.total,
        sequential_inflation=result.sequential_inflation or 1.0,
        expected_days=_days(result.total, request.daily_units, coverage),
        minimum_detectable_effect=relative_mde,
    )


def _mde_mode(
    request: analysis_pb2.CalculateSampleSizeRequest,
    baseline: Baseline,
    alpha: float,
    power: float,
    sides: stats.Sides,
    sequential: stats.SequentialDesign | None,
    arms: int,
    coverage: float,
) -> analysis_pb2.CalculateSampleSizeResponse:
    n = request.units_per_variant
    if n <= 0:
        raise InvalidArgument.of(
            "units_per_variant", "set it (MDE mode) or set minimum_detectable_effect"
        )
    result = stats.mde(baseline, n, alpha=alpha, power=power, sides=sides, sequential=sequential)
    if result.relative is None:
        raise InvalidArgument.of(
            "units_per_variant", f"no detectable effect at this sample ({result.reason})"
        )
    return _A.CalculateSampleSizeResponse(
        units_per_variant=n,
        total_units=n * arms,
        sequential_inflation=1.0,
        expected_days=_days(n * arms, request.daily_units, coverage),
        minimum_detectable_effect=result.relative,
    )


def _days(total: int, daily_units: float, coverage: float) -> float:
    if daily_units <= 0.0:
        return 0.0
    return total / (daily_units * coverage)
