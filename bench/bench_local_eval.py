"""Benchmark of local evaluation: single-experiment throughput and a 20-experiment assign().

Writes bench/results/local_eval.json. Run: `.venv/bin/python bench/bench_local_eval.py`.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from verdict.evaluation import Evaluator, ExperimentConfig, VariantConfig, hashing

RESULTS = Path(__file__).resolve().parent / "results" / "local_eval.json"
UNITS = [f"user-{i}" for i in range(10_000)]
COUNTRIES = ["US", "CA", "GB", "FR", "DE", "ES", "IT", "NL", "BE", "CH", "AT", "PL"]


def condition(i: int) -> dict[str, object]:
    """A distinct condition per experiment (nothing shared between them to cache)."""
    return {
        "country": {"$in": [*COUNTRIES[i % 4 : i % 4 + 6], "FR"]},
        "plan": {"$ne": f"free-{i}"},
        "app_version": {"$vgte": f"2.{i % 3}.0"},
    }


ATTRIBUTES = {"country": "FR", "plan": "pro", "app_version": "2.4.1", "org_id": "acme"}


def _variants() -> tuple[VariantConfig, ...]:
    return (
        VariantConfig("control", 0.5, '{"model": "gpt-4o-mini"}', is_control=True),
        VariantConfig("treatment", 0.5, '{"model": "gpt-4o"}'),
    )


def _best_of(repeats: int, run: Callable[[], int]) -> list[float]:
    """Seconds per operation over `repeats` runs."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        operations = run()
        timings.append((time.perf_counter() - start) / operations)
    return timings


def bench_single(repeats: int = 7, rounds: int = 10) -> dict[str, float]:
    evaluator = Evaluator([ExperimentConfig("single", _variants())])
    keys = ["single"]
    assign = evaluator.assign

    def run() -> int:
        for _ in range(rounds):
            for unit in UNITS:
                assign(unit, ATTRIBUTES, keys)
        return rounds * len(UNITS)

    per_op = _best_of(repeats, run)
    return {
        "assignments_per_second_best": 1 / min(per_op),
        "assignments_per_second_median": 1 / statistics.median(per_op),
        "us_per_assignment_median": statistics.median(per_op) * 1e6,
    }


def bench_twenty(repeats: int = 7, rounds: int = 2) -> dict[str, float]:
    experiments = [
        ExperimentConfig(f"exp-{i}", _variants(), coverage=0.8, condition=condition(i))
        for i in range(20)
    ]
    evaluator = Evaluator(experiments)
    assign = evaluator.assign
    sample = assign(UNITS[0], ATTRIBUTES)
    assert len(sample) == 20 and all(a.reason.name != "NOT_TARGETED" for a in sample)

    def run() -> int:
        for _ in range(rounds):
            for unit in UNITS:
                assign(unit, ATTRIBUTES)
        return rounds * len(UNITS)

    per_call = _best_of(repeats, run)
    return {
        "experiments": 20,
        "us_per_assign_best": min(per_call) * 1e6,
        "us_per_assign_median": statistics.median(per_call) * 1e6,
        "us_per_assign_max": max(per_call) * 1e6,
    }


def main() -> None:
    results = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "fnv_hash_fast": hashing._fast_fnv1a_32 is not None,
        "single_experiment": bench_single(),
        "twenty_experiments_with_conditions": bench_twenty(),
        "targets": {"assignments_per_second_min": 50_000, "us_per_assign_20_max": 100},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
