"""Per-metric verdict: WIN, LOSS or INCONCLUSIVE, read off the decision interval.

The rule (``I`` is the comparison's decision interval: the plan's effect scale, at the
plan's alpha and sides, anytime-valid when the plan is sequential, adjusted when it
corrects for multiple testing; "beyond" uses the open-interval convention of
:meth:`Interval.excludes <.interval.Interval.excludes>`, so it matches ``significant``):

* no decision interval (the comparison could not be made): INCONCLUSIVE;
* a metric without a margin: WIN when ``I`` lies on the good side of 0 (all of it above 0
  when higher is better, below 0 when lower is better), LOSS when it lies on the bad side,
  else INCONCLUSIVE: WIN or LOSS exactly when ``significant``;
* a guardrail with non-inferiority margin ``m >= 0``: LOSS when ``I`` lies beyond the
  margin on the harmful side (harm larger than ``m`` is shown), WIN when it lies on the
  good side of ``-m`` (non-inferiority is shown: any harm is smaller than ``m``), else
  INCONCLUSIVE. ``m = 0`` is the rule above.

A one-sided plan can only conclude in its tested direction: the other bound is infinite.
"""

from __future__ import annotations

from enum import StrEnum

from .interval import Interval
from .plan import Direction

__all__ = ["Verdict", "metric_verdict"]


class Verdict(StrEnum):
    WIN = "win"
    """Better than control (for a guardrail: no worse than its margin), as the plan decides."""
    LOSS = "loss"
    """Worse than control (for a guardrail: worse by more than its margin)."""
    INCONCLUSIVE = "inconclusive"
    """Neither is shown yet, or the comparison could not be made."""


def metric_verdict(
    interval: Interval | None, direction: Direction, *, margin: float | None = None
) -> Verdict:
    """The verdict for a comparison's decision interval (see the module docstring)."""
    if interval is None:
        return Verdict.INCONCLUSIVE
    m = abs(margin) if margin is not None else 0.0
    if direction is Direction.INCREASE:
        good, bad = interval.lower >= -m, interval.upper <= -m
    else:
        good, bad = interval.upper <= m, interval.lower >= m
    if good and not bad:
        return Verdict.WIN
    if bad and not good:
        return Verdict.LOSS
    return Verdict.INCONCLUSIVE
