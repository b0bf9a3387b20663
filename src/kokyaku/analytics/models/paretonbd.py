"""Pareto/NBD repeat-purchase model (Schmittlein, Morrison & Colombo 1987; Fader & Hardie's notes)."""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

from kokyaku.analytics.models.base import FitError, FloatArray, as_rfm, check_rfm, maximise, wsum
from kokyaku.analytics.models.summary import compress

_NAMES = ("r", "alpha", "s", "beta")
# Central-difference step in log-parameters: truncation error ~h^2 and rounding error ~eps/h balance here.
_STEP = 1e-5
_CF_TOL = 1e-15
_CF_MAX_TERMS = 200_000
_CF_BLOCK = 8
_THREADS = 9  # evaluations per gradient
_THREADS_FROM = 20_000  # distinct customer triples


@dataclass(frozen=True)
class ParetoNBD:
    """Fitted Pareto/NBD: purchase rate ~ Gamma(r, alpha), drop-out rate ~ Gamma(s, beta)."""

    r: float
    alpha: float
    s: float
    beta: float

    @classmethod
    def fit(
        cls, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None,
        start: Sequence[float] | None = None,
    ) -> "ParetoNBD":  # fmt: skip
        """Maximum likelihood fit on (frequency, recency, age), optionally weighted; `start` is a first guess
        of the parameters (e.g. a fit on a sample or an earlier period), which saves iterations."""
        xa, ta, Ta, wa = compress(*as_rfm(x, t_x, T, weights))
        check_rfm("Pareto/NBD", xa, ta, Ta, wa)
        if not (xa > 0).any():
            raise FitError(model="Pareto/NBD", reason="nobody made a repeat purchase")
        total = wa.sum()
        data = _Data.of(xa, ta, Ta, wa)

        def f(theta: FloatArray) -> float:
            return -wsum(wa, _log_lik(np.exp(theta), data)) / total

        steps = np.eye(4) * _STEP
        # The nine evaluations of a gradient are independent and numpy/scipy release the GIL in them, so
        # on large data they run in threads (on small data thread hand-offs would cost more than they save).
        workers = min(_THREADS, os.cpu_count() or 1) if xa.size >= _THREADS_FROM else 1

        def objective(theta: FloatArray) -> tuple[float, FloatArray]:
            # Numerical gradient, on purpose: d/dr and d/ds of the 2F1 terms are derivatives of the
            # hypergeometric function in its parameters, which have no closed form (the alpha and beta
            # derivatives do, but a half-analytic gradient buys little on compressed data). The likelihood
            # itself is smooth and accurate to ~1e-15, so central differences give ~1e-10 relative accuracy.
            values = np.array(evaluate([theta, *(theta + steps), *(theta - steps)]))
            return float(values[0]), (values[1:5] - values[5:9]) / (2 * _STEP)

        def evaluate(points: list[FloatArray]) -> list[float]:
            return list(pool.map(f, points)) if pool else [f(p) for p in points]

        if start is None:
            mean_T = max(float(np.average(Ta, weights=wa)), 1e-3)
            start = (1.0, mean_T, 1.0, mean_T)
        with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
            fitted = maximise("Pareto/NBD", _NAMES, objective, start, n=total, gtol=1e-8, values=evaluate)
        return cls(*(float(v) for v in fitted))

    @property
    def params(self) -> dict[str, float]:
        """Parameters by name."""
        return asdict(self)

    def log_likelihood(
        self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
    ) -> float:
        """Total (weighted) log-likelihood of the data."""
        xa, ta, Ta, wa = as_rfm(x, t_x, T, weights)
        return wsum(wa, _log_lik(self._p, _Data.of(xa, ta, Ta, wa)))

    def probability_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """P(still active at T | x, t_x, T)."""
        xa, ta, Ta, _ = as_rfm(x, t_x, T)
        shape = np.broadcast_shapes(np.shape(x), np.shape(t_x), np.shape(T))
        alive, died = _alive_and_died(self._p, _Data.of(xa, ta, Ta, np.ones_like(xa)))
        return np.exp(alive - np.logaddexp(alive, died)).reshape(shape)

    def expected_purchases(self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
        """Expected repeat purchases in (T, T + t] given the customer's history."""
        # P(alive) does not depend on t: computed once per customer however many horizons t holds.
        alive = self.probability_alive(x, t_x, T)
        ta, xa, Ta = (np.asarray(v, dtype=np.float64) for v in (t, x, T))
        r, alpha, s, beta = self._p
        rate = (r + xa) / (alpha + Ta) * (beta + Ta) * _survival_integral(s, ta / (beta + Ta))
        return np.asarray(rate * alive, dtype=np.float64)

    def expected_purchases_new(self, t: ArrayLike) -> FloatArray:
        """Expected repeat purchases of a new customer in their first t units."""
        ta = np.asarray(t, dtype=np.float64)
        r, alpha, s, beta = self._p
        return np.asarray(r / alpha * beta * _survival_integral(s, ta / beta), dtype=np.float64)

    @property
    def _p(self) -> tuple[float, float, float, float]:
        return self.r, self.alpha, self.s, self.beta


def _survival_integral(s: float, y: FloatArray) -> FloatArray:
    """(1 - (1+y)^(1-s)) / (s-1), the expected lifetime fraction; log1p(y) in the limit s -> 1."""
    log1py = np.log1p(y)
    if abs(s - 1) < 1e-10:
        return np.asarray(log1py, dtype=np.float64)
    return np.asarray(-np.expm1(-(s - 1) * log1py) / (s - 1), dtype=np.float64)


class _Data(NamedTuple):
    """Customers as indexes into what their likelihood depends on: their frequency x, and the distinct (x, u)
    pairs for u = T (the alive term and one tail integral) and u = t_x (the other tail integral). Distinct
    pairs are ~7x fewer than customers, so the costly terms are computed once per pair and gathered."""

    w: FloatArray
    x: FloatArray  # distinct frequencies
    i_x: NDArray[np.intp]  # per customer: its frequency's index in x
    pair_x: FloatArray  # distinct (x, u) pairs over both u = T and u = t_x
    pair_u: FloatArray
    i_T: NDArray[np.intp]  # per customer: index of (x, T) in the pairs
    i_tx: NDArray[np.intp]  # per customer: index of (x, t_x) in the pairs

    @classmethod
    def of(cls, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> "_Data":
        n = x.size
        ux, i_x = np.unique(x, return_inverse=True)
        uu, i_u = np.unique(np.concatenate([T, t_x]), return_inverse=True)
        keys, inverse = np.unique(np.tile(i_x.astype(np.int64), 2) * uu.size + i_u, return_inverse=True)
        k_x, k_u = np.divmod(keys, uu.size)
        return cls(w, ux, i_x, ux[k_x], uu[k_u], inverse[:n], inverse[n:])


def _log_lik(p: tuple[float, ...] | FloatArray, data: _Data) -> FloatArray:
    """Per-customer log-likelihood."""
    r, alpha, s, beta = (float(v) for v in p)
    alive, died = _alive_and_died(p, data)
    head = gammaln(r + data.x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    return np.asarray(head[data.i_x] + np.logaddexp(alive, died), dtype=np.float64)


def _alive_and_died(p: tuple[float, ...] | FloatArray, data: _Data) -> tuple[FloatArray, FloatArray]:
    """Logs of the two likelihood terms (common factor removed): still alive at T, and died in (t_x, T]."""
    r, alpha, s, beta = (float(v) for v in p)
    x, u = data.pair_x, data.pair_u
    alive = (-(r + x) * np.log(alpha + u) - s * np.log(beta + u))[data.i_T]
    # Died at tau in (t_x, T]: s * integral of (alpha+tau)^-(r+x) (beta+tau)^-(s+1), as F(t_x) - F(T).
    log_f = _log_tail(r, alpha, s, beta, x, u)
    log_f_tx = log_f[data.i_tx]
    gap = np.minimum(log_f[data.i_T] - log_f_tx, 0.0)  # F decreases; clip rounding noise when t_x == T
    with np.errstate(divide="ignore"):
        died = np.log(s) + log_f_tx + np.log(-np.expm1(gap))
    return alive, died


def _log_tail(r: float, alpha: float, s: float, beta: float, x: FloatArray, u: FloatArray) -> FloatArray:
    """log F(u), F(u) = integral from u to infinity of (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau."""
    c = r + s + x
    # F(u) = (big+u)^-c / c * 2F1(c, b; c+1; z), z = |alpha-beta|/(big+u); choosing the larger of alpha
    # and beta as "big" keeps 0 <= z < 1 (Fader & Hardie's two cases).
    if alpha >= beta:
        big, small, b = alpha, beta, s + 1 + 0 * x
    else:
        big, small, b = beta, alpha, r + x
    log_big, log_small = np.log(big + u), np.log(small + u)
    # Pfaff: 2F1(c, b; c+1; z) = (1-z)^-b 2F1(1, b; c+1; -kappa), kappa = z/(1-z). The first factor is
    # exact in logs; the second lies in (0, 1], so nothing overflows even when b is in the thousands.
    kappa = (big - small) / (small + u)
    return np.asarray(-np.log(c) - c * log_big + b * (log_big - log_small) + _log_2f1_1b(c, b, kappa))


def _log_2f1_1b(c: FloatArray, b: FloatArray, kappa: FloatArray) -> FloatArray:
    """log 2F1(1, b; c+1; -kappa) for kappa >= 0 and c > b - 1, by Gauss's continued fraction."""
    # scipy's hyp2f1 returns inf or NaN here once b reaches the hundreds. Gauss's continued fraction
    # 2F1(1,b;c+1;w) = 1/(1 + d1/(1 + d2/(1 + ...))), d_n = k_n * w, has all d_n >= 0 in this domain, so
    # the modified Lentz recurrence below has no cancellation and converges for every kappa (slowly only
    # when kappa is huge, i.e. alpha and beta differ by orders of magnitude).
    c, b, kappa = (np.ravel(v).astype(np.float64) for v in np.broadcast_arrays(c, b, kappa))
    out = np.zeros(c.size)
    idx = np.flatnonzero(kappa > 0)  # kappa = 0 (alpha == beta) gives exactly 2F1 = 1
    cc, bb, kk = c[idx], b[idx], kappa[idx]
    f, C, D = np.ones(idx.size), np.ones(idx.size), np.zeros(idx.size)
    n = 1
    while idx.size:
        if n > _CF_MAX_TERMS:
            raise FitError(model="Pareto/NBD", reason="the 2F1 continued fraction did not converge")
        # Steps run in blocks between convergence checks: extra steps past convergence leave f unchanged,
        # and shrinking the arrays every step would cost more than the steps themselves.
        for _ in range(_CF_BLOCK):
            j = n // 2
            if n % 2:
                k = -(cc + j) * (bb + j) / ((cc + 2 * j) * (cc + 2 * j + 1))
            else:
                k = (bb - cc - j) * j / ((cc + 2 * j - 1) * (cc + 2 * j))
            d = -k * kk
            D = 1.0 / (1.0 + d * D)
            C = 1.0 + d / C
            delta = C * D
            f *= delta
            n += 1
        done = np.abs(delta - 1.0) <= _CF_TOL
        if done.any():
            out[idx[done]] = -np.log(f[done])
            keep = ~done
            idx, cc, bb, kk, f, C, D = idx[keep], cc[keep], bb[keep], kk[keep], f[keep], C[keep], D[keep]
    return out
