"""The evaluation engine's per-request options as the Assign path calls them, in one place.

Forced variations, explanations and the attribute an experiment hashes are the engine's
(`verdict.evaluation`); this module turns them into the shapes the service answers with, so the
servicer and the assigner never touch the engine's explanation objects or the proto's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from verdict.evaluation import Assignment, Evaluator, ExperimentConfig, Explanation
from verdict.evaluation import hashed_by as _hashed_by
from verdict.v1 import assignment_pb2
from verdict_platform.roles import FORCERS

UNIT_ID_ATTRIBUTE = "id"
"""The default hash attribute: the unit id itself (`AssignRequest.unit_id`)."""

FORCING_ROLES = FORCERS
"""Roles that may send `forced_variations` (qa and admin)."""


def hashed_by(config: ExperimentConfig, attributes: Mapping[str, Any]) -> tuple[str, str] | None:
    """(attribute, value) hashed to bucket the unit in `config`: the hash attribute's, or the
    fallback attribute's when the unit has no value for it; None when it has neither."""
    return _hashed_by(config, attributes)


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
    return evaluator.assign(unit_id, attributes, keys, now, forced=forced)


def explain(
    evaluator: Evaluator,
    unit_id: str,
    attributes: Mapping[str, Any],
    keys: Sequence[str],
    now: float,
    forced: Mapping[str, str],
) -> list[assignment_pb2.Explanation]:
    """One `Explanation` per result of `assign(...)` with the same arguments, in order."""
    found = evaluator.explain(unit_id, attributes, keys, now, forced=forced or None)
    return [to_proto(explanation) for _, explanation in found]


def to_proto(explanation: Explanation) -> assignment_pb2.Explanation:
    """The engine's explanation as the proto message."""
    message = assignment_pb2.Explanation(
        hash_attribute=explanation.hash_attribute,
        hash_value=explanation.hash_value,
        failed_condition=explanation.failed_condition,
        detail=explanation.detail,
    )
    if explanation.bucket is not None:
        message.bucket = explanation.bucket
    if explanation.layer_position is not None:
        message.layer_position = explanation.layer_position
    return message
