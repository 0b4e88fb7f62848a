"""GrowthBook's own SDK cases, imported and assigned by Verdict: each unit gets GrowthBook's answer.

tests/vectors/growthbook-sdk-cases.json holds GrowthBook's `run` cases (`[name, context,
experiment, expectedValue, inExperiment, hashUsed]`) and its `feature` cases whose features hold
experiment rules. Each case's experiment (or features) goes through the importer
(`growthbook_import.convert`), the result through the evaluation core the assignment service and
the local evaluator share (`experiment_config_from_proto` + `Evaluator`), and the variant's
payload and `in_experiment` must equal GrowthBook's expected value and `inExperiment`.

Cases left out are listed below with the reason, and the lists are asserted exactly, so a case
cannot slip out unnoticed:
- CONTEXT_FEATURES: cases about the GrowthBook SDK's *context* (the URL, QA mode, forced
  variations, a disabled SDK), which is the caller's side of a request, not part of what an
  import carries;
- REFUSED_BY_IMPORT: cases whose experiment the importer declines with a reason, each checked to
  be refused for that reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from verdict.evaluation import Evaluator, Reason
from verdict.local import experiment_config_from_proto, saved_groups_from_proto
from verdict.v1 import experiment_pb2
from verdict_assignment.experiments.growthbook_import import Conversion, convert, path_of

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "growthbook-sdk-cases.json"
CASES: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))

CONTEXT_FEATURES: dict[str, str] = {
    "globally disabled": "enabled",
    "querystring force": "url",
    "querystring force with inactive": "url",
    "Force variation from context": "forcedVariations",
    "Skips experiments in QA mode": "qaMode",
    "Works in QA mode if forced in context": "qaMode",
    "Works in QA mode if forced in experiment": "qaMode",
    "include experiments when forced": "forcedVariations",
}
"""Case name -> the context setting it is about (Verdict's counterparts are per request:
AssignRequest.forced_variations, the experiment's qa_mode; URLs and a disabled SDK have none)."""

REFUSED_BY_IMPORT: dict[str, str] = {
    "single variation": "1 variation(s)",
    "negative forced variation": "a forced variation",
    "high forced variation": "a forced variation",
    "coverage take precendence over forced": "a forced variation",
    "Prerequisite condition passes": "prerequisites",
    "Prerequisite condition fails": "prerequisites",
}
"""Case name -> the start of the reason the importer gives for leaving the experiment out."""

NOT_ABOUT_AN_EXPERIMENT: dict[str, str] = {
    "Prerequisite experiment flag in target bucket, evaluate dependent flag": "childFlag",
    "Prerequisite experiment flag in target bucket, evaluate skip dependent flag if not "
    "bucketed": "childFlag",
}
"""Feature cases evaluating a feature that has no experiment rule (only prerequisites and force
rules): nothing of theirs is an imported experiment's answer."""


def context_feature(context: Mapping[str, Any]) -> str | None:
    """The SDK context setting a case depends on, if any."""
    if context.get("enabled") is False:
        return "enabled"
    if context.get("url"):
        return "url"
    if context.get("qaMode"):
        return "qaMode"
    if context.get("forcedVariations"):
        return "forcedVariations"
    return None


def _run_cases() -> list[Any]:
    return [case for case in CASES["run"] if context_feature(case[1]) is None]


def _feature_cases() -> list[Any]:
    return [case for case in CASES["feature"] if context_feature(case[1]) is None]


def _payload(context: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    return {**body, "savedGroups": context.get("savedGroups", {})}


def _evaluator(conversion: Conversion) -> Evaluator:
    """The imported experiments as a started import leaves them."""
    configs = []
    for imported in conversion.experiments:
        started = experiment_pb2.Experiment()
        started.CopyFrom(imported)
        if imported.key not in conversion.not_startable:
            started.status = experiment_pb2.EXPERIMENT_STATUS_RUNNING
        configs.append(experiment_config_from_proto(started))
    return Evaluator(configs, saved_groups_from_proto(conversion.saved_groups))


def _unit(attributes: Mapping[str, Any]) -> str:
    """The unit id Verdict is called with: GrowthBook's `id` attribute as a string."""
    value = attributes.get("id")
    return "" if value is None or value is False else str(value)


def _value(payload_json: str | None, like: Any) -> Any:
    """A variant payload as GrowthBook's variation value (non-objects were wrapped)."""
    payload = json.loads(payload_json or "null")
    return payload if isinstance(like, dict) else payload["value"]


def _case_id(case: Sequence[Any]) -> str:
    return str(case[0])


def test_every_run_case_is_assigned_refused_or_a_context_case() -> None:
    names = [case[0] for case in CASES["run"]]
    assert len(names) == 73 and len(set(names)) == len(names)
    context = {c[0]: context_feature(c[1]) for c in CASES["run"] if context_feature(c[1])}
    feature_context = {
        c[0]: context_feature(c[1]) for c in CASES["feature"] if context_feature(c[1])
    }
    assert {**context, **feature_context} == CONTEXT_FEATURES
    refused = {
        c[0]
        for c in _run_cases()
        if not convert(_payload(c[1], {"experiments": [c[2]]})).experiments
    }
    assert refused == set(REFUSED_BY_IMPORT)
    assert len(_run_cases()) - len(refused) == 60  # what the next test assigns


@pytest.mark.parametrize("case", _run_cases(), ids=_case_id)
def test_run_case_assigns_as_growthbook(case: list[Any]) -> None:
    name, context, gb_experiment, expected_value, in_experiment, hash_used = case
    conversion = convert(_payload(context, {"experiments": [gb_experiment]}))
    if name in REFUSED_BY_IMPORT:
        assert not conversion.experiments
        (reason,) = conversion.skipped
        assert reason.startswith(f"experiments[0]: {REFUSED_BY_IMPORT[name]}"), reason
        return
    (imported,) = conversion.experiments
    attributes = dict(context.get("attributes", {}))
    (got,) = _evaluator(conversion).assign(_unit(attributes), attributes, [imported.key])
    control = json.loads(experiment_config_from_proto(imported).variants[0].payload_json)
    payload = got.payload_json if got.in_experiment else json.dumps(control)
    assert (_value(payload, expected_value), got.in_experiment) == (expected_value, in_experiment)
    assert (got.reason is Reason.ASSIGNED) == hash_used


def _decide(
    conversion: Conversion, feature_key: str, rules: Sequence[Any], attributes: dict[str, Any]
) -> tuple[str, int, Any] | None:
    """GrowthBook's rule walk over what was imported: the first experiment rule that enrols the
    unit (a holdout's passthrough variant passes on) gives (key, variant index, payload); None
    when the walk reaches a rule that was not imported (a force rule decides from there on) or
    the end."""
    evaluator = _evaluator(conversion)
    by_origin = {conversion.origins[e.key]: e for e in conversion.experiments}
    for i, _rule in enumerate(rules):
        imported = by_origin.get(f"{path_of('features', feature_key)}.rules[{i}]")
        if imported is None:
            return None
        (got,) = evaluator.assign(_unit(attributes), attributes, [imported.key])
        if got.in_experiment and not (imported.holdout and got.variant_index != 0):
            return imported.key, got.variant_index, json.loads(got.payload_json or "null")
    return None


@pytest.mark.parametrize("case", _feature_cases(), ids=_case_id)
def test_feature_case_assigns_as_growthbook(case: list[Any]) -> None:
    name, context, feature_key, expected = case
    conversion = convert(_payload(context, {"features": context["features"]}))
    feature_path = path_of("features", feature_key)
    own = [e for e in conversion.experiments if conversion.origins[e.key].startswith(feature_path)]
    if name in NOT_ABOUT_AN_EXPERIMENT:
        assert NOT_ABOUT_AN_EXPERIMENT[name] == feature_key and not own
        return
    assert own, f"no experiment imported from {feature_path}: {conversion.skipped}"
    rules = context["features"][feature_key]["rules"]
    decided = _decide(conversion, feature_key, rules, dict(context.get("attributes", {})))
    if expected["source"] != "experiment":
        assert decided is None  # no imported experiment enrols the unit before GrowthBook's rule
        return
    result = expected["experimentResult"]
    assert decided is not None, "GrowthBook enrols the unit, Verdict does not"
    key, index, payload = decided
    assert conversion.origins[key].startswith(feature_path)
    assert (index, _value(json.dumps(payload), result["value"])) == (
        result["variationId"],
        result["value"],
    )
    assert expected["experiment"]["key"] in {key, experiment_by_key(conversion, key).seed}


def experiment_by_key(conversion: Conversion, key: str) -> experiment_pb2.Experiment:
    return next(e for e in conversion.experiments if e.key == key)


def test_feature_cases_left_out_are_listed() -> None:
    names = {case[0] for case in CASES["feature"]}
    assert len(CASES["feature"]) == 14
    assert set(NOT_ABOUT_AN_EXPERIMENT) <= names
    assert {
        n for n in names if context_feature(next(c for c in CASES["feature"] if c[0] == n)[1])
    } == {"include experiments when forced"}
