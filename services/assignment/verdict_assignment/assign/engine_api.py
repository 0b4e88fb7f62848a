"""The evaluation engine's issue-17 API as the Assign path calls it, in one place.

The engine (clients/python/verdict/evaluation) gains, in parallel with this package:
`Evaluator.assign(..., forced=...)` (per-request forced variations, QA mode), `Evaluator.explain`,
`hashed_by(config, attributes)` and the fallback attribute (`ExperimentConfig.fallback_attribute`).
Until they land, this module stands in for them with minimal private versions of the same rules,
so the service works and its tests run either way; once the engine has them, the engine's
versions are used (detected once, at import) and the stand-ins are dead code to delete. Every
call into those names goes through here, so aligning with their final signatures touches this
module only.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import verdict.evaluation as engine
from verdict.evaluation import Assignment, Evaluator, ExperimentConfig, Reason
from verdict.evaluation import hash as hash_value
from verdict.evaluation.engine import hash_value_of
from verdict.v1 import assignment_pb2
from verdict_platform.roles import Role

log = logging.getLogger(__name__)
_warned: set[str] = set()

UNIT_ID_ATTRIBUTE = "id"
"""The default hash attribute: the unit id itself (`AssignRequest.unit_id`)."""

_ENGINE_HASHED_BY = getattr(engine, "hashed_by", None)
_ENGINE_FORCES = "forced" in inspect.signature(Evaluator.assign).parameters
_ENGINE_EXPLAINS = hasattr(Evaluator, "explain")
_ENGINE_FALLS_BACK = "fallback_attribute" in getattr(ExperimentConfig, "__dataclass_fields__", {})

FORCING_ROLES: frozenset[Role] = frozenset(
    role for role in (getattr(Role, "QA", None), Role.ADMIN) if role is not None
)
"""Roles that may send `forced_variations` (Role.QA once roles.py has it)."""


def fallback_attribute(config: ExperimentConfig) -> str:
    """The experiment's fallback attribute, "" when none (or the engine has none yet)."""
    return str(getattr(config, "fallback_attribute", "") or "")


def hashed_by(
    config: ExperimentConfig, attributes: Mapping[str, Any], fallback: str = ""
) -> tuple[str, str] | None:
    """(attribute, value) hashed to bucket the unit in `config`: the hash attribute, or the
    fallback attribute (`fallback`, until the engine's config has it) when the unit has no value
    for it; None when it has neither."""
    if _ENGINE_HASHED_BY is not None:
        found = _ENGINE_HASHED_BY(config, attributes)
        if found is None:
            return None
        if isinstance(found, tuple):
            attribute, value = found
        else:  # an object naming its parts
            attribute = getattr(found, "attribute", getattr(found, "hash_attribute", ""))
            value = getattr(found, "value", getattr(found, "hash_value", None))
        return None if value is None or value == "" else (str(attribute), str(value))
    for attribute in (config.hash_attribute, fallback or fallback_attribute(config)):
        if attribute:
            value = hash_value_of(attributes.get(attribute))
            if value is not None:
                return attribute, value
    return None


def assign(
    evaluator: Evaluator,
    unit_id: str,
    attributes: Mapping[str, Any],
    keys: Sequence[str],
    now: float,
    forced: Mapping[str, str],
) -> list[Assignment]:
    """`evaluator.assign` with the request's forced variations (experiment key -> variant key,
    all known to the evaluator: the caller checked them)."""
    if _ENGINE_FORCES:
        return evaluator.assign(unit_id, attributes, keys, now, forced=forced)  # type: ignore[call-arg]
    results = evaluator.assign(unit_id, attributes, keys, now)
    for i, r in enumerate(results):
        variant_key = forced.get(r.experiment_key)
        if variant_key is not None:
            variants = evaluator.experiments[r.experiment_key].variants
            index = [v.key for v in variants].index(variant_key)
            payload = variants[index].payload_json
            results[i] = Assignment(
                r.experiment_key, variant_key, index, Reason.FORCED, payload, None, True
            )
    return results


def with_fallback(
    evaluator: Evaluator,
    results: list[Assignment],
    hashing: Mapping[str, tuple[str, str]],
    unit_id: str,
    attributes: Mapping[str, Any],
    now: float,
) -> None:
    """Stand-in for the engine's fallback attribute (a no-op once the engine has it): a result
    NO_HASH_ATTRIBUTE of an experiment with a fallback (`hashing`: key -> (hash attribute,
    fallback)) is evaluated again with the fallback's value as the hash attribute's."""
    if _ENGINE_FALLS_BACK:
        return
    for i, r in enumerate(results):
        if r.reason is not Reason.NO_HASH_ATTRIBUTE:
            continue
        primary, fallback = hashing.get(r.experiment_key, ("", ""))
        value = hash_value_of(attributes.get(fallback)) if fallback else None
        if value is not None:
            substituted = {**attributes, primary: value}
            [results[i]] = evaluator.assign(unit_id, substituted, [r.experiment_key], now)


def explain(
    evaluator: Evaluator,
    results: Sequence[Assignment],
    unit_id: str,
    attributes: Mapping[str, Any],
    keys: Sequence[str],
    now: float,
    forced: Mapping[str, str],
    hashing: Mapping[str, tuple[str, str]],
) -> list[assignment_pb2.Explanation]:
    """One `Explanation` per result of `assign(...)` with the same arguments, in order."""
    if _ENGINE_EXPLAINS:
        try:
            found = evaluator.explain(  # type: ignore[attr-defined]
                unit_id, attributes, keys, now, forced=forced
            )
        except TypeError as error:  # another signature than the one agreed: say so, answer
            _warn_once(f"Evaluator.explain not called as expected ({error}); using the stand-in")
        else:
            explanations = [_to_proto(item) for item in found]
            if len(explanations) == len(results):
                return explanations
            _warn_once(
                "Evaluator.explain did not give one explanation per result; using the stand-in"
            )
    return [
        _explain_one(evaluator, r, attributes, hashing.get(r.experiment_key, ("", ""))[1])
        for r in results
    ]


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def _to_proto(item: Any) -> assignment_pb2.Explanation:
    """The engine's explanation (or an (Assignment, explanation) pair) as the proto message."""
    if isinstance(item, assignment_pb2.Explanation):
        return item
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Assignment):
        item = item[1]
    failed = getattr(item, "failed_condition", "") or ""
    message = assignment_pb2.Explanation(
        hash_attribute=getattr(item, "hash_attribute", "") or "",
        hash_value=getattr(item, "hash_value", "") or "",
        failed_condition=failed if isinstance(failed, str) else json.dumps(failed),
        detail=getattr(item, "detail", "") or "",
    )
    for name in ("bucket", "layer_position"):
        value = getattr(item, name, None)
        if value is not None:
            setattr(message, name, float(value))
    return message


def _explain_one(
    evaluator: Evaluator, r: Assignment, attributes: Mapping[str, Any], fallback: str
) -> assignment_pb2.Explanation:
    """Stand-in for the engine's explanation of one result: what was hashed, the bucket and
    layer position it gives, the condition when targeting failed, and one sentence."""
    config = evaluator.experiments.get(r.experiment_key)
    if config is None:
        return assignment_pb2.Explanation(detail=f"no experiment has key {r.experiment_key!r}")
    message = assignment_pb2.Explanation()
    hashed = hashed_by(config, attributes, fallback)
    if hashed is not None:
        message.hash_attribute, message.hash_value = hashed
    else:
        message.hash_attribute = config.hash_attribute
    bucket = None
    if hashed is not None:
        bucket = hash_value(config.effective_seed, hashed[1], config.hash_version)
        if bucket is not None:
            message.bucket = bucket
        if config.layer is not None:
            position = hash_value("__" + config.layer.id, hashed[1], 1)
            if position is not None:
                message.layer_position = position
    if r.reason is Reason.NOT_TARGETED and config.condition:
        message.failed_condition = json.dumps(dict(config.condition), sort_keys=True)
    message.detail = _detail(config, r, bucket)
    return message


def _detail(config: ExperimentConfig, r: Assignment, bucket: float | None) -> str:
    where = "" if bucket is None else f"bucket {bucket:.4f}"
    layer = config.layer
    sentences = {
        Reason.ASSIGNED: f"{where} is in the range of variant {r.variant_key!r}",
        Reason.FORCED: f"forced to variant {r.variant_key!r}",
        Reason.STICKY: f"kept variant {r.variant_key!r} from an earlier assignment (sticky)",
        Reason.NOT_TARGETED: "the attributes do not satisfy the targeting condition",
        Reason.NOT_IN_TRAFFIC: f"{where} is outside coverage {config.coverage:g}",
        Reason.NOT_RUNNING: "the experiment is not running (or outside its schedule)",
        Reason.UNKNOWN_KEY: "no experiment has this key",
        Reason.NOT_IN_LAYER: (
            f"the unit is outside the layer range [{layer.start:g}, {layer.end:g})"
            if layer is not None
            else "the unit is outside the experiment's layer range"
        ),
        Reason.NO_HASH_ATTRIBUTE: f"the unit has no value for {config.hash_attribute!r}",
    }
    return sentences.get(r.reason, r.reason.value).strip()
