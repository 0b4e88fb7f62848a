"""What the assignment engine answers: a `Reason` and an `Assignment` per experiment.

Apart from the engine so that the steps beyond the hot path (`eligibility.py`, `explain.py`) can
build the same answers without importing the engine that dispatches to them.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from verdict.evaluation.jsvalues import CONTAINER_TYPES, to_string, truthy


class Reason(enum.Enum):
    """Why a unit got, or did not get, a variant (names match the proto's AssignmentReason)."""

    ASSIGNED = "assigned"
    """Hashed into a variant's bucket range."""
    FORCED = "forced"
    """Listed in the experiment's QA allow-list, or forced by the request."""
    STICKY = "sticky"
    """Kept from an earlier assignment (decided by the service's cache, never by the engine)."""
    NOT_TARGETED = "not_targeted"
    """The attributes do not satisfy the targeting condition."""
    NOT_IN_TRAFFIC = "not_in_traffic"
    """The hash falls outside the covered part of the bucket ranges."""
    NOT_RUNNING = "not_running"
    """The experiment is not running, or the time is outside its schedule."""
    UNKNOWN_KEY = "unknown_key"
    """No experiment has this key."""
    NOT_IN_LAYER = "not_in_layer"
    """The unit falls outside the experiment's range in its layer."""
    NO_HASH_ATTRIBUTE = "no_hash_attribute"
    """The unit has no usable value for the experiment's hash attribute (nor its fallback)."""
    HELD_OUT = "held_out"
    """The unit is in the control group of the holdout covering the experiment."""
    FILTERED_OUT = "filtered_out"
    """The unit does not pass the experiment's filters."""
    QA_MODE = "qa_mode"
    """The experiment is in QA mode and nothing forces a variant of it for this unit."""

    # Members are singletons compared by identity: hash them by identity too, in C, instead of
    # Enum's Python-level hash of the name (the service keys prebuilt responses by reason).
    __hash__ = object.__hash__


class Assignment(NamedTuple):
    """The outcome for one experiment.

    A NamedTuple rather than a frozen dataclass because `assign` builds one per experiment per
    call: it is as immutable and three times cheaper to construct.
    """

    experiment_key: str
    """The experiment."""
    variant_key: str | None
    """The variant, or None when the unit is not in the experiment."""
    variant_index: int
    """The variant's position in the experiment's variants, or -1."""
    reason: Reason
    """Why."""
    payload_json: str | None
    """The variant's payload JSON, or None when the unit is not in the experiment."""
    bucket: float | None
    """The unit's hash in [0, 1) when it was computed (ASSIGNED, NOT_IN_TRAFFIC), else None."""
    in_experiment: bool
    """True when the unit is in the experiment (assigned, forced or sticky)."""


def outcome(key: str, reason: Reason, bucket: float | None = None) -> Assignment:
    """A result without a variant."""
    return Assignment(key, None, -1, reason, None, bucket, False)


def hash_value_of(value: Any) -> str | None:
    """The string hashed for an attribute value, or None when the value cannot identify a unit.

    As in GrowthBook a falsy value (missing, null, "", 0, false) identifies nobody; arrays and
    objects are refused too rather than hashed as JavaScript's "a,b" or "[object Object]".
    """
    if type(value) is str:
        return value or None
    if not truthy(value) or isinstance(value, CONTAINER_TYPES):
        return None
    return to_string(value)
