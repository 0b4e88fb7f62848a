"""CalculateSampleSize: the request checked field by field, then the engine's power functions.

Every field out of range is an INVALID_ARGUMENT naming it, whatever the other fields say;
so is a question whose answer leaves its natural range: more than ``stats.MAX_UNITS``
(1e12) units per variant or in total (far inside int64), a duration that is not a finite
number of days. Magnitudes (baseline, standard deviation, MDE) are limited to
``MAX_MAGNITUDE`` (1e100), so that no square of them overflows. The figures answered are
finite, except ``minimum_detectable_effect`` when it cannot be expressed relative to the
baseline (an absolute MDE over a zero baseline): NaN, as elsewhere in the contract for a
figure that does not exist.
"""

from __future__ import annotations

import math

from verdict.v1 import analysis_pb2
from verdict_analysis import stats
from verdict_analysis.plan_mapping import DEFAULT_TUNING_N, SIDES
from verdict_analysis.stats.power import Baseline
from verdict_platform.errors import InvalidArgument

DEFAULT_POWER = 0.8
MAX_ALPHA = 0.5
MAX_MAGNITUDE = 1e100
_MAX = stats.MAX_UNITS
_KINDS = {
    analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION,
    analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_MEAN,
    analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_RATIO,
}


def _finite(value: float, field: str) -> float:
    if not abs(value) <= MAX_MAGNITUDE:  # also refuses NaN and infinities
        raise InvalidArgument.of(field, f"must be a number of magnitude at most {MAX_MAGNITUDE:g}")
    return value


def _baseline(request: analysis_pb2.CalculateSampleSizeRequest) -> Baseline:
    if request.metric_type not in _KINDS:
        raise InvalidArgument.of("metric_type", "must be PROPORTION, MEAN or RATIO")
    mean = _finite(request.baseline_mean, "baseline_mean")
    sd = _finite(request.standard_deviation, "standard_deviation")
    if sd < 0.0:
        raise InvalidArgument.of("standard_deviation", "must not be negative")
    if request.metric_type == analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION:
        if not 0.0 < mean < 1.0:
            raise InvalidArgument.of("baseline_mean", "a rate must be in (0, 1)")
        return stats.ProportionBaseline(mean)
    if not sd > 0.0:
        raise InvalidArgument.of("standard_deviation", "must be positive for means and ratios")
    return stats.MeanBaseline(mean, sd)


def _level(value: float, default: float, field: str, upper: float) -> float:
    if value == 0.0:
        return default
    if not 0.0 < value < upper:
        raise InvalidArgument.of(field, f"must be in (0, {upper:g}); 0 means {default:g}")
    return value


def _check_counts(request: analysis_pb2.CalculateSampleSizeRequest) -> None:
    if request.variants < 0 or request.variants == 1:
        raise InvalidArgument.of("variants", "must be at least 2 (0 means 2)")
    if not 0 <= request.sequential_tuning_n <= _MAX:
        raise InvalidArgument.of("sequential_tuning_n", f"must be in [0, {_MAX:.0e}]; 0: 5,000")
    if not 0 <= request.units_per_variant <= _MAX:
        raise InvalidArgument.of("units_per_variant", f"must be in [0, {_MAX:.0e}]")
    if not (math.isfinite(request.daily_units) and request.daily_units >= 0.0):
        raise InvalidArgument.of("daily_units", "must be a finite, non-negative number")
    if request.sides not in SIDES:
        raise InvalidArgument.of("sides", "must be SIDES_TWO_SIDED, SIDES_GREATER or SIDES_LESS")


def calculate(
    request: analysis_pb2.CalculateSampleSizeRequest,
) -> analysis_pb2.CalculateSampleSizeResponse:
    """Sample size (or MDE for a given sample) and expected duration."""
    baseline = _baseline(request)
    alpha = _level(request.alpha, 0.05, "alpha", MAX_ALPHA + 1e-12)
    power = _level(request.power, DEFAULT_POWER, "power", 1.0)
    if power <= alpha:
        raise InvalidArgument.of("power", f"must exceed alpha ({alpha:g})")
    _check_counts(request)
    arms = request.variants or 2
    coverage = request.coverage or 1.0
    if not 0.0 < coverage <= 1.0:
        raise InvalidArgument.of("coverage", "must be in (0, 1] (0 means 1)")
    mde = _finite(request.minimum_detectable_effect, "minimum_detectable_effect")
    if mde < 0.0:
        raise InvalidArgument.of("minimum_detectable_effect", "must be positive (0: MDE mode)")
    sides = SIDES[request.sides]
    sequential = (
        stats.SequentialDesign(request.sequential_tuning_n or DEFAULT_TUNING_N)
        if request.sequential
        else None
    )
    if mde == 0.0:
        return _mde_mode(request, baseline, alpha, power, sides, sequential, arms, coverage)
    relative = not request.mde_is_absolute
    _check_effect(request, relative)
    result = stats.sample_size(
        baseline, mde, relative=relative, alpha=alpha, power=power, sides=sides,
        n_arms=arms, sequential=sequential,
    )  # fmt: skip
    if result.per_arm is None or result.total is None:
        raise _no_size(result, request, baseline, mde, relative, alpha, power, sides, sequential)
    base = request.baseline_mean
    relative_mde = mde if relative else mde / base if base != 0.0 else math.nan
    return analysis_pb2.CalculateSampleSizeResponse(
        units_per_variant=result.per_arm,
        total_units=result.total,
        sequential_inflation=result.sequential_inflation or 1.0,
        expected_days=_days(result.total, request.daily_units, coverage),
        minimum_detectable_effect=relative_mde if math.isfinite(relative_mde) else math.nan,
    )


def _check_effect(request: analysis_pb2.CalculateSampleSizeRequest, relative: bool) -> None:
    base, mde = request.baseline_mean, request.minimum_detectable_effect
    if relative and base == 0.0:
        raise InvalidArgument.of("baseline_mean", "a relative MDE needs a non-zero baseline")
    if request.metric_type == analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION:
        treated = base * (1.0 + mde) if relative else base + mde
        if not treated < 1.0:
            raise InvalidArgument.of(
                "minimum_detectable_effect", "the baseline rate moved by it must stay below 1"
            )


def _no_size(
    result: stats.SampleSizeResult,
    request: analysis_pb2.CalculateSampleSizeRequest,
    baseline: Baseline,
    mde: float,
    relative: bool,
    alpha: float,
    power: float,
    sides: stats.Sides,
    sequential: stats.SequentialDesign | None,
) -> InvalidArgument:
    """Which field to blame for a size the engine could not give."""
    if result.reason is stats.Reason.OUT_OF_RANGE:
        two_arms = stats.sample_size(
            baseline, mde, relative=relative, alpha=alpha, power=power, sides=sides,
            sequential=sequential,
        )  # fmt: skip
        if two_arms.total is not None and request.variants > 2:
            return InvalidArgument.of(
                "variants", f"this many variants need more than {_MAX:.0e} units in total"
            )
        return InvalidArgument.of(
            "minimum_detectable_effect",
            f"too small for this baseline: it needs more than {_MAX:.0e} units",
        )
    return InvalidArgument.of(
        "minimum_detectable_effect",
        f"no sample size for this effect and baseline ({result.reason})",
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
    if n * arms > _MAX:
        raise InvalidArgument.of("variants", f"units_per_variant x variants exceeds {_MAX:.0e}")
    if request.baseline_mean == 0.0:
        raise InvalidArgument.of("baseline_mean", "the MDE is relative to it: must not be 0")
    result = stats.mde(baseline, n, alpha=alpha, power=power, sides=sides, sequential=sequential)
    if result.relative is None:
        field = "baseline_mean" if result.absolute is not None else "units_per_variant"
        raise InvalidArgument.of(field, f"no detectable effect at this sample ({result.reason})")
    return analysis_pb2.CalculateSampleSizeResponse(
        units_per_variant=n,
        total_units=n * arms,
        sequential_inflation=1.0,
        expected_days=_days(n * arms, request.daily_units, coverage),
        minimum_detectable_effect=result.relative,
    )


def _days(total: int, daily_units: float, coverage: float) -> float:
    if daily_units <= 0.0:
        return 0.0
    rate = daily_units * coverage
    days = total / rate if rate > 0.0 else math.inf
    if not math.isfinite(days):
        raise InvalidArgument.of("daily_units", "too small for a finite number of days")
    return days
