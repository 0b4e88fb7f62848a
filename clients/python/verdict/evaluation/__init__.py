"""Pure local evaluation: GrowthBook-compatible bucketing and targeting, and the assignment engine.

No I/O and no gRPC: the assignment service and the Python client's local evaluator share this
package, so the two always agree. Public names:

Bucketing and targeting (GrowthBook's SDK specification):
    hash, get_equal_weights, get_bucket_ranges, choose_variation, in_namespace,
    compile_condition, evaluate_condition, ConditionError

Assignment engine:
    VariantConfig, LayerConfig, ExperimentConfig, Evaluator, Assignment, Reason
"""

from verdict.evaluation.buckets import (
    choose_variation,
    get_bucket_ranges,
    get_equal_weights,
    in_namespace,
)
from verdict.evaluation.conditions import ConditionError, compile_condition, evaluate_condition
from verdict.evaluation.config import ExperimentConfig, LayerConfig, VariantConfig
from verdict.evaluation.engine import Assignment, Evaluator, Reason
from verdict.evaluation.hashing import hash

__all__ = [
    "Assignment",
    "ConditionError",
    "Evaluator",
    "ExperimentConfig",
    "LayerConfig",
    "Reason",
    "VariantConfig",
    "choose_variation",
    "compile_condition",
    "evaluate_condition",
    "get_bucket_ranges",
    "get_equal_weights",
    "hash",
    "in_namespace",
]
