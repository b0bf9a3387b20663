"""RFM scoring: pure numpy, arrays in and scores out (the database side is in recompute.py).

Scores are quintiles over the active customers (at least one purchase):

    score = 1 + floor(5 x share of active customers with a strictly worse value)

so the best fifth scores 5 and the worst fifth 1, and **customers with equal values always share a score**
(the score of the lowest position of their tie group). Where many customers tie (most have exactly one
order), some scores stay empty: with 60% one-time buyers, F jumps from 1 straight to 4. Recency is whole days
since the last purchase (fewer is better), frequency the number of purchases, monetary the total spend.

The named segments read R and F only (M is kept as a score and a rule field); the mapping is SEGMENT_GRID.
"""

from dataclasses import dataclass

import numpy as np

RFM_SEGMENTS = (
    "champions", "loyal", "potential_loyalists", "new_customers", "promising", "need_attention",
    "about_to_sleep", "at_risk", "cant_lose", "hibernating", "lost",
)  # fmt: skip

# segment key -> (English label, what it means)
SEGMENT_INFO: dict[str, tuple[str, str]] = {
    "champions": ("Champions", "Bought very recently and buy often."),
    "loyal": ("Loyal", "Buy often and fairly recently."),
    "potential_loyalists": ("Potential loyalists", "Recent customers with a few purchases."),
    "new_customers": ("New customers", "Bought very recently, for the first time or rarely."),
    "promising": ("Promising", "Recent buyers with few purchases."),
    "need_attention": ("Need attention", "Middling recency and frequency."),
    "about_to_sleep": ("About to sleep", "Few purchases, and not recently."),
    "at_risk": ("At risk", "Bought often, but a long time ago."),
    "cant_lose": ("Can't lose them", "Were among the most frequent buyers, but have not bought for long."),
    "hibernating": ("Hibernating", "Few purchases, long ago."),
    "lost": ("Lost", "The fewest purchases, the longest ago."),
}

# SEGMENT_GRID[r - 1][f - 1]: the named segment of each R x F cell (rows R 1..5, columns F 1..5)
SEGMENT_GRID: tuple[tuple[str, ...], ...] = (
    ("lost", "lost", "at_risk", "at_risk", "cant_lose"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    ("promising", "potential_loyalists", "potential_loyalists", "loyal", "loyal"),
    ("new_customers", "potential_loyalists", "potential_loyalists", "champions", "champions"),
)
_GRID_CODES = np.array([[RFM_SEGMENTS.index(s) for s in row] for row in SEGMENT_GRID], dtype=np.int8)


def quintile_scores(values: np.ndarray, *, higher_is_better: bool = True) -> np.ndarray:
    """1-5 by the share of values strictly worse than each; ties share the lower score."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    ordered = np.sort(values, kind="stable")
    if higher_is_better:
        worse = np.searchsorted(ordered, values, side="left")
    else:
        worse = n - np.searchsorted(ordered, values, side="right")
    return (1 + (5 * worse.astype(np.int64)) // n).astype(np.int8)


def segment_codes(r: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Index into RFM_SEGMENTS of each customer's named segment."""
    return _GRID_CODES[r.astype(np.int64) - 1, f.astype(np.int64) - 1]


@dataclass
class RfmResult:
    r: np.ndarray
    f: np.ndarray
    m: np.ndarray
    segment: np.ndarray  # codes into RFM_SEGMENTS
    # per dimension, score -> [lowest, highest] raw value among the customers with that score
    bounds: dict[str, dict[str, list[int]]]


def score(recency_days: np.ndarray, frequency: np.ndarray, monetary: np.ndarray) -> RfmResult:
    """Score every active customer; the three arrays are aligned by customer."""
    r = quintile_scores(recency_days, higher_is_better=False)
    f = quintile_scores(frequency)
    m = quintile_scores(monetary)
    bounds = {
        "r": _bounds(r, recency_days),
        "f": _bounds(f, frequency),
        "m": _bounds(m, monetary),
    }
    return RfmResult(r, f, m, segment_codes(r, f) if len(r) else np.zeros(0, np.int8), bounds)


def _bounds(scores: np.ndarray, values: np.ndarray) -> dict[str, list[int]]:
    out = {}
    for s in range(1, 6):
        picked = values[scores == s]
        if len(picked):
            out[str(s)] = [int(picked.min()), int(picked.max())]
    return out


def grid(r: np.ndarray, f: np.ndarray, monetary: np.ndarray) -> list[list[int]]:
    """[[r, f, customers, revenue], ...] for the 25 cells of the R x F grid."""
    cell = (r.astype(np.int64) - 1) * 5 + (f.astype(np.int64) - 1)
    counts = np.bincount(cell, minlength=25)
    revenue = np.bincount(cell, weights=monetary.astype(np.float64), minlength=25)
    return [[i // 5 + 1, i % 5 + 1, int(counts[i]), round(revenue[i])] for i in range(25)]
