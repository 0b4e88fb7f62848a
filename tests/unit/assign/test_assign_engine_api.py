"""`engine_api`: the engine's explanations as the proto's, one per result."""

from __future__ import annotations

from verdict.evaluation import (
    Evaluator,
    ExperimentConfig,
    Explanation,
    LayerConfig,
    Reason,
    VariantConfig,
)
from verdict_assignment.assign import engine_api


def _config(**extra: object) -> ExperimentConfig:
    variants = (VariantConfig("a", 0.5, '{"m": 1}'), VariantConfig("b", 0.5, '{"m": 2}'))
    return ExperimentConfig("e", variants, **extra)  # type: ignore[arg-type]


def test_explanations_come_one_per_result_with_bucket_and_layer_position() -> None:
    evaluator = Evaluator(
        [
            _config(layer=LayerConfig("l", 0.0, 1.0)),
            ExperimentConfig(
                "f", (VariantConfig("a", 0.5), VariantConfig("b", 0.5)), condition={"c": "FR"}
            ),
        ]
    )
    attributes = {"id": "u", "c": "DE"}
    results = evaluator.assign("u", attributes, ["e", "f"], 0.0)
    explained = engine_api.explain(evaluator, "u", attributes, ["e", "f"], 0.0, {})
    assert len(explained) == len(results) == 2
    first, second = explained
    assert first.hash_attribute == "id" and first.hash_value == "u"
    assert first.HasField("bucket") and first.HasField("layer_position")
    assert results[1].reason is Reason.NOT_TARGETED
    assert second.failed_condition and not second.HasField("bucket")


def test_an_explanation_without_a_bucket_leaves_the_optional_fields_unset() -> None:
    message = engine_api.to_proto(Explanation("id", "", None, None, "", "no value"))
    assert not message.HasField("bucket") and not message.HasField("layer_position")
    assert message.detail == "no value"
    message = engine_api.to_proto(Explanation("id", "u", 0.0, 0.25, "", ""))
    assert message.HasField("bucket") and message.bucket == 0.0 and message.layer_position == 0.25
