"""Operators' overrides of stopping rules (pure): which fired rules stay quiet, and why.

An override is recorded when an operator restarts an experiment that a rule stopped (the rule it
names is then OVERRIDDEN), or asked for explicitly on StartExperiment (SNOOZE until a time,
DISABLE for the run, or OVERRIDE). The policy (also in experiment.proto, `RuleOverrideMode`):

- DISABLE: the rule never acts in this run.
- SNOOZE: the rule does not act before `until`.
- OVERRIDE of an evidence rule (SRM, guardrail harm, efficacy): it acts again only when what it
  measures gets clearly worse (or better) than what the operator overruled: the effect it fires
  on at least doubles (SRM: the largest gap between observed and planned shares; guardrail harm
  and efficacy: the relative effect), or it fires on another metric or variant than the one
  overruled. More data alone never re-fires it: with a persistent effect a sequential p-value
  keeps falling, which tells the operator nothing new. An override given before the rule ever
  fired (no figures to compare) acts again when the rule fires at a tenth of its level.
- OVERRIDE of a budget rule (target sample size, maximum duration): it acts again once the
  budget is spent again after the override: the target sample size on top of the units at the
  override, the maximum duration on top of the time run at the override.

Other rules are never affected. A quiet rule still shows in the recommendation's reasons, with
who silenced it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from verdict_analysis.stopping_rules import FiredRule, RuleName

__all__ = ["STRICTER", "OverrideMode", "RuleOverride", "suppressor"]

STRICTER = 0.1
"""An override without a baseline acts again when its rule fires at this share of its level."""
GROWTH = 2.0
"""An overridden evidence rule acts again when its effect grows by this factor."""

EVIDENCE_RULES = frozenset({RuleName.SRM, RuleName.GUARDRAIL_HARM, RuleName.EFFICACY})


class OverrideMode(StrEnum):
    OVERRIDE = "override"
    SNOOZE = "snooze"
    DISABLE = "disable"


@dataclass(frozen=True)
class RuleOverride:
    """One override in force."""

    rule: RuleName
    mode: OverrideMode
    actor: str = ""
    reason: str = ""
    until: datetime | None = None
    """SNOOZE: when the rule wakes up."""
    baseline: Mapping[str, Any] = field(default_factory=dict)
    """OVERRIDE: the rule's figures when it was overruled (`FiredRule.details`)."""


Suppressor = Callable[[FiredRule], str | None]
"""Returns why a fired rule stays quiet, or None when it acts."""


def _by(o: RuleOverride) -> str:
    who = f" by {o.actor}" if o.actor else ""
    why = f" ({o.reason})" if o.reason else ""
    return f"{who}{why}"


def _quiet_override(
    fired: FiredRule,
    o: RuleOverride,
    strict_fired: Collection[RuleName],
    units: int,
    ran: timedelta | None,
) -> str | None:
    base = o.baseline
    if fired.rule in EVIDENCE_RULES:
        for part in ("metric", "variant"):
            if part in base and str(fired.details.get(part, "")) != str(base[part]):
                return None
        before = _strength(base)
        if before is None:
            if fired.rule in strict_fired:
                return None
            return f"{fired.rule.value} overridden{_by(o)}: acts again at a tenth of its level"
        now = _strength(fired.details)
        if now is not None and now >= GROWTH * before:
            return None
        return (
            f"{fired.rule.value} overridden{_by(o)}: acts again when its effect doubles "
            f"(from {before:.4g}) or on another metric or variant"
        )
    if fired.rule is RuleName.TARGET_SAMPLE_SIZE:
        target = int(fired.details.get("target_sample_size", 0))
        again = int(base.get("units", 0)) + target
        if units >= again:
            return None
        return f"target sample size overridden{_by(o)}: acts again at {again} units"
    if fired.rule is RuleName.MAX_DURATION and ran is not None:
        limit = float(fired.details.get("max_duration_s", 0.0))
        again_s = float(base.get("ran_s", 0.0)) + limit
        if ran.total_seconds() >= again_s:
            return None
        return f"maximum duration overridden{_by(o)}: acts again after {again_s / 3600:.1f} h"
    return None


def _strength(details: Mapping[str, Any]) -> float | None:
    """The size of what an evidence rule fired on (see the module docstring), if recorded."""
    for name in ("max_share_gap", "relative_effect"):
        value = details.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return abs(float(value))
    return None


def suppressor(
    overrides: Sequence[RuleOverride],
    *,
    strict_fired: Collection[RuleName],
    units: int,
    ran: timedelta | None,
    now: datetime,
) -> Suppressor:
    """The suppressor of these overrides. `strict_fired`: the rules that fire when the analysis
    is repeated at `STRICTER` times the levels; `units`: exposed units in total; `ran`: time
    since the run started."""
    by_rule: dict[RuleName, list[RuleOverride]] = {}
    for o in overrides:
        by_rule.setdefault(o.rule, []).append(o)

    def quiet(fired: FiredRule) -> str | None:
        for o in by_rule.get(fired.rule, ()):
            if o.mode is OverrideMode.DISABLE:
                return f"{fired.rule.value} disabled{_by(o)}"
            if o.mode is OverrideMode.SNOOZE:
                if o.until is not None and now < o.until:
                    return f"{fired.rule.value} snoozed until {o.until.isoformat()}{_by(o)}"
                continue
            note = _quiet_override(fired, o, strict_fired, units, ran)
            if note is not None:
                return note
        return None

    return quiet


def needs_strict_analysis(overrides: Sequence[RuleOverride]) -> bool:
    """Whether an override needs the analysis repeated at the stricter levels."""
    return any(o.mode is OverrideMode.OVERRIDE and o.rule in EVIDENCE_RULES for o in overrides)
