"""Turn transaction arrays into the per-customer (frequency, recency, age, spend) the CLV models use."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import convolve

FloatArray = NDArray[np.float64]
Unit = Literal["day", "week"]
UNIT_DAYS: dict[str, int] = {"day": 1, "week": 7}
DateLike = str | date | np.datetime64


@dataclass(frozen=True)
class CustomerSummary:
    """Per-customer calibration summary; arrays are aligned with `customer_id` (sorted)."""

    customer_id: NDArray[np.generic]
    frequency: NDArray[np.int64]  # repeat purchase days
    recency: FloatArray  # first to last purchase day, in units
    age: FloatArray  # first purchase day to the calibration end, in units
    monetary: FloatArray  # mean spend per repeat purchase day; NaN without repeats
    first_day: NDArray[np.datetime64]


@dataclass(frozen=True)
class Tracking:
    """Actual cumulative repeat purchases per period, and each customer's entry time in periods."""

    cumulative: NDArray[np.int64]  # after period 1, 2, ..., n
    entry: FloatArray  # first purchase day minus start, in units


def _days(when: ArrayLike) -> NDArray[np.int64]:
    """Days since the epoch; datetimes are cut to their day."""
    return np.asarray(when).astype("datetime64[D]").astype(np.int64)


def _day(d: DateLike) -> int:
    return int(np.asarray(d).astype("datetime64[D]").astype(np.int64))


def _purchase_days(
    customer_id: ArrayLike, when: ArrayLike, value: ArrayLike | None, last_day: int
) -> tuple[NDArray[np.generic], NDArray[np.intp], NDArray[np.int64], FloatArray]:
    """Collapse transactions up to last_day into purchase days, sorted by customer then day."""
    ids = np.asarray(customer_id)
    days = _days(when)
    spend = np.zeros(days.shape) if value is None else np.asarray(value, dtype=np.float64)
    keep = days <= last_day
    ids, days, spend = ids[keep], days[keep], spend[keep]
    uniq, code = np.unique(ids, return_inverse=True)
    order = np.lexsort((days, code))
    code, days, spend = code[order], days[order], spend[order]
    new = np.ones(code.size, dtype=bool)
    new[1:] = (code[1:] != code[:-1]) | (days[1:] != days[:-1])
    starts = np.flatnonzero(new)
    day_spend = np.add.reduceat(spend, starts) if starts.size else np.zeros(0)
    return uniq, code[starts], days[starts], day_spend


def summarize(
    customer_id: ArrayLike,
    when: ArrayLike,
    value: ArrayLike,
    *,
    calibration_end: DateLike,
    unit: Unit = "week",
) -> CustomerSummary:
    """Summarise transactions up to calibration_end (inclusive) per customer."""
    end = _day(calibration_end)
    uniq, code, days, spend = _purchase_days(customer_id, when, value, end)
    n = uniq.size
    per_customer = np.bincount(code, minlength=n)
    first_idx = np.concatenate(([0], np.cumsum(per_customer)[:-1])) if n else np.zeros(0, dtype=np.intp)
    last_idx = first_idx + per_customer - 1
    first, last = days[first_idx], days[last_idx]
    frequency = (per_customer - 1).astype(np.int64)
    # The first purchase day starts the customer's clock, so its spend is not a repeat spend.
    repeat_spend = np.bincount(code, weights=spend, minlength=n) - spend[first_idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, repeat_spend / frequency, np.nan)
    k = UNIT_DAYS[unit]
    return CustomerSummary(
        customer_id=uniq,
        frequency=frequency,
        recency=(last - first) / k,
        age=(end - first) / k,
        monetary=monetary,
        first_day=first.astype("datetime64[D]"),
    )


def compress(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Reduce (x, t_x, T) to its distinct triples with summed weights."""
    xa, ta, Ta = (np.ravel(np.asarray(v, dtype=np.float64)) for v in (x, t_x, T))
    wa = np.ones(xa.size) if weights is None else np.ravel(np.asarray(weights, dtype=np.float64))
    if xa.size == 0:
        return xa, ta, Ta, wa
    # Code each column by its distinct values and sort one integer key: twice as fast as a three-key lexsort.
    (ux, ix), (ut, it), (uT, iT) = (np.unique(v, return_inverse=True) for v in (xa, ta, Ta))
    if float(ux.size) * ut.size * uT.size < 2.0**62:
        key = (ix.astype(np.int64) * ut.size + it) * uT.size + iT
        keys, inverse = np.unique(key, return_inverse=True)
        rest, k_T = np.divmod(keys, uT.size)
        k_x, k_t = np.divmod(rest, ut.size)
        summed = np.bincount(inverse, weights=wa, minlength=keys.size).astype(np.float64)
        return ux[k_x], ut[k_t], uT[k_T], summed
    order = np.lexsort((Ta, ta, xa))
    xs, ts, Ts, ws = xa[order], ta[order], Ta[order], wa[order]
    new = np.ones(xs.size, dtype=bool)
    new[1:] = (xs[1:] != xs[:-1]) | (ts[1:] != ts[:-1]) | (Ts[1:] != Ts[:-1])
    starts = np.flatnonzero(new)
    return xs[starts], ts[starts], Ts[starts], np.add.reduceat(ws, starts)


def repeat_purchase_tracking(
    customer_id: ArrayLike, when: ArrayLike, *, start: DateLike, end: DateLike, unit: Unit = "week"
) -> Tracking:
    """Cumulative repeat purchase days per period from start to end inclusive (calibration plus holdout)."""
    first_day, last_day = _day(start), _day(end)
    k = UNIT_DAYS[unit]
    n_periods = (last_day - first_day + 1) // k
    _, code, days, _ = _purchase_days(customer_id, when, None, last_day)
    is_first = np.ones(code.size, dtype=bool)
    is_first[1:] = code[1:] != code[:-1]
    period = (days[~is_first] - first_day) // k
    counts = np.bincount(period[(period >= 0) & (period < n_periods)], minlength=n_periods)
    return Tracking(cumulative=np.cumsum(counts), entry=(days[is_first] - first_day) / k)


def expected_cumulative_repeats(
    expected_new: Callable[[FloatArray], FloatArray],
    entry: ArrayLike,
    n_periods: int,
    unit: Unit = "week",
    weights: ArrayLike | None = None,
) -> FloatArray:
    """Model's cumulative repeat purchases after each period, summed over customers entering at `entry`
    (in units from the start; `weights` customers each, default one)."""
    k = UNIT_DAYS[unit]
    entries = np.ravel(np.asarray(entry, dtype=np.float64))
    w = np.ones(entries.size) if weights is None else np.ravel(np.asarray(weights, dtype=np.float64))
    # Group customers by entry time: one model evaluation per distinct entry instead of per customer.
    times, inverse = np.unique(entries, return_inverse=True)
    counts = np.bincount(inverse, weights=w, minlength=times.size).astype(np.float64)
    days = np.rint(times * k)
    if n_periods > 0 and np.allclose(days, times * k, rtol=0, atol=1e-9) and (days >= 0).all():
        return _cumulative_by_day(expected_new, days.astype(np.int64), counts, n_periods, k)
    one_day = 1.0 / k
    out = np.empty(n_periods)
    for i in range(n_periods):
        # After period i+1 the last day seen is one day before its end, matching how age T is measured.
        elapsed = np.maximum((i + 1) - times - one_day, 0.0)
        out[i] = float(np.sum(counts * expected_new(elapsed)))
    return out


def _cumulative_by_day(
    expected_new: Callable[[FloatArray], FloatArray], days: NDArray[np.int64], counts: FloatArray,
    n_periods: int, k: int,
) -> FloatArray:  # fmt: skip
    """The same sum when customers enter on whole days: a customer entering on day e has been watched for
    k(i+1) - 1 - e days after period i+1, so the model is evaluated once per day of the horizon and the sum
    over entry days is a convolution (daily periods over years would otherwise cost days x days calls)."""
    horizon = n_periods * k
    # Customers entering at or after the horizon add nothing: a new customer's expectation at 0 is 0.
    inside = days < horizon
    by_day = np.bincount(days[inside], weights=counts[inside], minlength=horizon)
    curve = np.asarray(expected_new(np.arange(horizon, dtype=np.float64) / k), dtype=np.float64)
    total = convolve(by_day, curve)[:horizon]
    return np.asarray(total[np.arange(1, n_periods + 1) * k - 1], dtype=np.float64)


def mape(actual: ArrayLike, predicted: ArrayLike) -> float | None:
    """Mean absolute percentage error (a fraction) over the points with a non-zero actual value, or None."""
    a = np.ravel(np.asarray(actual, dtype=np.float64))
    p = np.ravel(np.asarray(predicted, dtype=np.float64))
    keep = a != 0
    if not keep.any():
        return None
    return float(np.mean(np.abs(p[keep] - a[keep]) / np.abs(a[keep])))
