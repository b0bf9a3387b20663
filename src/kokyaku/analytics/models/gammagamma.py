"""Gamma-Gamma spend model (Fader & Hardie, "The Gamma-Gamma model of monetary value", note 025)."""

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
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

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            params = np.exp(theta)
            ll, grad = _ll_grad(params, xa, ma, wa)
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
        return _ll_grad((self.p, self.q, self.gamma), xa[use], ma[use], wa[use])[0]

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


def _ll_grad(
    params: tuple[float, ...] | FloatArray, x: FloatArray, m: FloatArray, w: FloatArray
) -> tuple[float, FloatArray]:
    """Weighted log-likelihood of mean spends m over x transactions, and its gradient in (p, q, gamma)."""
    p, q, g = (float(v) for v in params)
    px = p * x
    log_m, log_x, log_gxm = np.log(m), np.log(x), np.log(g + m * x)
    # Density of the mean of x Gamma(p, nu) spends, integrated over nu ~ Gamma(q, gamma).
    ll = (
        gammaln(px + q) - gammaln(px) - gammaln(q)
        + q * np.log(g) + (px - 1) * log_m + px * log_x - (px + q) * log_gxm
    )  # fmt: skip
    psi_pxq = digamma(px + q)
    d_p = x * (psi_pxq - digamma(px) + log_m + log_x - log_gxm)
    d_q = psi_pxq - digamma(q) + np.log(g) - log_gxm
    d_g = q / g - (px + q) / (g + m * x)
    return wsum(w, ll), np.array([wsum(w, d_p), wsum(w, d_q), wsum(w, d_g)])
