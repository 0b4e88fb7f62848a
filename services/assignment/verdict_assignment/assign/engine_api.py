"""The engine's explanations as the Assign path answers them (`AssignRequest.explain`).

Explanations are the engine's (`Evaluator.explain`); this module turns them into the proto's
`Explanation`, so the servicer and the assigner never touch the engine's explanation objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from verdict.evaluation import Evaluator, Explanation
from verdict.v1 import assignment_pb2

UNIT_ID_ATTRIBUTE = "id"
"""The default hash attribute: the unit id itself (`AssignRequest.unit_id`)."""


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
