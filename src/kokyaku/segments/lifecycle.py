"""Lifecycle stages derived from buying behaviour: pure numpy (the database side is in recompute.py).

Stages, checked in this order for a customer with at least one purchase (d = whole days since the last one,
g = the customer's own mean days between purchases = (last - first) / (orders - 1)):

- churned: d > churn threshold = max(churn_days, churn_multiple x g) (churn_days for one-time buyers);
- at_risk: d > at-risk threshold = max(at_risk_min_days, at_risk_multiple x g), or new_days for one-time
  buyers (never above the churn threshold); also when a registered "probability still active" source says the
  customer is below alive_threshold (the analytics issue plugs its model in with register_alive_source);
- won_back: the customer was at_risk or churned and has bought since; stays won_back for won_back_days;
- loyal: at least loyal_min_orders purchases and the last within loyal_recent_days;
- repeat: two or more purchases;
- new: one purchase, within new_days.
Customers with no purchase are `lead` (they have no row in customer_lifecycle).

A change is dated by the behaviour that caused it, not by the run that noticed it: `new` at the first
purchase, `repeat`/`loyal`/`won_back` at the last purchase, `at_risk`/`churned` when the threshold was
crossed (last purchase + threshold), clamped between the previous change and now. Thresholds come from
Settings (KOKYAKU_LIFECYCLE_*).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

STAGES = ("lead", "new", "repeat", "loyal", "at_risk", "churned", "won_back")
LEAD, NEW, REPEAT, LOYAL, AT_RISK, CHURNED, WON_BACK = range(7)
STAGE_INFO: dict[str, tuple[str, str]] = {
    "lead": ("Lead", "Has not bought yet."),
    "new": ("New", "Made a first purchase recently."),
    "repeat": ("Repeat", "Has bought two or more times."),
    "loyal": ("Loyal", "Buys often and recently."),
    "at_risk": ("At risk", "Overdue against their own buying rhythm."),
    "churned": ("Churned", "Has not bought for much longer than usual."),
    "won_back": ("Won back", "Bought again after being at risk or churned."),
}
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class LifecycleRules:
    new_days: int = 90
    loyal_min_orders: int = 5
    loyal_recent_days: int = 180
    at_risk_multiple: float = 2.0
    at_risk_min_days: int = 30
    churn_days: int = 365
    churn_multiple: float = 4.0
    won_back_days: int = 90
    alive_threshold: float = 0.3

    @classmethod
    def from_settings(cls, settings: Any) -> "LifecycleRules":
        return cls(**{name: getattr(settings, f"lifecycle_{name}") for name in cls.__dataclass_fields__})


# A source of "probability still active": (session, customer ids) -> probabilities (NaN = unknown) or None
AliveSource = Callable[[Any, np.ndarray], np.ndarray | None]
ALIVE_SOURCES: list[AliveSource] = []


def register_alive_source(source: AliveSource) -> None:
    """Let a model (analytics: BG/NBD, Pareto/NBD) mark customers below alive_threshold as at risk."""
    ALIVE_SOURCES.append(source)


@dataclass
class Stages:
    stage: np.ndarray  # int8 codes into STAGES
    changed_at: np.ndarray  # int64 microseconds since the epoch (UTC): when the customer entered the stage


def classify(
    *,
    orders: np.ndarray,
    first_us: np.ndarray,
    last_us: np.ndarray,
    days_since_last: np.ndarray,
    prev_stage: np.ndarray,
    prev_since_us: np.ndarray,
    now_us: int,
    rules: LifecycleRules,
    alive: np.ndarray | None = None,
) -> Stages:
    """The stage of each customer with at least one purchase (arrays aligned by customer); a customer without
    a previous row has prev_stage LEAD and prev_since_us = the minimum int64."""
    n = orders.astype(np.int64)
    d = days_since_last.astype(np.float64)
    repeat_buyer = n >= 2
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(repeat_buyer, (last_us - first_us) / DAY_US / np.maximum(n - 1, 1), np.nan)
    churn_own = np.fmax(rules.churn_days, rules.churn_multiple * gap)
    churn_thr = np.where(repeat_buyer, churn_own, rules.churn_days)
    risk_own = np.fmax(rules.at_risk_min_days, rules.at_risk_multiple * gap)
    risk_thr = np.where(repeat_buyer, risk_own, rules.new_days)
    risk_thr = np.minimum(risk_thr, churn_thr)

    churned = d > churn_thr
    at_risk = ~churned & (d > risk_thr)
    by_model = np.zeros(len(n), dtype=bool)
    if alive is not None:
        by_model = ~churned & ~at_risk & (np.nan_to_num(alive, nan=1.0) < rules.alive_threshold)
        at_risk |= by_model
    active = ~churned & ~at_risk
    lapsed_before = (prev_stage == AT_RISK) | (prev_stage == CHURNED)
    won_back_now = active & lapsed_before & (last_us > prev_since_us)
    recent_win = now_us - prev_since_us < rules.won_back_days * DAY_US
    won_back_kept = active & (prev_stage == WON_BACK) & recent_win
    won_back = won_back_now | won_back_kept
    rest = active & ~won_back
    loyal = rest & (n >= rules.loyal_min_orders) & (d <= rules.loyal_recent_days)
    repeat = rest & ~loyal & repeat_buyer
    new = rest & (n == 1)

    stage = np.full(len(n), REPEAT, dtype=np.int8)
    stage[new] = NEW
    stage[repeat] = REPEAT
    stage[loyal] = LOYAL
    stage[won_back] = WON_BACK
    stage[at_risk] = AT_RISK
    stage[churned] = CHURNED

    # when the behaviour behind the new stage happened
    when = last_us.astype(np.int64).copy()
    when[new] = first_us[new]
    when[at_risk] = last_us[at_risk] + (risk_thr[at_risk] * DAY_US).astype(np.int64)
    when[by_model] = now_us
    when[churned] = last_us[churned] + (churn_thr[churned] * DAY_US).astype(np.int64)
    expired = (prev_stage == WON_BACK) & (loyal | repeat)
    when[expired] = prev_since_us[expired] + rules.won_back_days * DAY_US
    faded = (prev_stage == LOYAL) & repeat
    when[faded] = last_us[faded] + rules.loyal_recent_days * DAY_US
    when = np.minimum(np.maximum(when, prev_since_us), now_us)
    return Stages(stage, when)
