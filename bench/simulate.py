"""Monte-Carlo validation of verdict_analysis.stats (A/A sequential error, coverage, power).

Data are generated with numpy in blocks; every analysis goes through the public API
on sufficient statistics, exactly as the service will call it.

    python bench/simulate.py            # full size, writes bench/results/simulation.json
    python bench/simulate.py --reduced  # the size run by tests/reliability
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from verdict_analysis import stats as vs

ALPHA = 0.05
FULL = {"aa_replications": 2000, "looks": 20, "coverage_replications": 10_000,
        "quantile_replications": 2000, "power_replications": 4000}  # fmt: skip
REDUCED = {"aa_replications": 500, "looks": 20, "coverage_replications": 2000,
           "quantile_replications": 500, "power_replications": 1500}  # fmt: skip


def mc_error(p: float, n: int) -> float:
    """Monte-Carlo standard error of a proportion ``p`` estimated from ``n`` replications."""
    return math.sqrt(p * (1.0 - p) / n)


def _sample(y: np.ndarray) -> vs.SampleStats:
    return vs.SampleStats(int(y.size), float(y.sum()), float(y @ y))


def _one_sided_hits(
    c: vs.SampleStats, t: vs.SampleStats, design: vs.SequentialDesign
) -> tuple[bool, bool]:
    """(one-sided boundary rejects "greater", two-sided boundary read one-sidedly rejects)."""
    one = vs.welch_t_test(c, t, alpha=ALPHA, sides=vs.Sides.GREATER, sequential=design).absolute
    two = vs.welch_t_test(c, t, alpha=ALPHA, sequential=design).absolute
    assert one is not None and one.sequential_p_value is not None
    assert two is not None and two.sequential_p_value is not None
    return one.sequential_p_value <= ALPHA, two.sequential_p_value <= ALPHA and two.estimate > 0


def sequential_aa(reps: int, looks: int, per_look: int, seed: int) -> dict[str, Any]:
    """A/A tests analysed at ``looks`` equally spaced looks: any-look rejection rates."""
    rng = np.random.default_rng(seed)
    design = vs.SequentialDesign(tuning_sample_size=5000)
    n = looks * per_look
    rejected = {"naive": 0, "sequential": 0, "sequential_cuped": 0, "one_sided": 0,
                "one_sided_old": 0}  # fmt: skip
    for _ in range(reps):
        x = rng.gamma(2.0, 2.0, (2, n))  # pre-exposure covariate
        y = 1.0 + 0.7 * x + rng.exponential(2.0, (2, n))  # skewed outcome, no effect
        hit = dict.fromkeys(rejected, False)
        for k in range(per_look, n + 1, per_look):
            c, t = _sample(y[0, :k]), _sample(y[1, :k])
            res = vs.welch_t_test(c, t, alpha=ALPHA, sequential=design)
            eff = res.absolute
            assert eff is not None and eff.sequential_p_value is not None
            hit["naive"] |= eff.p_value <= ALPHA
            hit["sequential"] |= eff.sequential_p_value <= ALPHA
            cc = vs.CupedStats.from_values(y[0, :k], x[0, :k])
            ct = vs.CupedStats.from_values(y[1, :k], x[1, :k])
            cuped = vs.cuped_test(cc, ct, alpha=ALPHA, sequential=design).absolute
            assert cuped is not None and cuped.sequential_p_value is not None
            hit["sequential_cuped"] |= cuped.sequential_p_value <= ALPHA
            one, old = _one_sided_hits(c, t, design)
            hit["one_sided"] |= one
            hit["one_sided_old"] |= old
        for key, value in hit.items():
            rejected[key] += int(value)
    rates = {key: value / reps for key, value in rejected.items()}
    return {"replications": reps, "looks": looks, "units_per_arm": n, "alpha": ALPHA,
            "rates": rates, "mc_error_at_alpha": mc_error(ALPHA, reps)}  # fmt: skip


def one_sided_power(reps: int, looks: int, per_look: int, seed: int) -> dict[str, Any]:
    """Any-look rejection rate of "treatment greater" under a true effect: one-sided boundary
    against the two-sided boundary read one-sidedly (the engine's former behaviour)."""
    rng = np.random.default_rng(seed)
    design = vs.SequentialDesign(tuning_sample_size=5000)
    n = looks * per_look
    hits = {"one_sided": 0, "one_sided_old": 0}
    for _ in range(reps):
        y = rng.normal(0.0, 1.0, (2, n)) + np.array([[0.0], [0.08]])
        one = old = False
        for k in range(per_look, n + 1, per_look):
            a, b = _one_sided_hits(_sample(y[0, :k]), _sample(y[1, :k]), design)
            one, old = one or a, old or b
        hits["one_sided"] += one
        hits["one_sided_old"] += old
    return {"replications": reps, "looks": looks, "units_per_arm": n, "effect_sd": 0.08,
            "rates": {k: v / reps for k, v in hits.items()}}  # fmt: skip


def boundary_widths(alpha: float = ALPHA, n_star: int = 5000) -> list[dict[str, float]]:
    """One-sided over two-sided mixture boundary (each tuned at its own optimum) by ``n``."""
    rows = []
    for n in (500, 2000, 5000, 20_000, 100_000):
        one = vs.mixture_boundary(alpha, n, vs.mixture_rho(alpha, n_star, one_sided=True),
                                  one_sided=True)  # fmt: skip
        two = vs.mixture_boundary(alpha, n, vs.mixture_rho(alpha, n_star))
        rows.append({"n": n, "two_sided": two, "one_sided": one, "ratio": one / two})
    return rows


def _covers(result: vs.TestResult, truth: float) -> bool:
    eff = result.absolute
    assert eff is not None, result.reason
    return eff.ci_lower <= truth <= eff.ci_upper


def coverage(reps: int, quantile_reps: int, seed: int) -> dict[str, Any]:
    """Share of 95% intervals of the absolute effect that contain the true effect."""
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(["mean", "proportion", "proportion_pooled", "ratio", "cuped_mean",
                          "cuped_ratio", "wilson_n20", "wald_n20"], 0)  # fmt: skip
    n = 1000
    for _ in range(reps):
        # Means: skewed (exponential) outcome, true difference 0.2.
        y = rng.exponential(2.0, (2, n)) + np.array([[0.0], [0.2]])
        hits["mean"] += _covers(vs.welch_t_test(_sample(y[0]), _sample(y[1])), 0.2)
        # Proportions: 10% vs 11%.
        succ = rng.binomial(n, [0.10, 0.11])
        res = vs.two_proportion_z_test(
            vs.ProportionStats(n, int(succ[0])), vs.ProportionStats(n, int(succ[1]))
        )
        hits["proportion"] += _covers(res, 0.01)
        pooled = vs.two_proportion_z_test(
            vs.ProportionStats(n, int(succ[0])), vs.ProportionStats(n, int(succ[1])),
            test=vs.ProportionTest.POOLED,
        )  # fmt: skip
        hits["proportion_pooled"] += _covers(pooled, 0.01)
        # One small arm (n = 20, rate 0.1): Wilson against the Wald interval it replaced.
        small = vs.ProportionStats(20, int(rng.binomial(20, 0.1)))
        wilson = vs.wilson_interval(small)
        hits["wilson_n20"] += wilson.lower <= 0.1 <= wilson.upper
        half = 1.959963984540054 * math.sqrt(small.variance / 20)
        hits["wald_n20"] += abs(small.mean - 0.1) <= half
        # Ratio: thumbs-up per response, clustered responses; unit propensity p_u ~ Beta(3, 7)
        # drives both periods; the treatment multiplies it by 1.05 after exposure only.
        ratio_stats, cuped_ratio = [], []
        for lift in (1.0, 1.05):
            p_u = rng.beta(3.0, 7.0, n)
            den = rng.poisson(4.0, n) + 1.0
            num = rng.binomial(den.astype(np.int64), np.minimum(1.0, lift * p_u)).astype(float)
            pre_den = rng.poisson(4.0, n) + 1.0
            pre_num = rng.binomial(pre_den.astype(np.int64), p_u).astype(float)
            ratio_stats.append(vs.RatioStats.from_values(num, den))
            cuped_ratio.append(vs.RatioCupedStats.from_values(num, den, pre_num, pre_den))
        truth = 0.3 * 0.05
        hits["ratio"] += _covers(vs.ratio_test(*ratio_stats), truth)
        hits["cuped_ratio"] += _covers(vs.ratio_cuped_test(*cuped_ratio), truth)
        # CUPED mean: y = 1 + 0.8 x + noise (+0.1 in treatment).
        x = rng.gamma(2.0, 2.0, (2, n))
        y = 1.0 + 0.8 * x + rng.exponential(1.0, (2, n)) + np.array([[0.0], [0.1]])
        res = vs.cuped_test(
            vs.CupedStats.from_values(y[0], x[0]), vs.CupedStats.from_values(y[1], x[1])
        )
        hits["cuped_mean"] += _covers(res, 0.1)
    result: dict[str, Any] = {key: value / reps for key, value in hits.items()}
    # Quantile (p95), events clustered by unit: log y = unit effect + event noise, so the
    # event distribution is lognormal(0, sqrt(0.5^2 + 0.7^2)) and p95 is known exactly.
    sigma = math.sqrt(0.5**2 + 0.7**2)
    p95 = math.exp(1.6448536269514722 * sigma)
    q_hits, units = 0, 1000
    for _ in range(quantile_reps):
        arms = []
        for scale in (1.0, 1.1):
            counts = rng.poisson(3.0, units) + 1
            ids = np.repeat(np.arange(units), counts)
            values = scale * np.exp(rng.normal(0, 0.5, units)[ids] + rng.normal(0, 0.7, ids.size))
            arms.append(vs.quantile_stats_from_events(values, ids, 0.95))
        q_hits += _covers(vs.quantile_test(*arms), 0.1 * p95)
    result["quantile_p95"] = q_hits / quantile_reps
    result["replications"] = reps
    result["quantile_replications"] = quantile_reps
    result["mc_error_at_95"] = mc_error(0.95, reps)
    return result


def power(reps: int, seed: int) -> dict[str, Any]:
    """Empirical power at the calculator's sample size for 80% power."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"replications": reps, "target": 0.8}
    # Means: normal outcome mean 10, sd 4, MDE 3% relative.
    base_m = vs.MeanBaseline(10.0, 4.0)
    n_m = vs.sample_size(base_m, 0.03, relative=True).per_arm
    # Proportions: 20% baseline, +2 points.
    base_p = vs.ProportionBaseline(0.20)
    n_p = vs.sample_size(base_p, 0.02).per_arm
    # Ratio: clustered responses; baseline from a large historical sample.
    hist_den = rng.poisson(4.0, 200_000) + 1.0
    hist_num = rng.binomial(hist_den.astype(np.int64), rng.beta(3.0, 7.0, 200_000)).astype(float)
    base_r = vs.RatioBaseline.from_stats(vs.RatioStats.from_values(hist_num, hist_den))
    n_r = vs.sample_size(base_r, 0.01).per_arm
    assert n_m is not None and n_p is not None and n_r is not None
    rejections = {"mean": 0, "proportion": 0, "ratio": 0}
    for _ in range(reps):
        y = rng.normal(10.0, 4.0, (2, n_m)) + np.array([[0.0], [0.3]])
        res = vs.welch_t_test(_sample(y[0]), _sample(y[1]))
        rejections["mean"] += res.absolute is not None and res.absolute.p_value <= ALPHA
        succ = rng.binomial(n_p, [0.20, 0.22])
        res = vs.two_proportion_z_test(
            vs.ProportionStats(n_p, int(succ[0])), vs.ProportionStats(n_p, int(succ[1]))
        )
        rejections["proportion"] += res.absolute is not None and res.absolute.p_value <= ALPHA
        arms = []
        for a in (3.0, 0.31 * 7.0 / 0.69):  # mean propensity 0.30 -> 0.31
            p_u = rng.beta(a, 7.0, n_r)
            den = rng.poisson(4.0, n_r) + 1.0
            num = rng.binomial(den.astype(np.int64), p_u).astype(float)
            arms.append(vs.RatioStats.from_values(num, den))
        res = vs.ratio_test(*arms)
        rejections["ratio"] += res.absolute is not None and res.absolute.p_value <= ALPHA
    ratio_delta = 0.01
    calculator = {
        "mean": vs.achieved_power(base_m, 0.3, n_m),
        "proportion": vs.achieved_power(base_p, 0.02, n_p),
        "ratio": vs.achieved_power(base_r, ratio_delta, n_r),
    }
    for key, n in (("mean", n_m), ("proportion", n_p), ("ratio", n_r)):
        out[key] = {
            "n_per_arm": n,
            "empirical": rejections[key] / reps,
            "calculator": calculator[key],
        }
    out["mc_error_at_80"] = mc_error(0.8, reps)
    return out


def run(sizes: dict[str, int], seed: int = 20240601) -> dict[str, Any]:
    start = time.perf_counter()
    result = {
        "sequential_aa": sequential_aa(sizes["aa_replications"], sizes["looks"], 100, seed),
        "coverage": coverage(
            sizes["coverage_replications"], sizes["quantile_replications"], seed + 1
        ),
        "power": power(sizes["power_replications"], seed + 2),
        "one_sided_power": one_sided_power(
            sizes["aa_replications"] // 2, sizes["looks"], 100, seed + 3
        ),
        "boundary_widths": boundary_widths(),
    }
    result["seconds"] = time.perf_counter() - start
    return result


def markdown(result: dict[str, Any]) -> str:
    aa, cov, pw = result["sequential_aa"], result["coverage"], result["power"]
    op = result["one_sided_power"]
    lines = [
        f"A/A, {aa['replications']:,} replications x {aa['looks']} looks "
        f"({aa['units_per_arm']:,} units per arm at the last look), alpha = {aa['alpha']}, "
        f"Monte-Carlo error {aa['mc_error_at_alpha']:.4f}:",
        "",
        "| Procedure | Any-look false-positive rate |",
        "|---|---|",
        f"| Naive fixed-horizon t-test at every look | {aa['rates']['naive']:.4f} |",
        f"| Normal-mixture confidence sequence (N* = 5,000) | {aa['rates']['sequential']:.4f} |",
        f"| Same, CUPED-adjusted | {aa['rates']['sequential_cuped']:.4f} |",
        f"| One-sided (greater), one-sided mixture boundary | {aa['rates']['one_sided']:.4f} |",
        f"| One-sided (greater), two-sided boundary (former) | "
        f"{aa['rates']['one_sided_old']:.4f} |",
        "",
        "Mixture boundary (critical z), alpha = 0.05, N* = 5,000:",
        "",
        "| n (both arms) | Two-sided | One-sided | Ratio |",
        "|---|---|---|---|",
        *(
            f"| {w['n']:,} | {w['two_sided']:.4f} | {w['one_sided']:.4f} | {w['ratio']:.4f} |"
            for w in result["boundary_widths"]
        ),
        "",
        f"One-sided sequential power (greater), effect {op['effect_sd']} sd, "
        f"{op['replications']:,} replications x {op['looks']} looks, "
        f"{op['units_per_arm']:,} units per arm at the last look: one-sided boundary "
        f"{op['rates']['one_sided']:.4f}, two-sided boundary read one-sidedly "
        f"{op['rates']['one_sided_old']:.4f}.",
        "",
        f"95% interval coverage of the true effect, {cov['replications']:,} replications "
        f"(quantile: {cov['quantile_replications']:,}); "
        f"Monte-Carlo error {cov['mc_error_at_95']:.4f}:",
        "",
        "| Metric | Coverage |",
        "|---|---|",
    ]
    names = {"mean": "Mean (Welch, exponential data)", "proportion": "Proportion (z, unpooled)",
             "proportion_pooled": "Proportion (pooled score, Farrington-Manning)",
             "ratio": "Ratio, clustered (delta method)", "cuped_mean": "CUPED mean",
             "cuped_ratio": "CUPED ratio", "quantile_p95": "p95, clustered (outer CI)",
             "wilson_n20": "One rate, n = 20, p = 0.1: Wilson",
             "wald_n20": "One rate, n = 20, p = 0.1: Wald (replaced)"}  # fmt: skip
    lines += [f"| {label} | {cov[key]:.4f} |" for key, label in names.items()]
    lines += [
        "",
        f"Power at the calculator's sample size, {pw['replications']:,} replications "
        f"(Monte-Carlo error {pw['mc_error_at_80']:.4f}):",
        "",
        "| Metric | n per arm | Calculator | Empirical |",
        "|---|---|---|---|",
    ]
    for key in ("mean", "proportion", "ratio"):
        row = pw[key]
        lines.append(
            f"| {key} | {row['n_per_arm']:,} | {row['calculator']:.4f} | {row['empirical']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reduced", action="store_true", help="the size run by make test")
    parser.add_argument(
        "--output", default=str(Path(__file__).parent / "results" / "simulation.json")
    )
    args = parser.parse_args()
    sizes = REDUCED if args.reduced else FULL
    result = run(sizes)
    result["sizes"] = sizes
    if not args.reduced:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\n({result['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
