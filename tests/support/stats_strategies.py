"""Hypothesis strategies of random (often degenerate) sufficient statistics and plans: every
metric type, effect scale, sides, sequential on/off, correction and proportion test. Shared by
the engine's consistency test and the snapshot's."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from verdict_analysis import stats as vs

units = st.one_of(st.integers(0, 3), st.integers(4, 60), st.integers(61, 2_000_000))
means = st.floats(-1e4, 1e4, allow_nan=False)
sds = st.one_of(st.just(0.0), st.floats(1e-3, 1e3))


@st.composite
def sample_stats(draw: st.DrawFn) -> vs.SampleStats:
    n, mean, sd = draw(units), draw(means), draw(sds)
    return vs.SampleStats(n, n * mean, max(n - 1, 0) * sd * sd + n * mean * mean)


@st.composite
def proportion_stats(draw: st.DrawFn) -> vs.ProportionStats:
    n = draw(units)
    rate = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    return vs.ProportionStats(n, min(n, round(rate * n)))


@st.composite
def ratio_stats(draw: st.DrawFn) -> vs.RatioStats:
    k = draw(units)
    ma, mb = draw(st.floats(0.0, 50.0)), draw(st.floats(0.0, 50.0))
    sa, sb, rho = draw(sds), draw(sds), draw(st.floats(-1.0, 1.0))
    return vs.RatioStats(
        k, k * ma, max(k - 1, 0) * sa * sa + k * ma * ma, k * mb,
        max(k - 1, 0) * sb * sb + k * mb * mb, max(k - 1, 0) * rho * sa * sb + k * ma * mb,
    )  # fmt: skip


@st.composite
def cuped_stats(draw: st.DrawFn) -> vs.CupedStats:
    n, my, mx = draw(units), draw(means), draw(means)
    sy, sx, rho = draw(sds), draw(sds), draw(st.floats(-1.0, 1.0))
    m1 = max(n - 1, 0)
    return vs.CupedStats(
        n, n * my, m1 * sy * sy + n * my * my, n * mx, m1 * sx * sx + n * mx * mx,
        m1 * rho * sx * sy + n * mx * my,
    )  # fmt: skip


@st.composite
def ratio_cuped_stats(draw: st.DrawFn) -> vs.RatioCupedStats:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = draw(st.integers(0, 300))
    p_u = rng.beta(2.0, 5.0, k)
    den, pre_den = rng.poisson(3.0, k) + 1.0, rng.poisson(3.0, k) * draw(st.sampled_from([0, 1]))
    return vs.RatioCupedStats.from_values(
        rng.binomial(den.astype(int), p_u), den, rng.binomial(pre_den.astype(int), p_u), pre_den
    )


@st.composite
def quantile_stats(draw: st.DrawFn) -> vs.QuantileStats:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = draw(st.integers(0, 200))
    counts = rng.poisson(2.0, k) + 1
    ids = np.repeat(np.arange(k), counts)
    values = rng.lognormal(0.0, 1.0, ids.size).round(draw(st.sampled_from([0, 3])))
    return vs.quantile_stats_from_events(values, ids, draw(st.sampled_from([0.5, 0.95])))


KINDS = {
    vs.MetricType.MEAN: st.one_of(st.just(sample_stats), st.just(cuped_stats)),
    vs.MetricType.PROPORTION: st.just(proportion_stats),
    vs.MetricType.RATIO: st.one_of(st.just(ratio_stats), st.just(ratio_cuped_stats)),
    vs.MetricType.QUANTILE: st.just(quantile_stats),
}


@st.composite
def metrics(draw: st.DrawFn) -> list[vs.MetricInput]:
    out = []
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(list(vs.MetricType)))
        strategy = draw(KINDS[kind])
        names = ["control", *(f"t{j}" for j in range(draw(st.integers(1, 3))))]
        margin = draw(st.one_of(st.none(), st.floats(0.0, 0.5)))
        out.append(
            vs.MetricInput(
                f"m{i}", kind, "control", {n: draw(strategy()) for n in names},
                draw(st.sampled_from(list(vs.Direction))), margin,
            )
        )  # fmt: skip
    return out


plans = st.builds(
    vs.AnalysisPlan,
    alpha=st.sampled_from([0.001, 0.01, 0.05, 0.1, 0.2]),
    sides=st.sampled_from(list(vs.Sides)),
    sequential=st.one_of(st.none(), st.builds(vs.SequentialDesign, st.integers(50, 200_000))),
    correction=st.sampled_from(list(vs.Correction)),
    effect_scale=st.sampled_from(list(vs.EffectScale)),
    proportion_test=st.sampled_from(list(vs.ProportionTest)),
)
