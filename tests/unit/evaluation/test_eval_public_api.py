"""The public surface of verdict.evaluation is what its docstring documents."""

from __future__ import annotations

import inspect
import re

import verdict.evaluation as evaluation

DOCUMENTED = {
    "hash",
    "get_equal_weights",
    "get_bucket_ranges",
    "choose_variation",
    "in_namespace",
    "compile_condition",
    "evaluate_condition",
    "ConditionError",
    "validate_condition",
    "ConditionProblem",
    "MAX_CONDITION_DEPTH",
    "VariantConfig",
    "LayerConfig",
    "ExperimentConfig",
    "Evaluator",
    "Assignment",
    "Reason",
    "FilterConfig",
    "Explanation",
    "hashed_by",
    "identity_problem",
}


def test_eval_all_lists_exactly_the_documented_names() -> None:
    assert set(evaluation.__all__) == DOCUMENTED
    assert len(evaluation.__all__) == len(DOCUMENTED)


def test_eval_module_docstring_names_every_public_name() -> None:
    doc = evaluation.__doc__ or ""
    named = set(re.findall(r"\b[A-Za-z_]+\b", doc))
    assert set(evaluation.__all__) <= named


def test_eval_every_public_name_resolves_and_has_a_docstring() -> None:
    for name in evaluation.__all__:
        obj = getattr(evaluation, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"


def test_eval_package_root_exports_the_client_entry_points() -> None:
    import verdict

    assert verdict.__all__ == ["AsyncTracker", "LocalEvaluator", "Tracker", "TrackerOptions"]
    for name in verdict.__all__:
        assert inspect.getdoc(getattr(verdict, name)), name
