"""GrowthBook JSON to Verdict experiments and saved groups (pure: no I/O).

Input: a GrowthBook SDK payload (`{"features": ..., "experiments": ..., "savedGroups": ...}`) or a
bare features object (`{featureKey: {"defaultValue": ..., "rules": [...]}}`). Every experiment rule
of a feature, and every entry of the `experiments` list (GrowthBook's auto experiments, the
format of its SDK cases' `run` section), becomes one Verdict experiment that puts every unit in
the bucket GrowthBook puts it in: same seed (GrowthBook's `seed`, else its key, written out since
Verdict's seed defaults to *its* key), same hash attribute, fallback attribute and hash version
(GrowthBook's default 1 is kept), same namespace (a layer), filters, ranges, coverage, weights and
condition. The saved groups the imported conditions name come along.

What cannot be imported faithfully is left out with a reason (`Conversion.skipped`), never
approximated: force and rollout rules, prerequisites, URL and group targeting, experiment-level
forced variations, unknown hash versions, conditions Verdict refuses, and so on. Input of the
wrong shape (malformed JSON, a string where GrowthBook has a number) is refused whole:
InvalidArgument on `payload_json`, each description starting with the JSON path at fault.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.struct_pb2 import NULL_VALUE, Value

from verdict.evaluation import get_bucket_ranges, validate_condition
from verdict.limits import DEFAULT_STRING_BYTES, RequestLimits
from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.checks import is_slug
from verdict_assignment.experiments.growthbook_shape import (
    FIELD,
    MAX_PAYLOAD_BYTES,
    Shape,
    is_number,
    kind_of,
    parse_payload,
    path_of,
)
from verdict_platform.errors import InvalidArgument

MAX_VARIANTS = 20
MAX_FILTERS = 10
MAX_FILTER_RANGES = 20
WEIGHT_TOLERANCE = 1e-6
"""Verdict's own tolerance on the sum of the weights (experiment_rules)."""
_SDK_KEYS = frozenset({"features", "experiments", "savedGroups"})
_ENCRYPTED = ("encryptedFeatures", "encryptedExperiments", "encryptedSavedGroups")
_NOT_SLUG = re.compile(r"[^a-z0-9_-]+")
LIMITS = RequestLimits()
"""What CreateExperiment admits (payload and condition sizes, JSON depth): an experiment over
them is skipped rather than stored where no request could have put it."""

Experiment = experiment_pb2.Experiment
SavedGroup = experiment_pb2.SavedGroup


@dataclass(frozen=True)
class Conversion:
    """The result of converting one payload."""

    experiments: tuple[Experiment, ...]
    """In payload order, as drafts; defaults are not filled in (the use case does that)."""
    saved_groups: tuple[SavedGroup, ...]
    """The payload's saved groups that the imported experiments name."""
    skipped: tuple[str, ...]
    """What was not imported, or not as it was, and why: "<JSON path>: <reason>"."""
    not_startable: frozenset[str] = frozenset()
    """Keys imported as drafts that an import with `start` must leave as drafts: GrowthBook
    enrols nobody in them (inactive, draft or stopped there, or coverage 0)."""
    origins: Mapping[str, str] = field(default_factory=dict)
    """Experiment key -> the JSON path it was imported from."""


def convert(payload: Any, known_groups: Collection[str] = ()) -> Conversion:
    """The experiments and saved groups of `payload` (parsed JSON).

    `known_groups`: saved groups Verdict has already, which conditions may name without the
    payload defining them. Raises InvalidArgument naming every JSON path of the wrong type.
    """
    return _Converter(known_groups).run(payload)


def slugify(text: str) -> str:
    """A Verdict key made from any text ("" when nothing usable is left)."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-")[:64].strip("-")


def _json_value(value: Any) -> Value:
    out = Value()
    if isinstance(value, dict):
        out.struct_value.update(value)
    elif isinstance(value, list):
        out.list_value.extend(value)
    elif value is None:
        out.null_value = NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif is_number(value):
        out.number_value = float(value)
    else:
        out.string_value = str(value)
    return out


def group_references(condition: Any) -> Iterator[Any]:
    """Every argument of `$inGroup` / `$notInGroup` in a condition, at any depth."""
    if isinstance(condition, dict):
        for key, value in condition.items():
            if key in ("$inGroup", "$notInGroup"):
                yield value
            else:
                yield from group_references(value)
    elif isinstance(condition, list):
        for item in condition:
            yield from group_references(item)


class _Skip(Exception):
    """One experiment cannot be imported faithfully; the message says why."""


class _Converter(Shape):
    def __init__(self, known_groups: Collection[str]) -> None:
        super().__init__()
        self.known_groups = set(known_groups)
        self.skipped: list[str] = []
        self.experiments: list[Experiment] = []
        self.not_startable: set[str] = set()
        self.origins: dict[str, str] = {}
        self.used_keys: set[str] = set()
        self.payload_groups: dict[str, list[Any]] = {}
        self.needed_groups: list[str] = []

    # -- the payload ------------------------------------------------------------------------

    def run(self, payload: Any) -> Conversion:
        if not isinstance(payload, dict):
            self.bad("", f"must be a JSON object, not {kind_of(payload)}")
            raise InvalidArgument(self.violations)
        for name in _ENCRYPTED:
            if name in payload:
                self.bad(name, "encrypted payloads cannot be imported: decrypt it first")
        if self.violations:
            raise InvalidArgument(self.violations)
        if _SDK_KEYS & payload.keys():
            groups = payload.get("savedGroups", {})
            if self.want(groups, dict, "savedGroups", "an object"):
                self.payload_groups = self.saved_groups(groups)
            features = payload.get("features", {})
            if self.want(features, dict, "features", "an object"):
                self.features(features, "features")
            experiments = payload.get("experiments", [])
            if self.want(experiments, list, "experiments", "an array"):
                for i, raw in enumerate(experiments):
                    at = f"experiments[{i}]"
                    if self.want(raw, dict, at, "an object"):
                        self.one(raw, at, feature=None)
        else:
            self.features(payload, "")
        if self.violations:
            raise InvalidArgument(self.violations)
        groups = tuple(
            SavedGroup(key=key, values=[_json_value(v) for v in self.payload_groups[key]])
            for key in self.needed_groups
        )
        return Conversion(
            experiments=tuple(self.experiments),
            saved_groups=groups,
            skipped=tuple(self.skipped),
            not_startable=frozenset(self.not_startable),
            origins=dict(self.origins),
        )

    def features(self, features: dict[str, Any], at: str) -> None:
        for feature_key, feature in features.items():
            where = path_of(at, feature_key)
            if not self.want(feature, dict, where, "an object (a feature definition)"):
                continue
            rules = feature.get("rules", [])
            if not self.want(rules, list, f"{where}.rules", "an array"):
                continue
            holdout = ""
            for i, rule in enumerate(rules):
                rule_at = f"{where}.rules[{i}]"
                if not self.want(rule, dict, rule_at, "an object"):
                    continue
                if "force" in rule:
                    self.skip(
                        rule_at,
                        "a force rule (a fixed value or a percentage rollout) is not an experiment",
                    )
                    continue
                if "variations" not in rule:
                    self.skip(rule_at, "a rule without variations is not an experiment")
                    continue
                made = self.one(rule, rule_at, feature=feature_key, holdout_key=holdout)
                if made is not None and made.holdout:
                    holdout = made.key

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append(f"{path}: {reason}")

    # -- one experiment ---------------------------------------------------------------------

    def one(
        self,
        raw: dict[str, Any],
        at: str,
        *,
        feature: str | None,
        holdout_key: str = "",
    ) -> Experiment | None:
        before = len(self.violations)
        gb_key = raw.get("key") if feature is None else (raw.get("key") or feature)
        if not isinstance(gb_key, str) or not gb_key:
            self.bad(f"{at}.key", "is required: a non-empty string")
            return None
        variations = raw.get("variations")
        if not isinstance(variations, list):
            self.bad(f"{at}.variations", f"must be an array, not {kind_of(variations)}")
            return None
        try:
            experiment = self.build(raw, at, gb_key, variations, feature, holdout_key)
        except _Skip as reason:
            if len(self.violations) == before:
                self.skip(at, str(reason))
            return None
        if len(self.violations) != before:
            return None
        self.experiments.append(experiment)
        self.origins[experiment.key] = at
        return experiment

    def build(
        self,
        raw: dict[str, Any],
        at: str,
        gb_key: str,
        variations: list[Any],
        feature: str | None,
        holdout_key: str,
    ) -> Experiment:
        self.experiment(raw, at)
        if self.violations:
            raise _Skip("")
        self.refuse_unsupported(raw, variations)
        exp = Experiment(name=_name(raw, gb_key), seed=raw.get("seed") or gb_key)
        exp.description = _description(raw, gb_key, at)
        version = raw.get("hashVersion", 1)
        if version not in (1, 2):
            raise _Skip(f"hashVersion {version!r} is unknown: GrowthBook enrols nobody with it")
        exp.hash_version = int(version)
        exp.hash_attribute = raw.get("hashAttribute") or "id"
        fallback = raw.get("fallbackAttribute") or ""
        if fallback and raw.get("disableStickyBucketing"):
            self.skip(
                f"{at}.fallbackAttribute",
                "not imported: GrowthBook only uses it with "
                "sticky bucketing, which disableStickyBucketing turns off",
            )
        elif fallback and (fallback in (exp.hash_attribute, "id") or exp.hash_attribute == "id"):
            # GrowthBook ignores a fallback it never needs; Verdict refuses one on write.
            self.skip(
                f"{at}.fallbackAttribute",
                "not imported: the hash attribute is the unit id (always present) or the "
                "fallback itself, so GrowthBook never uses it",
            )
        elif fallback:
            exp.fallback_attribute = fallback
        self.variants(exp, raw, at, variations)
        self.filters_and_layer(exp, raw, at)
        self.targeting(exp, raw, at)
        if holdout_key and not exp.holdout:
            exp.holdout_key = holdout_key
        over = LIMITS.problems(exp, "experiment")
        if over:
            listed = "; ".join(f"{p.field}: {p.description}" for p in over[:3])
            raise _Skip(f"over what Verdict stores ({listed})")
        exp.key = self.key_for(gb_key, feature, at)
        if _enrols_nobody(raw, exp):
            self.not_startable.add(exp.key)
        return exp

    def refuse_unsupported(self, raw: dict[str, Any], variations: list[Any]) -> None:
        if len(variations) < 2:
            raise _Skip(f"{len(variations)} variation(s): GrowthBook enrols nobody in it")
        if len(variations) > MAX_VARIANTS:
            raise _Skip(f"{len(variations)} variations; Verdict allows at most {MAX_VARIANTS}")
        if "force" in raw:
            raise _Skip(
                "a forced variation (force) gives everyone covered one variation "
                "without hashing them into the variations"
            )
        if raw.get("parentConditions") or raw.get("prerequisites"):
            raise _Skip("prerequisites (parentConditions) depend on other features' values")
        if raw.get("urlPatterns") or raw.get("url"):
            raise _Skip("URL targeting (url, urlPatterns) needs the page URL")
        if raw.get("groups"):
            raise _Skip("user groups (groups) are not attributes")
        meta = raw.get("meta") or []
        through = [i for i, m in enumerate(meta) if m.get("passthrough")]
        if through and not (through == [1] and len(variations) == 2 and not raw.get("namespace")):
            raise _Skip(
                "passthrough variations are only imported as a two-way holdout "
                "(the second variation passing through, no namespace)"
            )

    def variants(
        self, exp: Experiment, raw: dict[str, Any], at: str, variations: list[Any]
    ) -> None:
        n = len(variations)
        meta = raw.get("meta") or []
        keys = [_meta(meta, i).get("key") for i in range(n)]
        if not all(isinstance(k, str) and is_slug(k) for k in keys) or len(set(keys)) != n:
            if any(k is not None for k in keys):
                self.skip(
                    f"{at}.meta",
                    "variation keys are not distinct Verdict keys (slugs); "
                    "the variants are named v0, v1, ...",
                )
            keys = [f"v{i}" for i in range(n)]
        weights = self.weights(raw, at, n)
        ranges = raw.get("ranges")
        if ranges is not None:
            bucket_ranges = self.explicit_ranges(ranges, n)
        elif weights is None:  # GrowthBook's weights need explicit ranges to keep every bucket
            coverage = _clamped(raw.get("coverage", 1))
            bucket_ranges = get_bucket_ranges(n, coverage, list(raw["weights"]))
            self.skip(
                f"{at}.weights",
                "sum to a little less or more than 1, which Verdict's "
                "weights cannot; imported as the explicit ranges GrowthBook derives",
            )
        else:
            bucket_ranges = None
        if bucket_ranges is not None:
            lengths = [end - start for start, end in bucket_ranges]
            total = sum(lengths)
            weights = [x / total for x in lengths] if total > 0 else [1.0 / n] * n
        assert weights is not None
        for i, value in enumerate(variations):
            variant = exp.variants.add(
                key=keys[i],
                name=_clipped(str(_meta(meta, i).get("name") or keys[i])),
                weight=weights[i],
                is_control=i == 0,
            )
            variant.payload.update(value if isinstance(value, dict) else {"value": value})
            if bucket_ranges is not None:
                variant.range.start, variant.range.end = bucket_ranges[i]
        if bucket_ranges is None:
            exp.coverage = _clamped(raw.get("coverage", 1))
            if raw.get("coverage", 1) != exp.coverage:
                self.skip(
                    f"{at}.coverage",
                    f"{raw['coverage']} is clamped to {exp.coverage}, as GrowthBook does",
                )
        if len(meta) == 2 and _meta(meta, 1).get("passthrough"):
            exp.holdout = True

    def weights(self, raw: dict[str, Any], at: str, n: int) -> list[float] | None:
        """The weights to store; None when GrowthBook's valid weights need explicit ranges."""
        given = raw.get("weights")
        if given is None:
            return [1.0 / n] * n
        total = sum(given)
        if len(given) != n or not 0.99 <= total <= 1.01 or any(w < 0 for w in given):
            self.skip(
                f"{at}.weights",
                "ignored as GrowthBook ignores them (not one weight per "
                "variation, or not summing to 1): the split is equal",
            )
            return [1.0 / n] * n
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            return None
        return [float(w) for w in given]

    def explicit_ranges(self, ranges: list[list[float]], n: int) -> list[tuple[float, float]]:
        if len(ranges) != n:
            raise _Skip(f"ranges has {len(ranges)} entries for {n} variations")
        pairs = [(float(a), float(b)) for a, b in ranges]
        if any(not 0 <= a <= b <= 1 for a, b in pairs):
            raise _Skip("a range is not within [0, 1] or ends before it starts")
        ordered = sorted(p for p in pairs if p[1] > p[0])
        if any(prev[1] > nxt[0] for prev, nxt in itertools.pairwise(ordered)):
            raise _Skip(
                "ranges overlap: GrowthBook gives the overlap to the first variation, "
                "Verdict's ranges may not overlap"
            )
        return pairs

    def filters_and_layer(self, exp: Experiment, raw: dict[str, Any], at: str) -> None:
        filters = raw.get("filters") or []
        if len(filters) > MAX_FILTERS:
            raise _Skip(f"{len(filters)} filters; Verdict allows at most {MAX_FILTERS}")
        for f in filters:
            version = f.get("hashVersion") or 2
            if version not in (1, 2):
                raise _Skip(f"a filter's hashVersion {version!r} is unknown: it keeps nobody")
            if not 1 <= len(f["ranges"]) <= MAX_FILTER_RANGES:
                raise _Skip(f"a filter needs 1 to {MAX_FILTER_RANGES} ranges")
            exp.filters.add(
                seed=f["seed"],
                # GrowthBook hashes a filter's own attribute, "id" by default (not the
                # experiment's hash attribute): name it, whatever Verdict's default is.
                attribute=f.get("attribute") or "id",
                hash_version=int(version),
                ranges=[experiment_pb2.BucketRange(start=a, end=b) for a, b in f["ranges"]],
            )
        namespace = raw.get("namespace")
        if namespace is None:
            return
        if filters:
            self.skip(f"{at}.namespace", "ignored, as GrowthBook ignores it when filters are set")
            return
        layer_id, start, end = namespace
        if not layer_id:
            raise _Skip("the namespace has an empty id")
        if not 0 <= start < end <= 1:
            raise _Skip(f"namespace range [{start}, {end}) enrols nobody or leaves [0, 1]")
        exp.layer.id, exp.layer.start, exp.layer.end = layer_id, float(start), float(end)

    def targeting(self, exp: Experiment, raw: dict[str, Any], at: str) -> None:
        condition = raw.get("condition") or {}
        if not condition:
            return
        for group in group_references(condition):
            if not isinstance(group, str):
                continue  # validate_condition names it below
            if group in self.payload_groups:
                if not is_slug(group):
                    raise _Skip(f"saved group {group!r} has no Verdict key (a slug)")
            elif group not in self.known_groups:
                raise _Skip(
                    f"the condition names saved group {group!r}, which neither the "
                    "payload nor Verdict defines"
                )
        available = self.known_groups | set(self.payload_groups)
        problems = validate_condition(condition, known_groups=available)
        if problems:
            listed = "; ".join(f"{p.path or '(root)'}: {p.message}" for p in problems[:3])
            raise _Skip(f"Verdict cannot evaluate its condition as GrowthBook does ({listed})")
        for group in group_references(condition):
            if group in self.payload_groups and group not in self.needed_groups:
                self.needed_groups.append(group)
        exp.targeting.update(condition)

    def key_for(self, gb_key: str, feature: str | None, at: str) -> str:
        if is_slug(gb_key) and gb_key not in self.used_keys:
            self.used_keys.add(gb_key)
            return gb_key
        if gb_key in self.used_keys:
            base = slugify(f"{gb_key}-{feature}") if feature else slugify(gb_key)
            why = f"key {gb_key!r} is used by an earlier experiment of this payload"
        else:
            base = slugify(feature if feature is not None else gb_key)
            why = f"key {gb_key!r} is not a Verdict key (a slug)"
        base = base or "growthbook"
        key, n = base, 2
        while key in self.used_keys or not is_slug(key):
            suffix = f"-{n}"
            key, n = base[: 64 - len(suffix)] + suffix, n + 1
        self.used_keys.add(key)
        self.skip(
            f"{at}.key",
            f"{why}: imported as {key!r} with seed {gb_key!r} unchanged "
            "unless set, so every unit keeps its bucket",
        )
        return key


def _meta(meta: Sequence[Any], i: int) -> Mapping[str, Any]:
    return meta[i] if i < len(meta) and isinstance(meta[i], dict) else {}


def _clamped(coverage: float) -> float:
    return float(min(1.0, max(0.0, coverage)))


def _clipped(text: str, most: int = DEFAULT_STRING_BYTES) -> str:
    """`text` cut to `most` bytes of UTF-8 (names: GrowthBook sets no limit)."""
    return text.encode()[:most].decode(errors="ignore")


def _name(raw: Mapping[str, Any], gb_key: str) -> str:
    return _clipped(str(raw.get("name") or gb_key))


def _description(raw: Mapping[str, Any], gb_key: str, at: str) -> str:
    phase = f", phase {raw['phase']}" if raw.get("phase") else ""
    return f"Imported from GrowthBook: {at} (key {gb_key!r}{phase})."[:4096]


def _enrols_nobody(raw: Mapping[str, Any], exp: Experiment) -> bool:
    """GrowthBook runs nobody into it: inactive, a draft or stopped, or no coverage."""
    if raw.get("active") is False or raw.get("status") in ("draft", "stopped"):
        return True
    if any(v.HasField("range") for v in exp.variants):
        return all(v.range.end <= v.range.start for v in exp.variants)
    return exp.HasField("coverage") and exp.coverage == 0


__all__ = [
    "FIELD",
    "MAX_PAYLOAD_BYTES",
    "Conversion",
    "convert",
    "group_references",
    "parse_payload",
    "path_of",
    "slugify",
]
