"""Sample-ratio mismatch: fixed-horizon chi-square and an anytime-valid Bayes-factor test.

* Pearson's chi-square goodness of fit of the unit counts to the planned weights,
  ``k - 1`` degrees of freedom (Fabijan et al. 2019, "Diagnosing sample ratio
  mismatch in online controlled experiments", KDD).
* The Dirichlet-multinomial Bayes factor of Lindon & Malek (2022, "Anytime-valid
  inference for multinomial count data", NeurIPS): with prior ``Dirichlet(c * w)``,

      log BF = lgamma(c) - lgamma(c + n) + sum_i [lgamma(c w_i + x_i) - lgamma(c w_i)]
               - sum_i x_i log w_i

  and ``p = min(1, 1/BF)`` is an anytime-valid p-value: ``P(exists n: p_n <= alpha) <=
  alpha`` under the planned weights, so a monitor may stop automatically at
  ``p <= alpha``. The running minimum over looks is also valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import special

from .reasons import Reason

__all__ = ["SrmResult", "srm_test"]


@dataclass(frozen=True)
class SrmResult:
    """SRM check of unit counts against the planned weights."""

    p_value: float | None
    """Chi-square p-value (``None`` with a reason)."""
    anytime_p_value: float | None
    """Anytime-valid p-value (Lindon & Malek 2022)."""
    statistic: float | None
    """Pearson chi-square statistic."""
    expected_shares: tuple[float, ...]
    observed_shares: tuple[float, ...]
    mismatch: bool
    """True when the anytime-valid p-value is at or below ``alpha``."""
    reason: Reason | None = None


def srm_test(
    counts: Sequence[int],
    weights: Sequence[float] | None = None,
    *,
    alpha: float = 0.001,
    prior_concentration: float = 1_000.0,
) -> SrmResult:
    """Test ``counts`` (units per variant) against ``weights`` (equal when ``None``)."""
    k = len(counts)
    w = [1.0] * k if weights is None else [float(v) for v in weights]
    if k < 2 or len(w) != k or any(v <= 0.0 for v in w) or any(c < 0 for c in counts):
        return SrmResult(None, None, None, (), (), False, Reason.INVALID_INPUT)
    total_w = sum(w)
    shares = tuple(v / total_w for v in w)
    n = sum(counts)
    if n == 0:
        return SrmResult(None, None, None, shares, (), False, Reason.EMPTY_ARM)
    observed = tuple(c / n for c in counts)
    statistic = sum(
        (c - n * s) * (c - n * s) / (n * s) for c, s in zip(counts, shares, strict=True)
    )
    p_value = float(special.chdtrc(k - 1, statistic))
    c = prior_concentration
    log_bf = math.lgamma(c) - math.lgamma(c + n)
    for x, s in zip(counts, shares, strict=True):
        log_bf += math.lgamma(c * s + x) - math.lgamma(c * s) - x * math.log(s)
    anytime = min(1.0, math.exp(-log_bf)) if log_bf > -700.0 else 1.0
    return SrmResult(p_value, anytime, statistic, shares, observed, anytime <= alpha)
