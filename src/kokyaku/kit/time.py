"""Time helpers: everything is stored in UTC and shown in the user's zone."""

from datetime import date, datetime
from zoneinfo import ZoneInfo


def to_local(value: datetime | None, tz: str = "Asia/Tokyo") -> datetime | None:
    return value.astimezone(ZoneInfo(tz)) if value else None


def age_on(birthday: date | None, today: date) -> int | None:
    if birthday is None:
        return None
    return today.year - birthday.year - ((today.month, today.day) < (birthday.month, birthday.day))
