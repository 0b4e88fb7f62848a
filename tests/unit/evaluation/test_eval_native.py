"""The compiled accelerator (`_native.c`) answers exactly what the Python reference answers.

Random configurations cover every step of `eligibility.evaluate`: schedules, forced variants, hash
attributes of every JSON type, layers, shared and distinct conditions, coverage and weights,
explicit ranges, hash versions 1 and 2, ASCII and non-ASCII ids and seeds (the latter go through
the Python hashers from C), and the steps the accelerator calls back into Python for: fallback
attributes, filters, holdouts and QA mode. `Evaluator.explain` answers what `assign` answers.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from verdict.evaluation import (
    Evaluator,
    ExperimentConfig,
    FilterConfig,
    LayerConfig,
    Reason,
    VariantConfig,
    engine,
    hash,
)

CONDITIONS: list[dict[str, Any]] = [
    {"country": {"$in": ["US", "FR", "DE"]}},
    {"plan": {"$ne": "free"}},
    {"version": {"$vgte": "2.1.0"}},
    {"$or": [{"beta": True}, {"age": {"$gt": 30}}]},
    {"tags": {"$elemMatch": {"$eq": "vip"}}},
    {"country": {"$regex": "^(F|D)"}},
    {"id": {"$in": ["u-1", "u-2", "üñï"]}},
    {"org": {"$exists": True}},
]


def _random_features(rng: random.Random, i: int, n: int) -> dict[str, Any]:
    """Some of the steps beyond the hot path, each in about one experiment of five; experiment 0
    is sometimes a holdout the others name."""
    features: dict[str, Any] = {}
    if i == 0 and n == 2:
        return {"holdout": True}
    if rng.random() < 0.2:
        cuts = sorted(rng.choice([0.0, 0.1, 0.3, 0.5, 0.7, 1.0]) for _ in range(n + 1))
        features["ranges"] = list(itertools.pairwise(cuts))[::-1]  # n, not overlapping
    if rng.random() < 0.2:
        features["fallback_attribute"] = rng.choice(["org", "device", "age"])
    if rng.random() < 0.2:
        features["filters"] = [
            FilterConfig(
                rng.choice(["f", "fï", "exp-1"]),
                rng.choice([((0.0, 0.5),), ((0.2, 0.4), (0.6, 0.9)), ()]),
                attribute=rng.choice([None, None, "org", "device", "id"]),
                hash_version=rng.choice([1, 2]),
            )
            for _ in range(rng.randint(1, 2))
        ]
    if rng.random() < 0.1:
        features["qa_mode"] = True
    if i and rng.random() < 0.4:
        features["holdout_key"] = rng.choice(["exp-0", "exp-0", "missing"])
    return features


def _random_config(rng: random.Random, i: int) -> ExperimentConfig:
    n = 2 if i == 0 and rng.random() < 0.6 else rng.randint(2, 4)  # n == 2: a holdout
    weights = [rng.random() + 0.01 for _ in range(n)]
    total = sum(weights)
    variants = tuple(
        VariantConfig(f"v{j}", w / total, json.dumps({"arm": j}), is_control=j == 0)
        for j, w in enumerate(weights)
    )
    layer = None
    if rng.random() < 0.4:
        start = rng.choice([0.0, 0.25, 0.5])
        layer = LayerConfig(rng.choice(["l1", "l2", "lä"]), start, start + 0.5)
    forced = {"u-forced": "v1"} if rng.random() < 0.2 else {}
    return ExperimentConfig(
        key=f"exp-{i}",
        variants=variants,
        seed=rng.choice(["", "seed", "sëed", f"s{i}"]),
        hash_attribute=rng.choice(["id", "id", "org", "age"]),
        hash_version=rng.choice([1, 2, 2]),
        coverage=rng.choice([1.0, 0.8, 0.3]),
        condition=rng.choice([None, *CONDITIONS]),
        layer=layer,
        forced=forced,
        **rng.choice(
            [
                {},
                {"start_time": 100.0},
                {"start_time": 5e9},
                {"end_time": 200.0},
                {"start_time": 100.0, "end_time": 200.0},
            ]
            if i
            else [{}, {}, {}, {"end_time": 200.0}]  # the holdout, when it is one: mostly on
        ),
        running=rng.random() < 0.9,
        **_random_features(rng, i, n),
    )


def _random_attributes(rng: random.Random) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "country": rng.choice(["US", "FR", "DE", "BR", ""]),
        "plan": rng.choice(["free", "pro", None]),
        "version": rng.choice(["2.0.9", "2.1.0", "3.0.0-rc.1"]),
        "beta": rng.choice([True, False]),
        "age": rng.choice([12, 31, 0, 45.5, "40", None]),
        "tags": rng.choice([["vip"], ["new", "vip"], [], None]),
    }
    if rng.random() < 0.7:
        attributes["org"] = rng.choice(["acme", "ünï", 42, 0, True, "", [1], {"a": 1}])
    if rng.random() < 0.5:
        attributes["device"] = rng.choice(["d-1", "d-2", "dé-3", "", None, 7])
    return attributes


def test_eval_native_accelerator_was_built() -> None:
    assert engine.NATIVE_AVAILABLE, "run `make setup`: scripts/build_native.py builds it"
    assert Evaluator([]).native is True


@pytest.mark.parametrize("buckets", [True, False])
def test_eval_native_equals_python_on_random_configurations(buckets: bool) -> None:
    rng = random.Random(20261127)
    units = [f"u-{i}" for i in range(300)] + ["u-forced", "üñï", "", "ß-1"]
    checked = 0
    for _ in range(15):
        configs = [_random_config(rng, i) for i in range(12)]
        groups = {"beta": ["u-1"]}
        fast = Evaluator(configs, groups, native=True, buckets=buckets)
        slow = Evaluator(configs, groups, native=False, buckets=buckets)
        with_buckets = Evaluator(configs, groups, native=True)
        assert fast.native and not slow.native
        keys = [c.key for c in configs] + ["missing"]
        for unit in units:
            attributes = _random_attributes(rng)
            now = rng.choice([150.0, 1e9, 6e9])
            answer = fast.assign(unit, attributes, now=now)
            assert answer == slow.assign(unit, attributes, now=now)
            if not buckets:  # the same answers, less the bucket
                full = with_buckets.assign(unit, attributes, now=now)
                assert answer == [r._replace(bucket=None) for r in full]
            picked = rng.sample(keys, 3)
            assert fast.assign(unit, attributes, picked, now) == slow.assign(
                unit, attributes, picked, now
            )
            checked += 1
    assert checked == 15 * len(units)


def test_eval_native_reasons_cover_every_step() -> None:
    """The random run above is only meaningful if it reaches every outcome."""
    rng = random.Random(20261127)
    seen: set[Reason] = set()
    for _ in range(15):
        evaluator = Evaluator([_random_config(rng, i) for i in range(12)], native=True)
        for i in range(300):
            for result in evaluator.assign(f"u-{i}", _random_attributes(rng), now=1e9):
                seen.add(result.reason)
        seen.update(r.reason for r in evaluator.assign("u-forced", {}, now=1e9))
    assert seen >= {
        Reason.ASSIGNED,
        Reason.FORCED,
        Reason.NOT_TARGETED,
        Reason.NOT_IN_TRAFFIC,
        Reason.NOT_RUNNING,
        Reason.NOT_IN_LAYER,
        Reason.NO_HASH_ATTRIBUTE,
        Reason.HELD_OUT,
        Reason.FILTERED_OUT,
        Reason.QA_MODE,
    }


def test_eval_native_calls_python_only_for_experiments_that_need_it() -> None:
    """The hot path stays native: only the steps C does not implement go through Python."""
    configs = [
        ExperimentConfig("plain", (VariantConfig("a", 0.5), VariantConfig("b", 0.5))),
        ExperimentConfig(
            "ranged", (VariantConfig("a", 0), VariantConfig("b", 0)), ranges=((0, 0.2), (0.2, 1))
        ),
        ExperimentConfig("qa", (VariantConfig("a", 0.5), VariantConfig("b", 0.5)), qa_mode=True),
        ExperimentConfig(
            "held", (VariantConfig("a", 0.5), VariantConfig("b", 0.5)), holdout_key="missing"
        ),
    ]
    compiled = Evaluator(configs, native=True)._by_key
    assert [compiled[c.key].python is not None for c in configs] == [False, False, True, False]


@pytest.mark.parametrize("native", [True, False])
def test_eval_explain_answers_what_assign_answers(native: bool) -> None:
    rng = random.Random(17)
    for _ in range(6):
        configs = [_random_config(rng, i) for i in range(12)]
        evaluator = Evaluator(configs, {"beta": ["u-1"]}, native=native, buckets=rng.random() < 0.5)
        keys = [c.key for c in configs] + ["missing"]
        for i in range(150):
            unit, attributes = rng.choice([f"u-{i}", "u-forced", "üñï"]), _random_attributes(rng)
            now = rng.choice([150.0, 1e9])
            forced = rng.choice([None, {}, {"exp-0": "v0"}, {"exp-3": "v1", "nope": "v0"}])
            picked = rng.choice([None, rng.sample(keys, 4)])
            explained = evaluator.explain(unit, attributes, picked, now, forced)
            assigned = evaluator.assign(unit, attributes, picked, now, forced)
            assert [a for a, _ in explained] == assigned
            for result, why in explained:
                assert why.detail
                if result.reason is Reason.UNKNOWN_KEY:
                    continue
                if result.bucket is not None:
                    assert why.bucket == result.bucket
                if result.reason is Reason.NOT_TARGETED:
                    assert why.failed_condition
                else:
                    assert why.failed_condition == ""


def test_eval_native_experiments_with_equal_conditions_share_one_compiled_condition() -> None:
    """What lets the accelerator evaluate each distinct condition once per call."""
    shared = {"country": {"$in": ["FR"]}, "plan": "pro"}
    reordered = {"plan": "pro", "country": {"$in": ["FR"]}}
    configs = [
        ExperimentConfig(f"e{i}", (VariantConfig("a", 0.5), VariantConfig("b", 0.5)), condition=c)
        for i, c in enumerate([shared, reordered, {"plan": "pro"}])
    ]
    fast, slow = Evaluator(configs, native=True), Evaluator(configs, native=False)
    compiled = fast._by_key
    assert compiled["e0"].condition is compiled["e1"].condition
    assert compiled["e2"].condition is not compiled["e0"].condition
    for attributes in ({"country": "FR", "plan": "pro"}, {"country": "DE", "plan": "pro"}, {}):
        results = fast.assign("u-1", attributes)
        assert results == slow.assign("u-1", attributes)
    assert [r.reason for r in fast.assign("u-1", {"country": "DE", "plan": "pro"})] == [
        Reason.NOT_TARGETED,
        Reason.NOT_TARGETED,
        Reason.ASSIGNED,
    ]


def test_eval_native_refuses_when_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_native", None)
    with pytest.raises(RuntimeError, match="not built"):
        Evaluator([], native=True)
    assert Evaluator([]).native is False


# A few of GrowthBook's hash vectors (tests/vectors; all of them run through `hash` in
# test_eval_spec_vectors.py), and random ASCII text against the Python reference.
HASH_CASES = [
    ("", "a", 1, 0.22),
    ("", "b", 1, 0.077),
    ("b", "a", 1, 0.946),
    ("ef", "d", 1, 0.652),
    ("asdf", "8952klfjas09ujk", 1, 0.549),
    ("", "123", 1, 0.011),
    ("", '___)((*":&', 1, 0.563),
    ("seed", "a", 2, 0.0505),
]


@pytest.mark.parametrize("case", HASH_CASES, ids=repr)
def test_eval_native_hash_matches_the_spec(case: tuple[str, str, int, float]) -> None:
    seed, value, version, expected = case
    assert engine._native.hash_ascii(seed, value, version) == expected


def test_eval_native_hash_equals_the_python_hash_on_random_text() -> None:
    rng = random.Random(3)
    alphabet = "abcXYZ019-_.:@ "
    for _ in range(5000):
        seed = "".join(rng.choices(alphabet, k=rng.randint(0, 12)))
        value = "".join(rng.choices(alphabet, k=rng.randint(1, 40)))
        for version in (1, 2):
            assert engine._native.hash_ascii(seed, value, version) == hash(seed, value, version)
    with pytest.raises(ValueError):
        engine._native.hash_ascii("s", "ü", 2)
