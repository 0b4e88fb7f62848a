"""`engine_api`, the Assign path's one door to the engine's issue-17 API: its stand-ins follow
the rules (forced variants, fallback hashing) and its adapters accept the engine's likely shapes,
so the merge with the engine's work changes one module at most."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from verdict.evaluation import Assignment, Evaluator, ExperimentConfig, Reason, VariantConfig
from verdict_assignment.assign import engine_api


def _config(**extra: object) -> ExperimentConfig:
    variants = (VariantConfig("a", 0.5, '{"m": 1}'), VariantConfig("b", 0.5, '{"m": 2}'))
    return ExperimentConfig("e", variants, **extra)  # type: ignore[arg-type]


def test_forced_variants_are_answered_forced_with_their_payload() -> None:
    evaluator = Evaluator([_config()])
    natural = evaluator.assign("u", {}, ["e"], 0.0)[0]
    flipped = "b" if natural.variant_key == "a" else "a"
    [forced] = engine_api.assign(evaluator, "u", {}, ["e"], 0.0, {"e": flipped})
    assert (forced.variant_key, forced.reason, forced.in_experiment) == (
        flipped,
        Reason.FORCED,
        True,
    )
    assert forced.payload_json == ('{"m": 1}' if flipped == "a" else '{"m": 2}')


def test_the_fallback_attribute_is_hashed_when_the_primary_is_missing() -> None:
    evaluator = Evaluator([_config(hash_attribute="user_id")])
    results = evaluator.assign("u", {"device_id": "d"}, ["e"], 0.0)
    engine_api.with_fallback(
        evaluator, results, {"e": ("user_id", "device_id")}, "u", {"device_id": "d"}, 0.0
    )
    by_device = evaluator.assign("u", {"user_id": "d"}, ["e"], 0.0)
    assert results == by_device and results[0].reason is Reason.ASSIGNED
    assert engine_api.hashed_by(
        _config(hash_attribute="user_id"), {"device_id": "d"}, "device_id"
    ) == (
        "device_id",
        "d",
    )
    assert engine_api.hashed_by(_config(hash_attribute="user_id"), {}, "device_id") is None


@dataclass
class _Hashed:
    attribute: str
    value: str | None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (("user_id", "x"), ("user_id", "x")),
        (_Hashed("device_id", "d"), ("device_id", "d")),
        (_Hashed("user_id", None), None),
        (None, None),
    ],
)
def test_the_engines_hashed_by_is_accepted_as_a_pair_or_an_object(
    monkeypatch: pytest.MonkeyPatch, given: object, expected: object
) -> None:
    monkeypatch.setattr(engine_api, "_ENGINE_HASHED_BY", lambda config, attributes: given)
    assert engine_api.hashed_by(_config(), {}) == expected


@dataclass
class _Why:
    hash_attribute: str
    hash_value: str
    bucket: float | None
    layer_position: float | None
    failed_condition: object
    detail: str


def test_the_engines_explanations_become_the_proto() -> None:
    why = _Why("id", "u", 0.25, None, {"country": "DE"}, "bucket 0.25 ...")
    result = Assignment("e", None, -1, Reason.NOT_TARGETED, None, None, False)
    for item in (why, (result, why)):
        message = engine_api._to_proto(item)
        assert (message.hash_attribute, message.hash_value, message.bucket) == ("id", "u", 0.25)
        assert not message.HasField("layer_position")
        assert message.failed_condition == '{"country": "DE"}'
