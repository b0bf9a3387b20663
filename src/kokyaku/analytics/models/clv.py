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
    value = np.zeros(xa.shape)
    previous = np.zeros(xa.shape)
    for i in range(1, months + 1):
        # Purchases in month i are the increase of the cumulative expectation; discounted at month end.
        cumulative = model.expected_purchases(i * month, xa, ta, Ta)
        value += (cumulative - previous) / (1 + monthly_discount) ** i
        previous = cumulative
    return np.asarray(value * spend.conditional_expected_spend(xa, ma), dtype=np.float64)
