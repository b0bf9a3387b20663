"""Shared pieces of the CLV models: the fit error, the optimiser wrapper and input checks."""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import OptimizeResult, minimize

from kokyaku.errors import KokyakuError

FloatArray = NDArray[np.float64]

# Parameters are optimised as logs inside +-LOG_BOUND (1e-8 .. 1e8). A parameter that ends up on the fence
# means the likelihood keeps rising towards 0 or infinity: the data do not identify the model.
LOG_BOUND = float(np.log(1e8))
_FENCE = 1e-3
# A line search may stop just short of "converged" when the objective is flat to rounding; with a gradient
# this small (per customer, in log-parameter space) the point is the optimum all the same.
_GRAD_ACCEPT = 1e-5
# A parameter whose log has a standard error above this (a 95% interval wider than a factor of e^+-6) is not
# determined by the data: the likelihood runs along a flat ridge (e.g. r and alpha both -> infinity in the
# Poisson limit) and the optimiser stops somewhere on it. Real fits sit far below: CDNOW's largest is 0.3,
# and a 100-customer sample of it stays under 1.3.
MAX_LOG_SE = 3.0
_HESS_STEP = 1e-4
_VALUE_HESS_STEP = 1e-3


class FitError(KokyakuError):
    """A model fit that did not reach a trustworthy maximum of the likelihood."""

    code = "fit_failed"
    status = 400
    message = "The {model} model could not be fitted: {reason}"


class RepeatPurchaseModel(Protocol):
    """What clv() needs from BG/NBD or Pareto/NBD."""

    def expected_purchases(self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray: ...


def wsum(*factors: FloatArray) -> float:
    """Sum over i of the product of the factors' i-th elements, in one pass."""
    # Not `w @ v`: that goes through multi-threaded BLAS, whose thread hand-off made a 40k-element dot product
    # 150x slower (15 ms vs 0.1 ms) on a busy 2-core machine; einsum stays in one thread and needs no
    # temporaries for three or four factors.
    return float(np.einsum(",".join("i" * len(factors)) + "->", *factors))


def as_rfm(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Broadcast (x, t_x, T, weights) to flat float arrays."""
    w = np.ones(1) if weights is None else weights
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, T, w)))
    xa, ta, Ta, wa = (np.ravel(a) for a in arrays)
    return xa, ta, Ta, wa


def check_rfm(model: str, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> None:
    """Refuse data a fit cannot use, with a reason a person can act on."""
    if x.size == 0 or w.sum() <= 0:
        raise FitError(model=model, reason="there are no customers")
    if not all(np.isfinite(v).all() for v in (x, t_x, T, w)):
        raise FitError(model=model, reason="the data contain NaN or infinite values")
    if (x < 0).any() or (t_x < 0).any() or (t_x > T).any() or (w < 0).any():
        raise FitError(model=model, reason="need 0 <= recency <= age, frequency >= 0 and weights >= 0")
    if ((x > 0) & (t_x <= 0)).any():
        raise FitError(model=model, reason="a customer with repeat purchases has recency 0")


def maximise(
    model: str,
    names: Sequence[str],
    neg_mean_ll: Callable[[FloatArray], tuple[float, FloatArray]],
    start: Sequence[float],
    *,
    n: float,
    gtol: float = 1e-9,
    values: Callable[[list[FloatArray]], list[float]] | None = None,
) -> FloatArray:
    """Maximise a log-likelihood (objective: mean negative, over n customers) in log-parameters, or raise.

    `values`, when given, evaluates the objective alone at several points: a model whose gradient costs many
    evaluations passes it so that the standard errors come from 15 values instead of 5 gradients."""
    x0 = np.clip(np.log(np.asarray(start, dtype=np.float64)), -LOG_BOUND + 1, LOG_BOUND - 1)
    with _one_blas_thread():
        res, se = _optimise(neg_mean_ll, x0, n, gtol, values)
    if not np.isfinite(res.fun) or not np.isfinite(res.x).all():
        raise FitError(model=model, reason="the likelihood is not finite at the optimum")
    fenced = [name for name, v in zip(names, res.x, strict=True) if abs(v) > LOG_BOUND - _FENCE]
    if fenced:
        raise FitError(
            model=model,
            reason=f"{', '.join(fenced)} ran off to 0 or infinity; the data do not identify the model",
        )
    # Checked before convergence: on a flat ridge the optimiser often stops "abnormally", and saying the
    # data cannot determine the parameters is the more useful message.
    if not np.isfinite(se).any():
        raise FitError(model=model, reason="the likelihood has no clear maximum for these data")
    loose = [name for name, v in zip(names, se, strict=True) if not v <= MAX_LOG_SE]
    if loose:
        raise FitError(
            model=model,
            reason=f"the likelihood is flat in {', '.join(loose)}: the data do not determine them "
            "(more customers or a longer history are needed)",
        )
    steepest = float(np.max(np.abs(res.jac)))
    if not res.success and steepest > _GRAD_ACCEPT:
        raise FitError(
            model=model,
            reason=f"the optimiser stopped after {res.nit} steps without converging "
            f"({res.message.strip()}; largest gradient {steepest:.2g})",
        )
    return np.exp(res.x)


def _optimise(
    neg_mean_ll: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: FloatArray,
    n: float,
    gtol: float,
    values: Callable[[list[FloatArray]], list[float]] | None,
) -> tuple[OptimizeResult, FloatArray]:
    """Run L-BFGS-B in log-parameter space; return its result and the log-parameters' standard errors."""
    with np.errstate(all="ignore"):
        # Trial points far out in the line search may overflow; they evaluate to +inf and are rejected.
        res = minimize(
            _finite(neg_mean_ll),
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * len(x0),
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": gtol},
        )
    if not np.isfinite(res.fun) or not np.isfinite(res.x).all():
        return res, np.full(x0.size, np.inf)
    hessian = _hessian_of_values(values, res.x) if values else _hessian_of_gradients(neg_mean_ll, res.x)
    return res, _log_standard_errors(hessian * n)


def _one_blas_thread() -> AbstractContextManager[object]:
    """Keep BLAS single-threaded while fitting."""
    # L-BFGS-B makes thousands of tiny BLAS calls; with OpenBLAS's thread pool on a busy machine each one
    # waits for worker threads to be scheduled, and a 10 ms CDNOW fit took 200-400 ms. threadpoolctl is
    # optional so the models still run without it, only slower under load.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _hessian_of_gradients(
    neg_mean_ll: Callable[[FloatArray], tuple[float, FloatArray]], theta: FloatArray
) -> FloatArray:
    """Forward differences of the gradient: accurate to ~1e-4 relative, plenty for a threshold check."""
    eye = np.eye(theta.size) * _HESS_STEP
    with np.errstate(all="ignore"):
        g0 = neg_mean_ll(theta)[1]
        return np.asarray([(neg_mean_ll(theta + e)[1] - g0) / _HESS_STEP for e in eye])


def _hessian_of_values(values: Callable[[list[FloatArray]], list[float]], theta: FloatArray) -> FloatArray:
    """Second differences of the objective: f(x +- h e_i) for the diagonal, f(x + h e_i + h e_j) for the rest;
    1 + 2k + k(k-1)/2 values (15 for four parameters). The step is larger than for gradients because second
    differences divide rounding noise by h^2."""
    h, k = _VALUE_HESS_STEP, theta.size
    eye = np.eye(k) * h
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    with np.errstate(all="ignore"):
        f = values(
            [
                theta,
                *(theta + e for e in eye),
                *(theta - e for e in eye),
                *(theta + eye[i] + eye[j] for i, j in pairs),
            ]
        )
    f0, up, down, both = f[0], f[1 : k + 1], f[k + 1 : 2 * k + 1], f[2 * k + 1 :]
    hess = np.diag([(up[i] - 2 * f0 + down[i]) / h**2 for i in range(k)])
    for (i, j), value in zip(pairs, both, strict=True):
        hess[i, j] = hess[j, i] = (value - up[i] - up[j] + f0) / h**2
    return hess


def _log_standard_errors(hess: FloatArray) -> FloatArray:
    """Standard errors of the log-parameters from the observed information (the Hessian of the total negative
    log-likelihood); inf where it is not positive definite."""
    hess = (hess + hess.T) / 2
    if not np.isfinite(hess).all():
        return np.full(hess.shape[0], np.inf)
    try:
        np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        return np.full(hess.shape[0], np.inf)
    return np.sqrt(np.diag(np.linalg.inv(hess)))


def _finite(
    f: Callable[[FloatArray], tuple[float, FloatArray]],
) -> Callable[[FloatArray], tuple[float, FloatArray]]:
    """Turn NaN objective values into +inf so the line search backs off instead of stopping."""

    def wrapped(theta: FloatArray) -> tuple[float, FloatArray]:
        value, grad = f(theta)
        if not np.isfinite(value) or not np.isfinite(grad).all():
            return np.inf, np.zeros_like(theta)
        return value, grad

    return wrapped
