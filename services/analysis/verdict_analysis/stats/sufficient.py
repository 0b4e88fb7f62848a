"""Additive sufficient statistics: frozen values that merge shards and days with ``+``.

Every field is a count or a sum over units, so the SQL layer computes them with
``COUNT`` and ``SUM`` over per-unit rows and two shards merge by adding fields
(the gbstats convention). ``from_values`` builds them from raw per-unit arrays
for tests and notebooks. Every statistics type names its count of units ``n_units``
(quantile statistics also have ``n_events``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Self

import numpy as np
from numpy.typing import ArrayLike

from ._numeric import sample_variance

__all__ = [
    "CupedStats",
    "ProportionStats",
    "RatioCupedStats",
    "RatioStats",
    "SampleStats",
]


class _Additive:
    """Field-wise ``+`` for frozen dataclasses of sums."""

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        values = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return type(self)(**values)


def _floats(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


@dataclass(frozen=True)
class SampleStats(_Additive):
    """Per-unit metric values ``y``: ``n_units = COUNT(*)``, ``sum = SUM(y)``,
    ``sum_sq = SUM(y*y)``."""

    n_units: int
    sum: float
    sum_sq: float

    @property
    def mean(self) -> float:
        return self.sum / self.n_units if self.n_units > 0 else 0.0

    @property
    def variance(self) -> float:
        """Unbiased sample variance (0 below two units)."""
        return sample_variance(self.n_units, self.sum, self.sum_sq)

    @classmethod
    def from_values(cls, values: ArrayLike) -> SampleStats:
        y = _floats(values)
        return cls(n_units=int(y.size), sum=float(y.sum()), sum_sq=float(y @ y))


@dataclass(frozen=True)
class ProportionStats(_Additive):
    """Per-unit binary outcome: ``n_units = COUNT(*)``, ``successes = SUM(converted)``."""

    n_units: int
    successes: int

    @property
    def mean(self) -> float:
        return self.successes / self.n_units if self.n_units > 0 else 0.0

    @property
    def variance(self) -> float:
        """Bernoulli variance ``p(1-p)`` (the maximum-likelihood form used by z-tests)."""
        p = self.mean
        return p * (1.0 - p)

    @classmethod
    def from_values(cls, values: ArrayLike) -> ProportionStats:
        y = np.asarray(values).ravel().astype(bool)
        return cls(n_units=int(y.size), successes=int(y.sum()))


@dataclass(frozen=True)
class RatioStats(_Additive):
    """Ratio of per-unit sums ``SUM(num)/SUM(den)``, clustered by unit.

    Per unit ``u`` the SQL layer first sums the events into ``num_u`` and ``den_u``
    (e.g. thumbs-up and responses of one user), then aggregates over units:
    ``n_units = COUNT(*)``, ``sum_num = SUM(num_u)``, ``sum_num_sq = SUM(num_u^2)``,
    ``sum_den = SUM(den_u)``, ``sum_den_sq = SUM(den_u^2)``, ``sum_num_den = SUM(num_u*den_u)``.
    """

    n_units: int
    sum_num: float
    sum_num_sq: float
    sum_den: float
    sum_den_sq: float
    sum_num_den: float

    @property
    def ratio(self) -> float:
        return self.sum_num / self.sum_den if self.sum_den != 0 else 0.0

    @classmethod
    def from_values(cls, numerators: ArrayLike, denominators: ArrayLike) -> RatioStats:
        a, b = _floats(numerators), _floats(denominators)
        return cls(
            n_units=int(a.size),
            sum_num=float(a.sum()),
            sum_num_sq=float(a @ a),
            sum_den=float(b.sum()),
            sum_den_sq=float(b @ b),
            sum_num_den=float(a @ b),
        )


@dataclass(frozen=True)
class CupedStats(_Additive):
    """Per-unit metric ``y`` with a pre-exposure covariate ``x`` (CUPED, Deng et al. 2013).

    ``n_units = COUNT(*)``, ``sum_y``, ``sum_y_sq``, ``sum_x``, ``sum_x_sq``, ``sum_xy`` are
    ``SUM`` of ``y``, ``y^2``, ``x``, ``x^2``, ``x*y`` over units; a unit without
    pre-exposure data has ``x = 0``.
    """

    n_units: int
    sum_y: float
    sum_y_sq: float
    sum_x: float
    sum_x_sq: float
    sum_xy: float

    @property
    def outcome(self) -> SampleStats:
        """The unadjusted metric."""
        return SampleStats(self.n_units, self.sum_y, self.sum_y_sq)

    @classmethod
    def from_values(cls, y: ArrayLike, x: ArrayLike) -> CupedStats:
        a, b = _floats(y), _floats(x)
        return cls(
            n_units=int(a.size),
            sum_y=float(a.sum()),
            sum_y_sq=float(a @ a),
            sum_x=float(b.sum()),
            sum_x_sq=float(b @ b),
            sum_xy=float(a @ b),
        )


@dataclass(frozen=True)
class RatioCupedStats(_Additive):
    """Ratio metric with the same ratio measured before exposure as covariate.

    Per unit: ``num_u, den_u`` (exposure period) and ``pre_num_u, pre_den_u`` (pre-period).
    Fields are ``SUM`` over units of each variable, its square, and every cross product.
    """

    n_units: int
    sum_num: float
    sum_num_sq: float
    sum_den: float
    sum_den_sq: float
    sum_num_den: float
    sum_pre_num: float
    sum_pre_num_sq: float
    sum_pre_den: float
    sum_pre_den_sq: float
    sum_pre_num_pre_den: float
    sum_num_pre_num: float
    sum_num_pre_den: float
    sum_den_pre_num: float
    sum_den_pre_den: float

    @property
    def outcome(self) -> RatioStats:
        """The unadjusted ratio metric."""
        return RatioStats(
            self.n_units,
            self.sum_num,
            self.sum_num_sq,
            self.sum_den,
            self.sum_den_sq,
            self.sum_num_den,
        )

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Sums vector and cross-product matrix of ``(num, den, pre_num, pre_den)``."""
        sums = np.array([self.sum_num, self.sum_den, self.sum_pre_num, self.sum_pre_den])
        cross = np.array(
            [
                [self.sum_num_sq, self.sum_num_den, self.sum_num_pre_num, self.sum_num_pre_den],
                [self.sum_num_den, self.sum_den_sq, self.sum_den_pre_num, self.sum_den_pre_den],
                [
                    self.sum_num_pre_num,
                    self.sum_den_pre_num,
                    self.sum_pre_num_sq,
                    self.sum_pre_num_pre_den,
                ],
                [
                    self.sum_num_pre_den,
                    self.sum_den_pre_den,
                    self.sum_pre_num_pre_den,
                    self.sum_pre_den_sq,
                ],
            ]
        )
        return sums, cross

    @classmethod
    def from_values(
        cls,
        numerators: ArrayLike,
        denominators: ArrayLike,
        pre_numerators: ArrayLike,
        pre_denominators: ArrayLike,
    ) -> RatioCupedStats:
        a, b, c, d = (
            _floats(v) for v in (numerators, denominators, pre_numerators, pre_denominators)
        )
        return cls(
            n_units=int(a.size),
            sum_num=float(a.sum()),
            sum_num_sq=float(a @ a),
            sum_den=float(b.sum()),
            sum_den_sq=float(b @ b),
            sum_num_den=float(a @ b),
            sum_pre_num=float(c.sum()),
            sum_pre_num_sq=float(c @ c),
            sum_pre_den=float(d.sum()),
            sum_pre_den_sq=float(d @ d),
            sum_pre_num_pre_den=float(c @ d),
            sum_num_pre_num=float(a @ c),
            sum_num_pre_den=float(a @ d),
            sum_den_pre_num=float(b @ c),
            sum_den_pre_den=float(b @ d),
        )
