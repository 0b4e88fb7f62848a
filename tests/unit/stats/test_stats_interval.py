"""Interval: what "excludes" means, and the rounding-only agreement of a p-value with it."""

from __future__ import annotations

import math

from verdict_analysis.stats import Interval
from verdict_analysis.stats.interval import ROUNDING, agreeing_p_value


def test_a_bound_on_the_null_excludes_it() -> None:
    assert Interval(0.0, 1.0).excludes(0.0) and Interval(-1.0, 0.0).excludes(0.0)
    assert not Interval(-1e-300, 1.0).excludes(0.0)
    assert Interval(0.02, math.inf).excludes(0.0) and not Interval(-math.inf, 0.3).excludes(0.0)
    assert Interval(-0.05, -0.01).excludes(-0.01) and not Interval(-0.05, -0.01).excludes(-0.02)


def test_within_ignores_open_sides() -> None:
    assert Interval(-math.inf, 0.5).within(-1.0, 1.0)
    assert not Interval(-1.2, 0.5).within(-1.0, 1.0)


def test_p_value_is_nudged_only_when_it_is_rounding_away_from_its_interval() -> None:
    alpha = 0.05
    # The null sits on the bound; the p-value came out one ulp on the wrong side.
    assert agreeing_p_value(math.nextafter(alpha, 1.0), Interval(0.0, 0.3), alpha) == alpha
    above = agreeing_p_value(alpha, Interval(-1e-17, 0.3), alpha)
    assert above > alpha and above - alpha < 1e-15
    # A real disagreement is left visible for the tests to find.
    assert agreeing_p_value(0.2, Interval(0.01, 0.3), alpha) == 0.2
    assert agreeing_p_value(alpha * (1 + 10 * ROUNDING), Interval(0.0, 0.3), alpha) > alpha
    # Agreeing pairs are untouched.
    assert agreeing_p_value(0.01, Interval(0.01, 0.3), alpha) == 0.01
