"""CalculateSampleSize: the engine's figures, defaults, and INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import pytest

from verdict.v1 import analysis_pb2
from verdict_analysis import stats
from verdict_analysis.sizing import calculate
from verdict_platform.errors import InvalidArgument

_A = analysis_pb2


def test_proportion_sample_size_matches_the_engine_and_duration() -> None:
    reply = calculate(
        _A.CalculateSampleSizeRequest(
            metric_type=_A.SAMPLE_SIZE_METRIC_TYPE_PROPORTION,
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
        _A.CalculateSampleSizeRequest(
            metric_type=_A.SAMPLE_SIZE_METRIC_TYPE_MEAN,
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
        _A.CalculateSampleSizeRequest(
            metric_type=_A.SAMPLE_SIZE_METRIC_TYPE_MEAN,
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
        (_A.CalculateSampleSizeRequest(), "metric_type"),
        (
            _A.CalculateSampleSizeRequest(
                metric_type=_A.SAMPLE_SIZE_METRIC_TYPE_PROPORTION, baseline_mean=1.5
            ),
            "baseline_mean",
        ),
        (
            _A.CalculateSampleSizeRequest(
                metric_type=_A.SAMPLE_SIZE_METRIC_TYPE_MEAN, baseline_mean=1
            ),
            "standard_deviation",
        ),
        (
            _A.CalculateSampleSizeRequest(
                metric_type=_A.SAMPLE_SIZE_METRIC_TYPE_PROPORTION,
                baseline_mean=0.1,
                minimum_detectable_effect=0.1,
                alpha=0.7,
            ),
            "alpha",
        ),
        (
            _A.CalculateSampleSizeRequest(
                metric_type=_A.SAMPLE_SIZE_METRIC_TYPE_PROPORTION, baseline_mean=0.1
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
