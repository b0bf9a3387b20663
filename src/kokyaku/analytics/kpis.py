"""The KPI board: customer counts and rates over a period [start, end) of local days, with definitions."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from kokyaku.analytics.features import raise_work_mem
from kokyaku.analytics.tables import CustomerScore
from kokyaku.commerce.metrics import base_currency
from kokyaku.commerce.models import VOID_STATUSES, CustomerMetrics, Order
from kokyaku.customers.models import Customer
from kokyaku.segments.models import CustomerLifecycle, LifecycleChange


@dataclass
class Board:
    start: date
    end: date  # exclusive
    values: dict[str, float | int | None] = field(default_factory=dict)
    clv: dict[str, Any] = field(default_factory=dict)  # count, mean, median, p90, histogram edges and counts
    nps: float | None = None
    nps_responses: int = 0
    csat: float | None = None
    csat_responses: int = 0


# key -> (label msgid, definition msgid, format: count | percent | money | number)
KPIS: dict[str, tuple[str, str, str]] = {
    "new": ("New customers", "Customers whose first purchase falls in the period.", "count"),
    "active": ("Active customers", "Customers with at least one purchase in the period.", "count"),
    "at_risk": ("At-risk customers", "Customers who entered the at-risk lifecycle stage during the period "
                "(stage-change history; each customer counted once).", "count"),
    "churned": ("Churned customers", "Customers who entered the churned lifecycle stage during the period "
                "(stage-change history; each customer counted once).", "count"),
    "at_risk_now": ("At risk now", "Customers in the at-risk lifecycle stage today, whatever the period.",
                    "count"),
    "churned_now": ("Churned now", "Customers in the churned lifecycle stage today, whatever the period.",
                    "count"),
    "retention": ("Retention rate", "Of the customers who bought in the previous period of the same length, "
                  "the share who bought again in this period.", "percent"),
    "churn": ("Churn rate", "100% minus the retention rate.", "percent"),
    "repeat": ("Repeat-purchase rate", "Share of the period's buyers with two or more purchases in it.",
               "percent"),
    "frequency": ("Purchase frequency", "Purchases in the period per active customer.", "number"),
    "aov": ("Average order value", "Revenue in the period divided by its purchases.", "money"),
    "revenue_per_customer": ("Revenue per customer", "Revenue in the period divided by active customers.",
                             "money"),
    "conversion": ("Lead-to-customer conversion", "Of the customers added in the period, the share who made "
                   "a first purchase by its end.", "percent"),
}  # fmt: skip
SURVEY_DEFINITIONS = {
    "nps": "Net Promoter Score of survey answers in the period: % promoters (9-10) minus % detractors (0-6).",
    "csat": "Share of satisfaction answers of 4 or 5 out of 5 in the period.",
}
DEFAULT_DAYS = 90


def _bounds(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def board(session: Session, *, start: date, end: date, tz: str) -> Board:
    """Compute every KPI for [start, end); `end` is exclusive."""
    raise_work_mem(session)
    s, e = _bounds(start, tz), _bounds(end, tz)
    prev = _bounds(start - (end - start), tz)
    counted = and_(Order.status.not_in(VOID_STATUSES), Order.currency == base_currency())
    in_period = and_(counted, Order.ordered_at >= s, Order.ordered_at < e)
    active, orders, revenue = session.execute(
        select(
            func.count(func.distinct(Order.customer_id)),
            func.count(),
            func.coalesce(func.sum(Order.total), 0),
        ).where(in_period)
    ).one()  # fmt: skip
    active, orders, revenue = int(active), int(orders), int(revenue)
    repeaters = session.scalar(
        select(func.count()).select_from(
            select(Order.customer_id).where(in_period).group_by(Order.customer_id)
            .having(func.count() >= 2).subquery()
        )
    )  # fmt: skip
    new = session.scalar(
        select(func.count()).where(CustomerMetrics.first_order_at >= s, CustomerMetrics.first_order_at < e)
    )
    later = aliased(Order)
    came_back = exists().where(
        later.customer_id == Order.customer_id, later.status.not_in(VOID_STATUSES),
        later.currency == base_currency(), later.ordered_at >= s, later.ordered_at < e,
    )  # fmt: skip
    in_prev = and_(counted, Order.ordered_at >= prev, Order.ordered_at < s)
    prev_active = session.scalar(select(func.count(func.distinct(Order.customer_id))).where(in_prev)) or 0
    retained = (
        session.scalar(select(func.count(func.distinct(Order.customer_id))).where(in_prev, came_back)) or 0
    )
    stages: dict[str, int] = dict(
        session.execute(  # type: ignore[arg-type]
            select(CustomerLifecycle.stage, func.count())
            .where(CustomerLifecycle.stage.in_(("at_risk", "churned"))).group_by(CustomerLifecycle.stage)
        ).all()
    )  # fmt: skip
    # Entered during the period: a range on the changed_at index; one who entered twice counts once.
    entered: dict[str, int] = dict(
        session.execute(  # type: ignore[arg-type]
            select(LifecycleChange.stage, func.count(func.distinct(LifecycleChange.customer_id)))
            .where(LifecycleChange.stage.in_(("at_risk", "churned")),
                   LifecycleChange.changed_at >= s, LifecycleChange.changed_at < e)
            .group_by(LifecycleChange.stage)
        ).all()
    )  # fmt: skip
    added = and_(Customer.created_at >= s, Customer.created_at < e, Customer.merged_into_id.is_(None))
    leads = session.scalar(select(func.count()).select_from(Customer).where(added)) or 0
    converted = session.scalar(
        select(func.count()).select_from(Customer)
        .join(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .where(added, CustomerMetrics.first_order_at < e)
    ) or 0  # fmt: skip
    retention = _pct(retained, prev_active)
    out = Board(start=start, end=end)
    out.values = {
        "new": int(new or 0),
        "active": active,
        "at_risk": int(entered.get("at_risk", 0)),
        "churned": int(entered.get("churned", 0)),
        "at_risk_now": int(stages.get("at_risk", 0)),
        "churned_now": int(stages.get("churned", 0)),
        "retention": retention,
        "churn": round(100.0 - retention, 1) if retention is not None else None,
        "repeat": _pct(int(repeaters or 0), active),
        "frequency": round(orders / active, 2) if active else None,
        "aov": round(revenue / orders) if orders else None,
        "revenue_per_customer": round(revenue / active) if active else None,
        "conversion": _pct(int(converted), int(leads)),
    }
    out.clv = clv_distribution(session)
    try:
        from kokyaku.feedback.scores import csat_summary, nps_summary
    except ImportError:  # the feedback domain is optional
        return out
    nps, csat = nps_summary(session, s, e), csat_summary(session, s, e)
    out.nps, out.nps_responses = nps.value, nps.responses
    out.csat, out.csat_responses = csat.value, csat.responses
    return out


def clv_distribution(session: Session, bins: int = 20) -> dict[str, Any]:
    """Summary and histogram of the latest predicted 12-month CLV (minor units)."""
    values = np.fromiter(session.scalars(select(CustomerScore.clv_12m)), dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    top = float(np.quantile(values, 0.99)) or float(values.max()) or 1.0
    counts, edges = np.histogram(np.minimum(values, top), bins=bins, range=(0.0, top))
    return {
        "count": int(values.size),
        "mean": round(float(values.mean())),
        "median": round(float(np.median(values))),
        "p90": round(float(np.quantile(values, 0.9))),
        "edges": [round(float(x)) for x in edges],
        "counts": [int(c) for c in counts],
    }


def default_period(today: date, days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """The last `days` days including today."""
    return today - timedelta(days=days - 1), today + timedelta(days=1)
