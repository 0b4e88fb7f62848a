"""Benchmark: a full analysis of 50 metrics x 4 variants from sufficient statistics.

    python bench/bench_stats.py   # writes bench/results/stats.json

The metrics mix every type (means, proportions, ratios, CUPED means and ratios,
clustered p95 quantiles); the plan is sequential with Holm correction and SRM. A second
configuration adds what costs root finding: a one-sided sequential plan (the one-sided
mixture boundary) with the pooled proportion test (the score interval). Statistics are
built once, outside the timing.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from verdict_analysis import stats as vs

N_METRICS, VARIANTS, REPEATS, TARGET_MS = 50, ("control", "v1", "v2", "v3"), 200, 50.0


def build_metrics(seed: int = 7) -> list[vs.MetricInput]:
    rng = np.random.default_rng(seed)
    kinds = [
        vs.MetricType.MEAN,
        vs.MetricType.PROPORTION,
        vs.MetricType.RATIO,
        "cuped",
        "cuped_ratio",
        vs.MetricType.QUANTILE,
    ]
    metrics = []
    for i in range(N_METRICS):
        kind = kinds[i % len(kinds)]
        per_variant: dict[str, vs.MetricStats] = {}
        for v in VARIANTS:
            n = 2000
            if kind is vs.MetricType.MEAN:
                per_variant[v] = vs.SampleStats.from_values(rng.exponential(3.0, n))
                metric_type = vs.MetricType.MEAN
            elif kind is vs.MetricType.PROPORTION:
                per_variant[v] = vs.ProportionStats(n, int(rng.binomial(n, 0.2)))
                metric_type = vs.MetricType.PROPORTION
            elif kind is vs.MetricType.RATIO:
                den = rng.poisson(4.0, n) + 1.0
                per_variant[v] = vs.RatioStats.from_values(rng.binomial(den.astype(int), 0.3), den)
                metric_type = vs.MetricType.RATIO
            elif kind == "cuped":
                x = rng.gamma(2.0, 2.0, n)
                per_variant[v] = vs.CupedStats.from_values(x + rng.normal(0, 1, n), x)
                metric_type = vs.MetricType.MEAN
            elif kind == "cuped_ratio":
                den, pre = rng.poisson(4.0, n) + 1.0, rng.poisson(4.0, n) + 1.0
                per_variant[v] = vs.RatioCupedStats.from_values(
                    rng.binomial(den.astype(int), 0.3), den, rng.binomial(pre.astype(int), 0.3), pre
                )
                metric_type = vs.MetricType.RATIO
            else:
                ids = np.repeat(np.arange(n), 3)
                per_variant[v] = vs.quantile_stats_from_events(
                    rng.lognormal(0, 1, ids.size), ids, 0.95
                )
                metric_type = vs.MetricType.QUANTILE
        metrics.append(vs.MetricInput(f"metric_{i}", metric_type, "control", per_variant))
    return metrics


def _timings(metrics: list[vs.MetricInput], plan: vs.AnalysisPlan) -> list[float]:
    counts = dict.fromkeys(VARIANTS, 2000)
    analysis = vs.analyze_experiment(metrics, plan, assignment_counts=counts)  # warm-up
    assert analysis.n_tests == N_METRICS * (len(VARIANTS) - 1)
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        vs.analyze_experiment(metrics, plan, assignment_counts=counts)
        timings.append((time.perf_counter() - start) * 1000.0)
    return sorted(timings)


def main() -> None:
    metrics = build_metrics()
    plan = vs.AnalysisPlan(sequential=vs.SequentialDesign(), correction=vs.Correction.HOLM)
    timings = _timings(metrics, plan)
    rooted = _timings(
        metrics,
        vs.AnalysisPlan(
            sides=vs.Sides.GREATER,
            sequential=vs.SequentialDesign(),
            correction=vs.Correction.HOLM,
            proportion_test=vs.ProportionTest.POOLED,
        ),
    )
    result = {
        "benchmark": "analyze_experiment, 50 metrics x 4 variants, sequential + Holm + SRM",
        "metrics": N_METRICS,
        "variants": len(VARIANTS),
        "comparisons": N_METRICS * (len(VARIANTS) - 1),
        "repeats": REPEATS,
        "median_ms": round(statistics.median(timings), 3),
        "p95_ms": round(timings[int(0.95 * (REPEATS - 1))], 3),
        "min_ms": round(timings[0], 3),
        "max_ms": round(timings[-1], 3),
        "target_ms": TARGET_MS,
        "within_target": timings[int(0.95 * (REPEATS - 1))] <= TARGET_MS,
        "one_sided_sequential_pooled": {
            "median_ms": round(statistics.median(rooted), 3),
            "p95_ms": round(rooted[int(0.95 * (REPEATS - 1))], 3),
            "within_target": rooted[int(0.95 * (REPEATS - 1))] <= TARGET_MS,
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = Path(__file__).parent / "results" / "stats.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
