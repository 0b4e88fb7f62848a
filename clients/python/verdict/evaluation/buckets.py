"""Bucketing: weights to ranges of [0, 1), a hash to a variation, and namespaces (layers)."""

from __future__ import annotations

from collections.abc import Sequence

from verdict.evaluation.hashing import hash as _hash

BucketRange = tuple[float, float]


def get_equal_weights(num_variations: int) -> list[float]:
    """`num_variations` equal weights summing to 1; empty for zero or fewer variations."""
    if num_variations <= 0:
        return []
    return [1 / num_variations] * num_variations


def get_bucket_ranges(
    num_variations: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[BucketRange]:
    """Each variation's range `[C_i, C_i + coverage * w_i)`, where `C_i` is the sum of the weights
    before it.

    Range starts do not depend on coverage, so raising coverage only adds units: nobody already in
    the experiment changes variation. As in GrowthBook, coverage is clamped to [0, 1], and weights
    that are missing, of the wrong length, or not summing to 1 within 0.01 become equal weights
    (`getEqualWeights`). That includes weights all 0, which is how the contract says "split
    equally" (Variant.weight left unset on every variant).
    """
    if not coverage >= 0:  # also catches NaN
        coverage = 0.0
    elif coverage > 1:
        coverage = 1.0
    equal = get_equal_weights(num_variations)
    if weights is None or len(weights) != num_variations:
        weights = equal
    total = sum(weights)
    if not 0.99 <= total <= 1.01:
        weights = equal
    ranges: list[BucketRange] = []
    cumulative = 0.0
    for weight in weights:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variation(n: float, ranges: Sequence[Sequence[float]]) -> int:
    """Index of the first range with `start <= n < end`, or -1 (not in the experiment)."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return -1


def in_namespace(unit_id: str, namespace: tuple[str, float, float]) -> bool:
    """Whether `unit_id` falls in `[start, end)` of namespace `id`.

    As in GrowthBook the position in a namespace is hash version 1 with seed `"__" + id`, so it is
    independent of every experiment's own hash: experiments of one namespace whose ranges do not
    overlap never share a unit.
    """
    namespace_id, start, end = namespace
    n = _hash("__" + namespace_id, unit_id, 1)
    return n is not None and start <= n < end
