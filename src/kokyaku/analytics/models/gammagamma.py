"""Gamma-Gamma spend model (Fader & Hardie, "The Gamma-Gamma model of monetary value", note 025)."""

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import digamma, gammaln

from kokyaku.analytics.models.base import FitError, FloatArray, maximise, wsum

_NAMES = ("p", "q", "gamma")


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma: spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, gamma) across customers."""

    p: float
    q: float
    gamma: float

    @classmethod
    def fit(cls, x: ArrayLike, m: ArrayLike, weights: ArrayLike | None = None) -> "GammaGamma":
        """Maximum likelihood fit on repeat frequency x and mean repeat spend m; uses customers with x > 0."""
        xa, ma, wa = _arrays(x, m, weights)
        use = (xa > 0) & (wa > 0)
        if not np.isfinite(ma[use]).all() or (ma[use] <= 0).any():
            raise FitError(model="Gamma-Gamma", reason="mean spends must be positive and finite")
        xa, ma, wa = xa[use], ma[use], wa[use]
        if xa.size < 2 or np.ptp(ma) == 0:
            raise FitError(model="Gamma-Gamma", reason="need repeat customers with differing spend")
        total = wa.sum()

        data = _Spends.of(xa, ma, wa)

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            params = np.exp(theta)
            ll, grad = _ll_grad(params, data)
            return -ll / total, -grad * params / total

        start = (1.0, 2.0, float(np.average(ma, weights=wa)))
        return cls(*(float(v) for v in maximise("Gamma-Gamma", _NAMES, objective, start, n=total)))

    @property
    def params(self) -> dict[str, float]:
        """Parameters by name."""
        return asdict(self)

    def log_likelihood(self, x: ArrayLike, m: ArrayLike, weights: ArrayLike | None = None) -> float:
        """Total (weighted) log-likelihood of the mean spends of customers with x > 0."""
        xa, ma, wa = _arrays(x, m, weights)
        use = xa > 0
        return _ll_grad((self.p, self.q, self.gamma), _Spends.of(xa[use], ma[use], wa[use]))[0]

    def conditional_expected_spend(self, x: ArrayLike, m: ArrayLike) -> FloatArray:
        """Expected spend per transaction given x repeats averaging m (population mean when x = 0)."""
        xa, ma = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(x, m))
        # Posterior mean: a credibility-weighted blend of the population mean and the customer's own mean.
        m_seen = np.where(xa > 0, ma, 0.0)
        return np.asarray(self.p * (self.gamma + xa * m_seen) / (self.p * xa + self.q - 1), dtype=np.float64)

    @property
    def mean_spend(self) -> float:
        """Population mean spend per transaction (infinite when q <= 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")


def _arrays(
    x: ArrayLike, m: ArrayLike, weights: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    w = np.ones(1) if weights is None else weights
    xa, ma, wa = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, m, w)))
    return np.ravel(xa), np.ravel(ma), np.ravel(wa)


class _Spends(NamedTuple):
    """Repeat customers' frequencies, mean spends and weights, with what does not depend on the parameters."""

    x: FloatArray
    m: FloatArray
    w: FloatArray
    log_m: FloatArray
    log_x: FloatArray
    distinct_x: FloatArray  # the special functions depend on x alone: a few hundred values, not a million
    at: NDArray[np.intp]  # per customer, the index of its x in distinct_x

    @classmethod
    def of(cls, x: FloatArray, m: FloatArray, w: FloatArray) -> "_Spends":
        distinct_x, at = np.unique(x, return_inverse=True)
        return cls(x, m, w, np.log(m), np.log(x), distinct_x, at)


def _ll_grad(params: tuple[float, ...] | FloatArray, d: _Spends) -> tuple[float, FloatArray]:
    """Weighted log-likelihood of mean spends m over x transactions, and its gradient in (p, q, gamma)."""
    p, q, g = (float(v) for v in params)
    pux = p * d.distinct_x
    gl_pxq, gl_px, psi_pxq, psi_px = (
        f(v)[d.at] for f, v in ((gammaln, pux + q), (gammaln, pux), (digamma, pux + q), (digamma, pux))
    )
    px = p * d.x
    log_gxm = np.log(g + d.m * d.x)
    # Density of the mean of x Gamma(p, nu) spends, integrated over nu ~ Gamma(q, gamma).
    ll = gl_pxq - gl_px - gammaln(q) + q * np.log(g) + (px - 1) * d.log_m + px * d.log_x - (px + q) * log_gxm
    d_p = d.x * (psi_pxq - psi_px + d.log_m + d.log_x - log_gxm)
    d_q = psi_pxq - digamma(q) + np.log(g) - log_gxm
    d_g = q / g - (px + q) / (g + d.m * d.x)
    return wsum(d.w, ll), np.array([wsum(d.w, d_p), wsum(d.w, d_q), wsum(d.w, d_g)])
