"""Bucket ranges beyond the spec vectors: invariants over many inputs."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verdict.evaluation import choose_variation, get_bucket_ranges, get_equal_weights, in_namespace

weights_strategy = st.lists(st.integers(1, 100), min_size=1, max_size=6).map(
    lambda raw: [w / sum(raw) for w in raw]
)


@given(weights_strategy, st.floats(0, 1), st.floats(0, 1))
def test_eval_raising_coverage_never_moves_a_unit(
    weights: list[float], low: float, high: float
) -> None:
    low, high = min(low, high), max(low, high)
    small = get_bucket_ranges(len(weights), low, weights)
    large = get_bucket_ranges(len(weights), high, weights)
    assert [s for s, _ in small] == [s for s, _ in large]
    for n in [i / 997 for i in range(997)]:
        before = choose_variation(n, small)
        if before != -1:
            assert choose_variation(n, large) == before


@given(weights_strategy)
def test_eval_full_coverage_ranges_tile_the_unit_interval(weights: list[float]) -> None:
    ranges = get_bucket_ranges(len(weights), 1.0, weights)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == pytest.approx(1)
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == pytest.approx(start)


def test_eval_missing_or_invalid_weights_fall_back_to_equal() -> None:
    equal = get_bucket_ranges(3, 1.0)
    assert get_bucket_ranges(3, 1.0, [0.5, 0.5]) == equal
    assert get_bucket_ranges(3, 1.0, [0.5, 0.5, 0.5]) == equal
    assert get_bucket_ranges(3, 1.0, [0.0, 0.0, 0.0]) == equal  # weights left unset
    assert get_bucket_ranges(2, 0.5, [0.0, 0.0]) == [(0.0, 0.25), (0.5, 0.75)]
    assert get_bucket_ranges(3, float("nan"), None) == get_bucket_ranges(3, 0.0)
    assert get_equal_weights(3) == [1 / 3] * 3


def test_eval_choose_variation_treats_ranges_as_half_open() -> None:
    ranges = [(0.0, 0.3), (0.3, 0.6)]
    assert choose_variation(0.3, ranges) == 1
    assert choose_variation(0.6, ranges) == -1
    assert choose_variation(0.0, ranges) == 0


def test_eval_namespace_ranges_partition_units() -> None:
    for i in range(2000):
        unit = f"u{i}"
        inside = [in_namespace(unit, ("ns", a, b)) for a, b in ((0, 0.25), (0.25, 0.7), (0.7, 1))]
        assert inside.count(True) == 1
