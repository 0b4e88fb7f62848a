"""Reduced-size Monte-Carlo validation of verdict_analysis.stats (full size: bench/simulate.py).

Sizes (bench/simulate.py REDUCED): 500 A/A replications x 20 looks, 2,000 coverage
replications (500 for the quantile), 1,500 power replications. Tolerances are the
stated targets widened by three Monte-Carlo standard errors, so a correct method
fails by chance with probability below ~0.3% per check:

* sequential any-look false-positive rate <= alpha + 3 * sqrt(alpha(1-alpha)/R) (0.079),
  two-sided, CUPED and one-sided (greater, with the one-sided mixture boundary);
  the naive repeated test must show its inflation (>= 0.15; expected ~0.25);
* the one-sided boundary is narrower than the two-sided one (about 9 % at N*) and
  detects a true effect more often under continuous peeking;
* 95% coverage in 0.95 +- (0.01 + 3 * 0.0049), i.e. [0.925, 0.975];
* empirical power within 0.03 + 3 * 0.0103 (0.061) of the calculator's.
"""

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_simulation() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "verdict_bench_simulate", ROOT / "bench" / "simulate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SIM = _load_simulation()


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    out: dict[str, Any] = SIM.run(SIM.REDUCED)
    return out


def test_sequential_false_positive_rate_is_controlled_under_continuous_monitoring(
    result: dict[str, Any],
) -> None:
    aa = result["sequential_aa"]
    limit = aa["alpha"] + 3 * aa["mc_error_at_alpha"]
    assert aa["looks"] >= 20
    assert aa["rates"]["sequential"] <= limit
    assert aa["rates"]["sequential_cuped"] <= limit
    assert aa["rates"]["one_sided"] <= limit
    assert aa["rates"]["one_sided_old"] <= limit
    assert aa["rates"]["naive"] >= 0.15


def test_one_sided_boundary_is_narrower_and_more_powerful(result: dict[str, Any]) -> None:
    widths = {row["n"]: row["ratio"] for row in result["boundary_widths"]}
    assert all(0.85 < ratio < 0.96 for ratio in widths.values())
    assert widths[5000] == pytest.approx(0.911, abs=0.002)
    rates = result["one_sided_power"]["rates"]
    assert rates["one_sided"] > rates["one_sided_old"]


@pytest.mark.parametrize(
    "metric", ["mean", "proportion", "proportion_pooled", "ratio", "cuped_mean", "cuped_ratio"]
)
def test_interval_coverage_is_nominal(result: dict[str, Any], metric: str) -> None:
    cov = result["coverage"]
    tolerance = 0.01 + 3 * cov["mc_error_at_95"]
    assert abs(cov[metric] - 0.95) <= tolerance


def test_wilson_covers_a_small_arm_where_wald_did_not(result: dict[str, Any]) -> None:
    cov = result["coverage"]
    error = 3 * cov["mc_error_at_95"]
    assert cov["wilson_n20"] >= 0.95 - error
    assert cov["wald_n20"] < 0.92  # the Wald interval of one small arm undercovers (~0.88)


def test_quantile_outer_interval_covers_at_least_nominally(result: dict[str, Any]) -> None:
    cov = result["coverage"]
    error = math.sqrt(0.95 * 0.05 / cov["quantile_replications"])
    # The outer interval is conservative by construction (ranks rounded outwards).
    assert 0.95 - 3 * error <= cov["quantile_p95"] <= 0.995


@pytest.mark.parametrize("metric", ["mean", "proportion", "ratio"])
def test_empirical_power_matches_the_calculator(result: dict[str, Any], metric: str) -> None:
    pw = result["power"]
    row = pw[metric]
    assert abs(row["empirical"] - row["calculator"]) <= 0.03 + 3 * pw["mc_error_at_80"]
    assert row["calculator"] == pytest.approx(0.8, abs=0.002)


def test_reduced_run_is_fast(result: dict[str, Any]) -> None:
    assert result["seconds"] < 60
