"""Monthly acquisition cohorts x months since the first purchase: customers retained and revenue.

A customer belongs to the cohort of the month of their first counted purchase (local time) and is retained
in month k if they bought in the k-th month after it. One GROUP BY over (customer, month) pairs in SQL."""

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from kokyaku.analytics.features import raise_work_mem, utc_offset_minutes
from kokyaku.commerce.metrics import base_currency
from kokyaku.commerce.models import VOID_STATUSES
from kokyaku.config import get_settings


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


def cohorts(
    session: Session, *, months: int = 12, channel: str | None = None, today: date | None = None
) -> list[Cohort]:
    """The last `months` acquisition cohorts (oldest first), optionally of one acquisition channel."""
    tz = get_settings().timezone
    today = today or datetime.now(ZoneInfo(tz)).date()
    month = month_number_sql(session.get_bind().dialect.name, "o.ordered_at", utc_offset_minutes(tz, today))
    current = today.year * 12 + today.month - 1
    first_cohort = current - months + 1
    where_channel = "AND c.channel = :channel" if channel else ""
    sql = text(
        f"""
        WITH om AS (
            SELECT o.customer_id, {month} AS mo, SUM(o.total) AS revenue
            FROM orders o JOIN customers c ON c.id = o.customer_id
            WHERE o.status NOT IN :void AND o.currency = :currency {where_channel}
            GROUP BY o.customer_id, {month}
        ), firsts AS (
            SELECT customer_id, MIN(mo) AS cohort FROM om GROUP BY customer_id
        )
        SELECT f.cohort, om.mo - f.cohort AS k, COUNT(*) AS customers, SUM(om.revenue) AS revenue
        FROM om JOIN firsts f ON f.customer_id = om.customer_id
        WHERE f.cohort >= :first AND f.cohort <= :current
        GROUP BY f.cohort, om.mo - f.cohort
        ORDER BY 1, 2
        """
    ).bindparams(bindparam("void", expanding=True))
    params = {
        "void": list(VOID_STATUSES),
        "currency": base_currency(),
        "first": first_cohort,
        "current": current,
    }
    if channel:
        params["channel"] = channel
    raise_work_mem(session)
    table: dict[int, tuple[list[int], list[int]]] = {}
    for cohort, k, customers, revenue in session.execute(sql, params):
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
