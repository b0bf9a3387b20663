"""Pure numpy/scipy CLV models: BG/NBD, Pareto/NBD, Gamma-Gamma, and the summaries they are fitted on."""

from kokyaku.analytics.models.base import FitError, RepeatPurchaseModel
from kokyaku.analytics.models.bgnbd import BGNBD
from kokyaku.analytics.models.clv import clv
from kokyaku.analytics.models.gammagamma import GammaGamma
from kokyaku.analytics.models.paretonbd import ParetoNBD
from kokyaku.analytics.models.summary import (
    CustomerSummary,
    Tracking,
    compress,
    expected_cumulative_repeats,
    mape,
    repeat_purchase_tracking,
    summarize,
)

__all__ = [
    "BGNBD",
    "CustomerSummary",
    "FitError",
    "GammaGamma",
    "ParetoNBD",
    "RepeatPurchaseModel",
    "Tracking",
    "clv",
    "compress",
    "expected_cumulative_repeats",
    "mape",
    "repeat_purchase_tracking",
    "summarize",
]
