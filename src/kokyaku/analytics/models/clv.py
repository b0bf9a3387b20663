"""Customer lifetime value from a repeat-purchase model and the Gamma-Gamma spend model."""

import numpy as np
from numpy.typing import ArrayLike

from kokyaku.analytics.models.base import FloatArray, RepeatPurchaseModel
from kokyaku.analytics.models.gammagamma import GammaGamma
from kokyaku.analytics.models.summary import UNIT_DAYS, Unit

_DAYS_PER_MONTH = 365.25 / 12


def clv(
    model: RepeatPurchaseModel,
    spend: GammaGamma,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    m: ArrayLike,
    *,
    months: int = 12,
    monthly_discount: float = 0.01,
    unit: Unit = "week",
) -> FloatArray:
    """Discounted expected spend over the next `months`: sum over months of purchases in month i x spend."""
    if months < 0 or monthly_discount <= -1:
        raise ValueError("months must be >= 0 and monthly_discount > -1")
    xa, ta, Ta, ma = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(x, t_x, T, m))
    month = _DAYS_PER_MONTH / UNIT_DAYS[unit]
    # All month ends in one call, as a leading axis: purchases in month i are the increase of the cumulative
    # expectation, discounted at the month's end.
    ends = np.arange(1, months + 1, dtype=np.float64).reshape((months,) + (1,) * xa.ndim) * month
    cumulative = model.expected_purchases(ends, xa, ta, Ta)
    in_month = np.diff(cumulative, axis=0, prepend=0.0)
    discount = (1 + monthly_discount) ** -np.arange(1, months + 1, dtype=np.float64)
    value = np.einsum("m,m...->...", discount, in_month)  # einsum: no BLAS thread hand-off
    return np.asarray(value * spend.conditional_expected_spend(xa, ma), dtype=np.float64)
