"""CalculateSampleSize: the engine's figures, defaults, and INVALID_ARGUMENT naming the field.

Issue 11.7: any request, including non-finite, huge and tiny numbers and unknown enum
values, is either answered with in-range figures or refused naming a field; never another
error (an MDE of 1e-12 used to overflow int64 and answer INTERNAL).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from verdict.v1 import analysis_pb2, common_pb2
from verdict_analysis import stats
from verdict_analysis.sizing import calculate
from verdict_platform.errors import InvalidArgument


def test_proportion_sample_size_matches_the_engine_and_duration() -> None:
    reply = calculate(
        analysis_pb2.CalculateSampleSizeRequest(
            metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION,
            baseline_mean=0.1,
            minimum_detectable_effect=0.1,
            daily_units=1_000,
            coverage=0.5,
        )
    )
    expected = stats.sample_size(stats.ProportionBaseline(0.1), 0.1, relative=True)
    assert reply.units_per_variant == expected.per_arm
    assert reply.total_units == expected.total
    assert reply.sequential_inflation == 1.0
    assert reply.expected_days == pytest.approx(expected.total / 500)  # type: ignore[operator]
    assert reply.minimum_detectable_effect == pytest.approx(0.1)


def test_sequential_design_reports_inflation() -> None:
    reply = calculate(
        analysis_pb2.CalculateSampleSizeRequest(
            metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_MEAN,
            baseline_mean=10,
            standard_deviation=5,
            minimum_detectable_effect=0.5,
            mde_is_absolute=True,
            sequential=True,
        )
    )
    assert reply.sequential_inflation > 1.0
    assert reply.minimum_detectable_effect == pytest.approx(0.05)


def test_mde_mode() -> None:
    reply = calculate(
        analysis_pb2.CalculateSampleSizeRequest(
            metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_MEAN,
            baseline_mean=10,
            standard_deviation=5,
            units_per_variant=10_000,
        )
    )
    expected = stats.mde(stats.MeanBaseline(10, 5), 10_000)
    assert reply.minimum_detectable_effect == pytest.approx(expected.relative)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (analysis_pb2.CalculateSampleSizeRequest(), "metric_type"),
        (
            analysis_pb2.CalculateSampleSizeRequest(
                metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION, baseline_mean=1.5
            ),
            "baseline_mean",
        ),
        (
            analysis_pb2.CalculateSampleSizeRequest(
                metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_MEAN, baseline_mean=1
            ),
            "standard_deviation",
        ),
        (
            analysis_pb2.CalculateSampleSizeRequest(
                metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION,
                baseline_mean=0.1,
                minimum_detectable_effect=0.1,
                alpha=0.7,
            ),
            "alpha",
        ),
        (
            analysis_pb2.CalculateSampleSizeRequest(
                metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION, baseline_mean=0.1
            ),
            "units_per_variant",
        ),
    ],
)
def test_invalid_requests_name_the_field(
    request_: analysis_pb2.CalculateSampleSizeRequest, field: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        calculate(request_)
    assert error.value.violations[0].field == field


def _mean(**fields: object) -> analysis_pb2.CalculateSampleSizeRequest:
    base: dict[str, object] = {
        "metric_type": analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_MEAN, "baseline_mean": 10.0,
        "standard_deviation": 5.0, "minimum_detectable_effect": 0.05,
    }  # fmt: skip
    return analysis_pb2.CalculateSampleSizeRequest(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # Issue 11.7: an MDE of 1e-12 answered INTERNAL (int64 overflow).
        ({"minimum_detectable_effect": 1e-12}, "minimum_detectable_effect"),
        ({"minimum_detectable_effect": 1e-12, "sequential": True}, "minimum_detectable_effect"),
        ({"minimum_detectable_effect": math.inf}, "minimum_detectable_effect"),
        ({"minimum_detectable_effect": math.nan}, "minimum_detectable_effect"),
        ({"minimum_detectable_effect": -0.1}, "minimum_detectable_effect"),
        ({"standard_deviation": 1e300}, "standard_deviation"),
        ({"standard_deviation": -1.0}, "standard_deviation"),
        ({"baseline_mean": math.nan}, "baseline_mean"),
        ({"baseline_mean": 0.0}, "baseline_mean"),  # a relative MDE of a zero baseline
        ({"alpha": math.nan}, "alpha"),
        ({"power": 0.01, "alpha": 0.05}, "power"),
        ({"power": 1.0}, "power"),
        ({"variants": 1}, "variants"),
        ({"variants": -3}, "variants"),
        ({"variants": 2**31 - 1, "minimum_detectable_effect": 0.001}, "variants"),
        ({"sides": 7}, "sides"),
        ({"metric_type": 9}, "metric_type"),
        ({"coverage": 1.5}, "coverage"),
        ({"coverage": math.nan}, "coverage"),
        ({"daily_units": math.inf}, "daily_units"),
        ({"daily_units": 5e-324}, "daily_units"),
        ({"sequential_tuning_n": -1}, "sequential_tuning_n"),
        ({"sequential_tuning_n": 2**63 - 1}, "sequential_tuning_n"),
        ({"units_per_variant": -5}, "units_per_variant"),
        ({"minimum_detectable_effect": 0.0, "units_per_variant": 2**62}, "units_per_variant"),
        ({"minimum_detectable_effect": 0.0, "units_per_variant": 10**11, "variants": 50},
         "variants"),
    ],
)  # fmt: skip
def test_out_of_range_fields_are_named(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        calculate(_mean(**fields))
    assert error.value.violations[0].field == field


def test_a_proportion_pushed_past_one_names_the_effect() -> None:
    request = analysis_pb2.CalculateSampleSizeRequest(
        metric_type=analysis_pb2.SAMPLE_SIZE_METRIC_TYPE_PROPORTION, baseline_mean=0.6,
        minimum_detectable_effect=0.8,
    )  # fmt: skip
    with pytest.raises(InvalidArgument) as error:
        calculate(request)
    assert error.value.violations[0].field == "minimum_detectable_effect"


def test_absolute_mde_over_a_zero_baseline_answers_the_size_and_no_relative_mde() -> None:
    reply = calculate(_mean(baseline_mean=0.0, minimum_detectable_effect=0.5, mde_is_absolute=True))
    assert reply.units_per_variant == stats.sample_size(stats.MeanBaseline(0.0, 5.0), 0.5).per_arm
    assert math.isnan(reply.minimum_detectable_effect)


def test_one_sided_sequential_design_is_smaller_than_the_two_sided_one() -> None:
    two = calculate(_mean(sequential=True))
    one = calculate(_mean(sequential=True, sides=common_pb2.SIDES_GREATER))
    assert one.units_per_variant < two.units_per_variant


_SPECIAL = [0.0, -0.0, 1e-12, 1e-300, 5e-324, 0.5, 0.05, 0.999, 1.0, 2.0, 10.0, 1e15, 1e300,
            -1.0, math.inf, -math.inf, math.nan]  # fmt: skip
wild_doubles = st.one_of(st.sampled_from(_SPECIAL), st.floats())
wild_int64s = st.one_of(st.sampled_from([-1, 2**62, 2**63 - 1]), st.integers(-(2**63), 2**63 - 1))


def _mostly(
    valid: st.SearchStrategy[object], wild: st.SearchStrategy[object]
) -> st.SearchStrategy[object]:
    """Valid seven times in eight, so that many requests reach the engine."""
    return st.integers(0, 7).flatmap(lambda i: wild if i == 0 else valid)


requests = st.builds(
    analysis_pb2.CalculateSampleSizeRequest,
    metric_type=_mostly(st.integers(1, 3), st.integers(-3, 9)),
    baseline_mean=_mostly(st.one_of(st.floats(1e-4, 0.9999), st.floats(-1e6, 1e6)), wild_doubles),
    standard_deviation=_mostly(st.floats(1e-6, 1e6), wild_doubles),
    minimum_detectable_effect=_mostly(
        st.one_of(st.just(0.0), st.floats(1e-15, 10.0), st.floats(1e-4, 0.5)), wild_doubles
    ),
    mde_is_absolute=st.booleans(),
    alpha=_mostly(st.one_of(st.just(0.0), st.floats(1e-6, 0.5)), wild_doubles),
    power=_mostly(st.one_of(st.just(0.0), st.floats(1e-3, 0.9999)), wild_doubles),
    sides=_mostly(st.integers(0, 3), st.integers(-3, 9)),
    variants=_mostly(st.integers(0, 12), st.integers(-(2**31), 2**31 - 1)),
    sequential=st.booleans(),
    sequential_tuning_n=_mostly(st.integers(0, 10**9), wild_int64s),
    daily_units=_mostly(st.one_of(st.just(0.0), st.floats(0.0, 1e9)), wild_doubles),
    coverage=_mostly(st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), wild_doubles),
    units_per_variant=_mostly(st.integers(0, 10**12), wild_int64s),
)
_FIELDS = {f.name for f in analysis_pb2.CalculateSampleSizeRequest.DESCRIPTOR.fields}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_any_request_is_answered_in_range_or_refused_naming_a_field(
    request: analysis_pb2.CalculateSampleSizeRequest,
) -> None:
    try:
        reply = calculate(request)
    except InvalidArgument as error:
        assert all(v.field in _FIELDS and v.description for v in error.violations)
        event(f"refused: {error.violations[0].field}")
        return
    event("answered")
    assert 1 <= reply.units_per_variant <= reply.total_units <= stats.MAX_UNITS
    assert math.isfinite(reply.sequential_inflation) and reply.sequential_inflation >= 1.0
    assert math.isfinite(reply.expected_days) and reply.expected_days >= 0.0
    mde = reply.minimum_detectable_effect
    if math.isnan(mde):  # only where no relative MDE exists: an absolute MDE, size mode
        assert request.mde_is_absolute and request.minimum_detectable_effect > 0.0
        base = request.baseline_mean
        assert base == 0.0 or not math.isfinite(request.minimum_detectable_effect / base)
    else:
        assert math.isfinite(mde) and mde != 0.0
    reply.SerializeToString()  # every figure fits its proto type
