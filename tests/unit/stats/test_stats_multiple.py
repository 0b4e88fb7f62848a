"""Holm and Benjamini-Hochberg against statsmodels; matching adjusted intervals."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from verdict_analysis.stats import Correction, adjust_p_values, benjamini_hochberg, holm
from verdict_analysis.stats.multiple import adjusted_alpha


@pytest.mark.parametrize("seed", range(5))
def test_holm_and_bh_match_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 1, 150), rng.uniform(0, 0.01, 50)])
    rng.shuffle(p)
    assert holm(list(p)) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-6)
    assert benjamini_hochberg(list(p)) == pytest.approx(
        multipletests(p, method="fdr_bh")[1], abs=1e-6
    )


def test_ties_and_empty_input() -> None:
    assert holm([]) == [] and benjamini_hochberg([]) == []
    p = [0.01, 0.01, 0.04]
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    assert adjust_p_values(p, Correction.NONE) == p


def test_adjusted_level_reproduces_the_adjusted_decision() -> None:
    for p, p_adj in [(0.01, 0.04), (0.02, 0.06), (0.0, 0.0)]:
        level = adjusted_alpha(0.05, p, p_adj, 5)
        assert (p <= level) == (p_adj <= 0.05)
