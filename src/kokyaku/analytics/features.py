"""Feature extraction for the CLV models: per-customer purchase days from the orders table, as numpy arrays.

One GROUP BY over distinct (customer, local day) pairs and one over customers, in SQL on either database;
the models never see the database (ARCHITECTURE.md, rule 6).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from kokyaku.analytics.models.summary import UNIT_DAYS, Unit
from kokyaku.commerce.metrics import base_currency
from kokyaku.commerce.models import VOID_STATUSES
from kokyaku.config import get_settings
from kokyaku.db import UTCDateTime
from kokyaku.kit.money import minor_to_major

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Features:
    """Per-customer purchase-day features up to `until` (inclusive); arrays sorted by customer id.

    Days are local calendar days (the business's time zone) counted from 1970-01-01."""

    customer_id: IntArray
    first_day: IntArray
    last_day: IntArray
    frequency: IntArray  # distinct repeat purchase days (the first purchase day is not a repeat)
    monetary: FloatArray  # mean spend per repeat purchase day, minor units; NaN without repeats
    until: date
    currency: str

    @property
    def end_day(self) -> int:
        return (self.until - EPOCH).days

    def recency(self, unit: Unit = "week") -> FloatArray:
        """First to last purchase day, in units."""
        return np.asarray((self.last_day - self.first_day) / UNIT_DAYS[unit], dtype=np.float64)

    def age(self, unit: Unit = "week") -> FloatArray:
        """First purchase day to the end of `until`, in units."""
        return np.asarray((self.end_day - self.first_day) / UNIT_DAYS[unit], dtype=np.float64)

    def monetary_major(self) -> FloatArray:
        """Mean repeat spend in major units of the currency (yen, dollars)."""
        return np.asarray(self.monetary * minor_to_major(1, self.currency), dtype=np.float64)


def utc_offset_minutes(tz: str, on: date) -> int:
    """The zone's offset from UTC at noon on a day (fixed for Asia/Tokyo; DST zones use that day's)."""
    offset = datetime.combine(on, time(12), ZoneInfo(tz)).utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


def day_number_sql(dialect: str, column: str, offset_minutes: int) -> str:
    """SQL for the local calendar day of a naive-UTC timestamp column, as days since 1970-01-01."""
    minutes = int(offset_minutes)  # an int, so safe to inline
    if dialect == "postgresql":
        return f"(CAST({column} + interval '{minutes} minutes' AS date) - DATE '1970-01-01')"
    # Portable fallback (SQLite): julianday counts from noon, so midnight 1970-01-01 is 2440587.5.
    return f"CAST(julianday(date({column}, '{minutes:+d} minutes')) - 2440587.5 AS INTEGER)"


def raise_work_mem(session: Session) -> None:
    """PostgreSQL's default work_mem (4 MB) makes these aggregations spill: raise it for this transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL work_mem = '256MB'"))


def extract(session: Session, *, until: date, tz: str | None = None, currency: str | None = None) -> Features:
    """Per-customer first/last purchase day, repeat purchase days and mean repeat spend up to `until`."""
    tz = tz or get_settings().timezone
    currency = currency or base_currency()
    offset = utc_offset_minutes(tz, until)
    dialect = session.get_bind().dialect.name
    day = day_number_sql(dialect, "ordered_at", offset)
    # The index on ordered_at limits the scan; the local-day bound is the exclusive end of `until` in UTC.
    end = datetime.combine(until + timedelta(days=1), time(0), ZoneInfo(tz)).astimezone(UTC)
    sql = text(
        f"""
        WITH days AS (
            SELECT customer_id, {day} AS d, SUM(total) AS spend
            FROM orders
            WHERE ordered_at < :end AND status NOT IN :void AND currency = :currency
            GROUP BY customer_id, {day}
        ), marked AS (
            SELECT customer_id, d, spend, MIN(d) OVER (PARTITION BY customer_id) AS first_d FROM days
        )
        SELECT customer_id, MIN(d), MAX(d), COUNT(*) - 1,
               SUM(CASE WHEN d > first_d THEN spend ELSE 0 END)
        FROM marked
        GROUP BY customer_id
        ORDER BY customer_id
        """
    ).bindparams(
        bindparam("end", type_=UTCDateTime),
        bindparam("void", expanding=True),
    )
    raise_work_mem(session)
    rows = session.execute(sql, {"end": end, "void": list(VOID_STATUSES), "currency": currency}).all()
    table = np.array(rows, dtype=np.int64).reshape(-1, 5)
    frequency = table[:, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, table[:, 4] / np.maximum(frequency, 1), np.nan)
    return Features(
        customer_id=table[:, 0],
        first_day=table[:, 1],
        last_day=table[:, 2],
        frequency=frequency,
        monetary=monetary.astype(np.float64),
        until=until,
        currency=currency,
    )
