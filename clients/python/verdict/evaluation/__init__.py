"""Pure local evaluation: GrowthBook-compatible bucketing and targeting, and the assignment engine.

No I/O and no gRPC: the assignment service and the Python client's local evaluator share this
package, so the two always agree. Public names:

Bucketing and targeting (GrowthBook's SDK specification):
    hash, get_equal_weights, get_bucket_ranges, choose_variation, in_namespace,
    compile_condition, evaluate_condition, ConditionError

Validation of conditions being written (strict, unlike evaluation):
    validate_condition, ConditionProblem, MAX_CONDITION_DEPTH

Assignment engine:
    VariantConfig, LayerConfig, FilterConfig, ExperimentConfig, Evaluator, Assignment, Reason,
    Explanation (`Evaluator.explain`)

For the assignment service (pure checks it calls around `Evaluator.assign`):
    hashed_by (the attribute and value an experiment hashes, recorded on exposures),
    identity_problem (an `id` attribute other than the unit id)
"""

from verdict.evaluation.buckets import (
    choose_variation,
    get_bucket_ranges,
    get_equal_weights,
    in_namespace,
)
from verdict.evaluation.conditions import ConditionError, compile_condition, evaluate_condition
from verdict.evaluation.config import ExperimentConfig, FilterConfig, LayerConfig, VariantConfig
from verdict.evaluation.eligibility import hashed_by, identity_problem
from verdict.evaluation.engine import Evaluator
from verdict.evaluation.explain import Explanation
from verdict.evaluation.hashing import hash
from verdict.evaluation.outcomes import Assignment, Reason
from verdict.evaluation.validation import (
    MAX_CONDITION_DEPTH,
    ConditionProblem,
    validate_condition,
)

__all__ = [
    "MAX_CONDITION_DEPTH",
    "Assignment",
    "ConditionError",
    "ConditionProblem",
    "Evaluator",
    "ExperimentConfig",
    "Explanation",
    "FilterConfig",
    "LayerConfig",
    "Reason",
    "VariantConfig",
    "choose_variation",
    "compile_condition",
    "evaluate_condition",
    "get_bucket_ranges",
    "get_equal_weights",
    "hash",
    "hashed_by",
    "identity_problem",
    "in_namespace",
    "validate_condition",
]
