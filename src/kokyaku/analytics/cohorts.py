"""Monthly acquisition cohorts x months since the first purchase: customers retained and revenue.

A customer belongs to the cohort of the month of their first counted purchase (local time) and is retained
in month k if they bought in the k-th month after it. One GROUP BY over (customer, month) pairs in SQL,
optionally limited to an acquisition channel and to a segment's members."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, func, literal_column, select, text
from sqlalchemy.orm import Session

from kokyaku.analytics.features import raise_work_mem, utc_offset_minutes
from kokyaku.commerce.metrics import base_currency
from kokyaku.commerce.models import VOID_STATUSES, Order
from kokyaku.config import get_settings
from kokyaku.customers.models import Customer
from kokyaku.segments import service as segments


@dataclass(frozen=True)
class Cohort:
    month: str  # YYYY-MM
    size: int
    retained: list[int]  # customers buying in month k = 0, 1, ... (k = 0 is the whole cohort)
    revenue: list[int]  # minor units, per month k

    def percent(self, k: int) -> float:
        return 100.0 * self.retained[k] / self.size if self.size else 0.0


def month_number_sql(dialect: str, column: str, offset_minutes: int) -> str:
    """SQL for year * 12 + month - 1 of a naive-UTC timestamp column in local time."""
    minutes = int(offset_minutes)
    if dialect == "postgresql":
        local = f"({column} + interval '{minutes} minutes')"
        return f"CAST(EXTRACT(YEAR FROM {local}) * 12 + EXTRACT(MONTH FROM {local}) - 1 AS INTEGER)"
    # Portable fallback (SQLite)
    local = f"datetime({column}, '{minutes:+d} minutes')"
    return f"(CAST(strftime('%Y', {local}) AS INTEGER) * 12 + CAST(strftime('%m', {local}) AS INTEGER) - 1)"


def channels(session: Session) -> list[str]:
    """Acquisition channels customers have, for the filter."""
    rows = session.execute(
        text("SELECT DISTINCT channel FROM customers WHERE channel IS NOT NULL ORDER BY 1")
    )
    return [r[0] for r in rows]


def segment_members(session: Session, segment_id: int, tz: str) -> Select[Any]:
    """SELECT customers.id of a segment's members (dynamic: its rules now; static: its frozen list);
    SegmentNotFound (404) if there is no such segment."""
    segment = segments.get_segment(session, segment_id)
    # The segments domain owns what membership means; it hands back the compiled condition.
    return segments.membership(session, segment, tz).select_from(Customer.id)


def cohorts(
    session: Session,
    *,
    months: int = 12,
    channel: str | None = None,
    members: Select[Any] | None = None,
    today: date | None = None,
) -> list[Cohort]:
    """The last `months` acquisition cohorts (oldest first), optionally of one acquisition channel and of
    the customers `members` selects (a SELECT of customer ids, e.g. segment_members)."""
    tz = get_settings().timezone
    today = today or datetime.now(ZoneInfo(tz)).date()
    mo: ColumnElement[int] = literal_column(
        month_number_sql(session.get_bind().dialect.name, "orders.ordered_at", utc_offset_minutes(tz, today))
    )
    current = today.year * 12 + today.month - 1
    first_cohort = current - months + 1
    where = [Order.status.not_in(VOID_STATUSES), Order.currency == base_currency()]
    if channel:
        where.append(Customer.channel == channel)
    if members is not None:
        where.append(Order.customer_id.in_(members))
    om = (
        select(Order.customer_id, mo.label("mo"), func.sum(Order.total).label("revenue"))
        .join(Customer, Customer.id == Order.customer_id)
        .where(*where)
        .group_by(Order.customer_id, mo)
        .cte("om")
    )
    firsts = (
        select(om.c.customer_id, func.min(om.c.mo).label("cohort")).group_by(om.c.customer_id).cte("firsts")
    )
    since = (om.c.mo - firsts.c.cohort).label("k")
    sql = (
        select(firsts.c.cohort, since, func.count(), func.sum(om.c.revenue))
        .join_from(om, firsts, firsts.c.customer_id == om.c.customer_id)
        .where(firsts.c.cohort >= first_cohort, firsts.c.cohort <= current)
        .group_by(firsts.c.cohort, om.c.mo - firsts.c.cohort)
        .order_by(firsts.c.cohort, om.c.mo - firsts.c.cohort)
    )
    raise_work_mem(session)
    table: dict[int, tuple[list[int], list[int]]] = {}
    for cohort, k, customers, revenue in session.execute(sql):
        cohort, k = int(cohort), int(k)
        if k > current - cohort:
            continue
        retained, money = table.setdefault(
            cohort, ([0] * (current - cohort + 1), [0] * (current - cohort + 1))
        )
        retained[k], money[k] = int(customers), int(revenue or 0)
    return [
        Cohort(month=f"{c // 12:04d}-{c % 12 + 1:02d}", size=r[0], retained=r, revenue=m)
        for c, (r, m) in sorted(table.items())
    ]
