"""The shared retry schedule: exponential, capped, optionally jittered within [wait / 2, wait]."""

from __future__ import annotations

import itertools
import random

import pytest

from verdict.retry import Backoff


def test_waits_grow_by_the_multiplier_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=0.1, max_s=1.0)
    assert list(itertools.islice(backoff.delays(), 6)) == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )


def test_jitter_stays_in_the_upper_half_of_each_wait() -> None:
    backoff = Backoff(initial_s=0.2, max_s=3.0, jitter=True)
    rng = random.Random(7)
    for retry in range(10):
        wait = min(3.0, 0.2 * 2**retry)
        drawn = [backoff.delay(retry, rng) for _ in range(200)]
        assert min(drawn) >= wait / 2
        assert max(drawn) <= wait
        assert max(drawn) - min(drawn) > wait / 10  # it does spread


def test_a_huge_retry_count_is_capped_not_an_overflow() -> None:
    assert Backoff(initial_s=0.5, max_s=4.0).delay(10_000) == 4.0


@pytest.mark.parametrize(
    "kwargs", [{"initial_s": 0.0}, {"initial_s": 2.0, "max_s": 1.0}, {"multiplier": 0.5}]
)
def test_nonsense_schedules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
