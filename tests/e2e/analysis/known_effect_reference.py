"""Every figure of a snapshot, computed here from per-unit values with scipy and statsmodels.

Independent of the engine: fixed-horizon tests come from the libraries (statsmodels'
two-proportion Wald test and Wilson interval, scipy's Welch test and Student interval,
statsmodels' Holm); what no library offers (delta-method relative effects and ratios, the
normal-mixture confidence sequence, the anytime-valid SRM test, the Bayesian chance to beat
control) is written out below from the formulas in docs/STATISTICS.md and their papers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps
from statsmodels.stats import proportion as smp
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

ALPHA = 0.05
TUNING_N = 5_000
SRM_CONCENTRATION = 1_000.0


@dataclass(frozen=True)
class Figures:
    """One effect with its fixed-horizon and anytime-valid pairs."""

    estimate: float
    std_error: float
    lower: float
    upper: float
    p_value: float
    seq_lower: float
    seq_upper: float
    seq_p_value: float
    n: int
    """Units in the two arms (the mixture's n)."""


@dataclass(frozen=True)
class Arm:
    """One variant's estimate and its two-sided interval."""

    estimate: float
    lower: float
    upper: float


def rho(alpha: float = ALPHA, tuning_n: float = TUNING_N) -> float:
    """Howard et al. (2021)'s mixture scale tuned to be tightest at `tuning_n` units."""
    log_a = -2.0 * math.log(alpha)
    return math.sqrt((log_a + math.log(log_a + 1.0)) / tuning_n)


def mixture_boundary(alpha: float, n: int) -> float:
    """The two-sided normal-mixture boundary on z after n units (rho tuned at ALPHA)."""
    a = n * rho() ** 2
    return math.sqrt(2.0 * (1.0 + a) / a * math.log(math.sqrt(1.0 + a) / alpha))


def anytime_p(z: float, n: int) -> float:
    """1 / M(z) of the two-sided mixture martingale, capped at 1."""
    a = n * rho() ** 2
    log_m = -0.5 * math.log(1.0 + a) + z * z * a / (2.0 * (1.0 + a))
    return 1.0 if log_m <= 0 else math.exp(-log_m)


def with_sequential(
    estimate: float, se: float, lower: float, upper: float, p: float, n: int
) -> Figures:
    half = mixture_boundary(ALPHA, n) * se
    return Figures(
        estimate,
        se,
        lower,
        upper,
        p,
        estimate - half,
        estimate + half,
        anytime_p(estimate / se, n),
        n,
    )


def _normal(estimate: float, se: float, n: int, dist: object = sps.norm) -> Figures:
    q = dist.ppf(1 - ALPHA / 2)  # type: ignore[attr-defined]
    p = 2 * dist.sf(abs(estimate) / se)  # type: ignore[attr-defined]
    return with_sequential(estimate, se, estimate - q * se, estimate + q * se, p, n)


def relative(
    mean_c: float, var_c: float, mean_t: float, var_t: float, n: int, df: float
) -> Figures:
    """t / c - 1 by the delta method (Deng, Knoblich & Lu 2018); t with `df` when finite."""
    r = mean_t / mean_c - 1
    se = math.sqrt(var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4)
    return _normal(r, se, n, sps.t(df) if math.isfinite(df) else sps.norm)


# ---- per metric type --------------------------------------------------------------------


def proportion(control: np.ndarray, treatment: np.ndarray) -> tuple[Arm, Arm, Figures, Figures]:
    """Rates of 0/1 per unit: Wilson per arm, Wald z (statsmodels), relative delta method."""
    arms = []
    for x in (control, treatment):
        lo, hi = smp.proportion_confint(int(x.sum()), x.size, alpha=ALPHA, method="wilson")
        arms.append(Arm(x.mean(), lo, hi))
    cc, nc, ct, nt = int(control.sum()), control.size, int(treatment.sum()), treatment.size
    test = smp.test_proportions_2indep(
        ct, nt, cc, nc, method="wald", compare="diff", correction=False
    )
    lo, hi = smp.confint_proportions_2indep(
        ct, nt, cc, nc, method="wald", compare="diff", alpha=ALPHA
    )
    pc, pt = cc / nc, ct / nt
    var_c, var_t = pc * (1 - pc) / nc, pt * (1 - pt) / nt
    absolute = with_sequential(pt - pc, math.sqrt(var_c + var_t), lo, hi, test.pvalue, nc + nt)
    rel = relative(pc, var_c, pt, var_t, nc + nt, math.inf)
    return arms[0], arms[1], absolute, rel


def mean(control: np.ndarray, treatment: np.ndarray) -> tuple[Arm, Arm, Figures, Figures]:
    """Per-unit values: Student per arm, Welch (scipy, statsmodels), relative with Welch's df."""
    arms = []
    for x in (control, treatment):
        lo, hi = DescrStatsW(x).tconfint_mean(alpha=ALPHA)
        arms.append(Arm(x.mean(), lo, hi))
    welch = sps.ttest_ind(treatment, control, equal_var=False)
    lo, hi = CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).tconfint_diff(
        alpha=ALPHA, usevar="unequal"
    )
    var_c = control.var(ddof=1) / control.size
    var_t = treatment.var(ddof=1) / treatment.size
    n = control.size + treatment.size
    diff = treatment.mean() - control.mean()
    absolute = with_sequential(diff, math.sqrt(var_c + var_t), lo, hi, welch.pvalue, n)
    df = (var_c + var_t) ** 2 / (var_c**2 / (control.size - 1) + var_t**2 / (treatment.size - 1))
    rel = relative(control.mean(), var_c, treatment.mean(), var_t, n, df)
    return arms[0], arms[1], absolute, rel


def ratio(
    control: tuple[np.ndarray, np.ndarray], treatment: tuple[np.ndarray, np.ndarray]
) -> tuple[Arm, Arm, Figures, Figures]:
    """Sum a / sum b clustered by unit: variance of the linearised units (a - R b) / mean(b)."""
    estimates = []
    for num, den in (control, treatment):
        r = num.sum() / den.sum()
        linear = (num - r * den) / den.mean()
        estimates.append((r, linear.var(ddof=1) / num.size))
    z = sps.norm.ppf(1 - ALPHA / 2)
    arms = [Arm(r, r - z * math.sqrt(v), r + z * math.sqrt(v)) for r, v in estimates]
    (rc, vc), (rt, vt) = estimates
    n = control[0].size + treatment[0].size
    absolute = _normal(rt - rc, math.sqrt(vc + vt), n)
    return arms[0], arms[1], absolute, relative(rc, vc, rt, vt, n, math.inf)


# ---- across the experiment ------------------------------------------------------------------


def holm(p_values: list[float]) -> list[float]:
    return [float(p) for p in multipletests(p_values, method="holm")[1]]


def decision_interval(rel: Figures, p: float, p_adjusted: float) -> tuple[float, float]:
    """The relative anytime-valid interval at the level matching the adjusted p-value
    (alpha * p / p_adjusted), rho kept at the plan's alpha."""
    level = ALPHA * min(1.0, p / p_adjusted)
    half = mixture_boundary(level, rel.n) * rel.std_error
    return rel.estimate - half, rel.estimate + half


def chance_to_beat_control(rel: Figures, increase: bool) -> float:
    """Flat prior, Gaussian likelihood: P(effect better than 0)."""
    z = rel.estimate / rel.std_error
    return float(sps.norm.cdf(z if increase else -z))


def cohens_h(p_c: float, p_t: float) -> float:
    return float(smp.proportion_effectsize(p_t, p_c))


def cohens_d(control: np.ndarray, treatment: np.ndarray) -> float:
    nc, nt = control.size, treatment.size
    pooled = ((nc - 1) * control.var(ddof=1) + (nt - 1) * treatment.var(ddof=1)) / (nc + nt - 2)
    return float((treatment.mean() - control.mean()) / math.sqrt(pooled))


def srm(counts: list[int], weights: list[float]) -> tuple[float, float]:
    """Chi-square p (scipy) and the anytime-valid Dirichlet-multinomial p (Lindon & Malek)."""
    n = sum(counts)
    shares = np.array(weights) / sum(weights)
    chi = sps.chisquare(counts, f_exp=shares * n).pvalue
    c = SRM_CONCENTRATION
    log_bf = special.gammaln(c) - special.gammaln(c + n)
    for x, s in zip(counts, shares, strict=True):
        log_bf += special.gammaln(c * s + x) - special.gammaln(c * s) - x * math.log(s)
    return float(chi), float(min(1.0, math.exp(-log_bf)))
