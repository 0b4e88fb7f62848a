"""The configuration the assignment engine evaluates: experiments, their variants and layers.

Plain frozen values, built by the assignment service from its store and by the Python client from
a configuration snapshot; both hand them to the same `Evaluator`. Construction checks structure
(keys, variant references, explicit ranges, filters, holdouts) and raises ValueError; traffic
numbers follow GrowthBook's lenient rules instead (coverage clamped to [0, 1]; weights that do not
sum to 1, all of them 0 included, replaced by equal weights as GrowthBook's `getEqualWeights`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class VariantConfig:
    """One arm of an experiment."""

    key: str
    """Unique within the experiment."""
    weight: float
    """Share of the covered traffic; the weights of an experiment sum to 1 (all 0: equal split,
    see `get_bucket_ranges`). Ignored when the experiment has explicit `ranges`."""
    payload_json: str = "null"
    """The variant's configuration (model, prompt version, params) as JSON, returned verbatim."""
    is_control: bool = False
    """Whether this is the baseline the other variants are compared with."""


@dataclass(frozen=True, slots=True)
class LayerConfig:
    """An experiment's range in a layer (a GrowthBook namespace).

    Units are placed in [0, 1) per layer by hash version 1 with seed `"__" + id`; experiments of
    one layer with non-overlapping ranges never share a unit.
    """

    id: str
    """The layer's identifier."""
    start: float
    """Start of the experiment's range, inclusive, in [0, 1]."""
    end: float
    """End of the experiment's range, exclusive, in [start, 1]."""

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a layer needs an id")
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError(f"layer range [{self.start}, {self.end}) is not within [0, 1]")


BucketRange = tuple[float, float]
"""A half-open interval [start, end) of [0, 1]."""


def _ranges(value: Any, what: str) -> tuple[BucketRange, ...]:
    """`value` as a tuple of (start, end) pairs within [0, 1]; ValueError naming `what`."""
    out = []
    for pair in value:
        start, end = (float(bound) for bound in pair)
        if not 0.0 <= start <= end <= 1.0:  # also refuses NaN
            raise ValueError(f"{what}: range [{start}, {end}) is not within [0, 1]")
        out.append((start, end))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """Keeps only the units whose hash under `seed` falls in one of `ranges` (GrowthBook's
    `filters`, its `isFilteredOut`): e.g. "the 20 % of units not in experiment X"."""

    seed: str
    """The seed hashed with, e.g. another experiment's seed."""
    ranges: tuple[BucketRange, ...]
    """The ranges a unit must fall in (half-open); none: every unit is filtered out."""
    attribute: str | None = None
    """Attribute hashed; None: the value the experiment hashes (its hash attribute or fallback)."""
    hash_version: int = 2
    """GrowthBook hash version, 2 or 1."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranges", _ranges(self.ranges, "filter"))
        if self.hash_version not in (1, 2):
            raise ValueError(f"filter has unknown hash version {self.hash_version}")
        if self.attribute == "":
            object.__setattr__(self, "attribute", None)


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """Everything needed to assign units to one experiment."""

    key: str
    """Unique experiment key."""
    variants: tuple[VariantConfig, ...]
    """The arms, in bucket order (a list is accepted and stored as a tuple)."""
    seed: str = ""
    """Hash seed; empty means the key."""
    hash_attribute: str = "id"
    """Attribute whose value is hashed; "id" is the unit id unless the attributes carry one."""
    hash_version: int = 2
    """GrowthBook hash version, 2 or 1."""
    coverage: float = 1.0
    """Share of eligible units that enter, clamped to [0, 1]. Ignored with explicit `ranges`."""
    condition: Mapping[str, Any] | None = None
    """Targeting condition in GrowthBook's language; None or empty: everyone."""
    layer: LayerConfig | None = None
    """The layer (namespace) for mutual exclusion, if any."""
    forced: Mapping[str, str] = field(default_factory=dict)
    """QA allow-list: unit id or hash attribute value -> variant key."""
    start_time: float | None = None
    """Assign from this epoch second on (inclusive); None: from the start."""
    end_time: float | None = None
    """Assign until this epoch second (exclusive); None: until stopped."""
    running: bool = True
    """Whether the experiment's status is running."""
    allocation_version: int = 1
    """Bumped when weights or coverage change while running (for sticky assignments)."""
    ranges: tuple[BucketRange, ...] | None = None
    """Explicit bucket range per variant (GrowthBook's `ranges`); when set they replace weights
    and coverage. Within [0, 1], one per variant, not overlapping."""
    fallback_attribute: str | None = None
    """Attribute hashed when the unit has no usable value for `hash_attribute` (GrowthBook's
    `fallbackAttribute`); None: none."""
    filters: tuple[FilterConfig, ...] = ()
    """Units must pass every filter to be eligible (GrowthBook's `filters`)."""
    holdout: bool = False
    """This experiment is a holdout: exactly two variants, its control is the held-out group."""
    holdout_key: str | None = None
    """Key of the holdout covering this experiment: units in its control are HELD_OUT. Ignored
    when the holdout is not among the Evaluator's experiments or is not running."""
    qa_mode: bool = False
    """Only forced units (allow-list or the request's forced variations) are enrolled."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(self.variants))
        object.__setattr__(self, "forced", _frozen_mapping(self.forced))
        if self.condition is not None:
            object.__setattr__(self, "condition", _frozen_mapping(self.condition))
        object.__setattr__(self, "filters", tuple(self.filters))
        object.__setattr__(self, "fallback_attribute", self.fallback_attribute or None)
        object.__setattr__(self, "holdout_key", self.holdout_key or None)
        if not self.key:
            raise ValueError("an experiment needs a key")
        if not self.variants:
            raise ValueError(f"experiment {self.key!r} has no variants")
        keys = [variant.key for variant in self.variants]
        if len(set(keys)) != len(keys):
            raise ValueError(f"experiment {self.key!r} has duplicate variant keys")
        if any(not math.isfinite(v.weight) or v.weight < 0 for v in self.variants):
            raise ValueError(f"experiment {self.key!r} has a negative or non-finite weight")
        unknown = sorted(set(self.forced.values()) - set(keys))
        if unknown:
            raise ValueError(f"experiment {self.key!r} forces unknown variants {unknown}")
        if self.hash_version not in (1, 2):
            raise ValueError(f"experiment {self.key!r} has unknown hash version")
        if not self.hash_attribute:
            raise ValueError(f"experiment {self.key!r} has an empty hash attribute")
        if (
            self.start_time is not None
            and self.end_time is not None
            and self.end_time < self.start_time
        ):
            raise ValueError(f"experiment {self.key!r} ends before it starts")
        if self.ranges is not None:
            self._check_ranges()
        if self.holdout:
            if len(self.variants) != 2:
                raise ValueError(f"holdout {self.key!r} needs exactly two variants")
            if self.holdout_key is not None:
                raise ValueError(f"holdout {self.key!r} cannot itself be held out")
        if self.holdout_key == self.key:
            raise ValueError(f"experiment {self.key!r} names itself as its holdout")

    def _check_ranges(self) -> None:
        assert self.ranges is not None
        ranges = _ranges(self.ranges, f"experiment {self.key!r}")
        object.__setattr__(self, "ranges", ranges)
        if len(ranges) != len(self.variants):
            raise ValueError(
                f"experiment {self.key!r} has {len(ranges)} ranges for "
                f"{len(self.variants)} variants"
            )
        reached = 0.0  # the furthest end so far, in order of start; empty ranges hold nobody
        for start, end in sorted(r for r in ranges if r[0] < r[1]):
            if start < reached:
                raise ValueError(f"experiment {self.key!r} has overlapping ranges")
            reached = end

    @property
    def control_index(self) -> int:
        """Position of the control variant (the first one when none is marked)."""
        for index, variant in enumerate(self.variants):
            if variant.is_control:
                return index
        return 0

    @property
    def effective_seed(self) -> str:
        """The seed actually hashed with: `seed`, or the key when the seed is empty."""
        return self.seed or self.key
