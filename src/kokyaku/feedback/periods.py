"""Grouping times into local weeks and months inside the database (one function per database, the portable
interface beside them): trend charts are GROUP BYs, never a scan in Python."""

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal_column
from sqlalchemy.orm import Session

from kokyaku.db import utcnow

UNITS = ("week", "month")


def offset_minutes(tz: str, at: datetime | None = None) -> int:
    """The zone's current offset from UTC. Buckets shift every time by it: exact for zones without daylight
    saving time (Asia/Tokyo); elsewhere an answer within an hour of midnight may fall in the next bucket."""
    offset = (at or utcnow()).astimezone(ZoneInfo(tz)).utcoffset()
    return int(offset.total_seconds() // 60) if offset else 0


def bucket(session: Session, column: Any, unit: str, tz: str) -> Any:
    """An SQL expression naming the local period of `column`: 'YYYY-MM' for months, the Monday
    'YYYY-MM-DD' for weeks."""
    minutes = offset_minutes(tz)
    if session.get_bind().dialect.name == "postgresql":
        shifted = column + literal_column(f"interval '{int(minutes)} minutes'")
        if unit == "week":
            return func.to_char(func.date_trunc("week", shifted), "YYYY-MM-DD")
        return func.to_char(shifted, "YYYY-MM")
    shift = f"{int(minutes):+d} minutes"
    if unit == "week":
        # 'weekday 0' moves to the coming Sunday (or stays on one); six days back is that week's Monday
        return func.date(column, shift, "weekday 0", "-6 days")
    return func.strftime("%Y-%m", column, shift)


def day_start(day: date, tz: str) -> datetime:
    """The UTC instant at which the local `day` begins."""
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)


def day_bucket(session: Session, column: Any, unit: str) -> Any:
    """An SQL expression naming the period of a local date column: 'YYYY-MM', or the Monday 'YYYY-MM-DD'."""
    if session.get_bind().dialect.name == "postgresql":
        if unit == "week":
            return func.to_char(func.date_trunc("week", column), "YYYY-MM-DD")
        return func.to_char(column, "YYYY-MM")
    if unit == "week":
        return func.date(column, "weekday 0", "-6 days")
    return func.substr(column, 1, 7)  # SQLite stores dates as 'YYYY-MM-DD'
