"""Reading the cell formats Japanese spreadsheets use: dates (1990/1/2, 19900102, 平成2年1月2日),
date-times in the shop's time zone, money with yen signs and commas, genders, prefectures with or without
the 都/道/府/県 suffix, and lists. Each parser returns the canonical value or raises ValueError(msgid)."""

import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kokyaku.kit.prefectures import PREFECTURE_EN, PREFECTURE_NAMES

# Eras of the Japanese calendar: name, initial, first day.
_ERAS = [
    ("令和", "r", date(2019, 5, 1)),
    ("平成", "h", date(1989, 1, 8)),
    ("昭和", "s", date(1926, 12, 25)),
    ("大正", "t", date(1912, 7, 30)),
    ("明治", "m", date(1868, 1, 25)),
]
_ERA_BY_KEY = {k: start for name, initial, start in _ERAS for k in (name, initial)}
_WAREKI = re.compile(
    r"^(令和|平成|昭和|大正|明治|[rhstm])\s*(元|\d{1,2})\s*[年./-]\s*(\d{1,2})\s*[月./-]\s*(\d{1,2})\s*日?$"
)
_YMD = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TIME = re.compile(r"^(\d{1,2})[:時](\d{1,2})(?:[:分](\d{1,2})(?:\.\d+)?秒?)?$")
_LIST_SPLIT = re.compile(r"[;,、，\n]+")
_SPACES = re.compile(r"\s+")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

BAD_DATE = "Must be a date (YYYY-MM-DD)."
BAD_DATETIME = "Must be a date and time, like 2025-04-01 10:30."
BAD_NUMBER = "Must be a whole number."
BAD_AMOUNT = "Must be an amount, like 1200 or ¥1,200."
BAD_CHOICE = "Not one of the allowed values."


def cell(value: str) -> str:
    """A cell as text: width folded, trimmed, and our own export's formula guard (a leading ') removed."""
    text = unicodedata.normalize("NFKC", value).strip() if not value.isascii() else value.strip()
    if text.startswith("'") and text[1:2] and text[1] in FORMULA_START:
        text = text[1:]
    return text


def parse_date(value: str) -> date:
    """1990-01-02, 1990/1/2, 1990.1.2, 1990年1月2日, 19900102, 平成2年1月2日, H2.1.2."""
    text = value.strip()
    if "T" in text or " " in text.strip():
        text = text.replace("T", " ").split(" ")[0]
    for pattern in (_YMD, _COMPACT):
        m = pattern.match(text)
        if m:
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                raise ValueError(BAD_DATE) from None
    m = _WAREKI.match(text.lower() if text[:1].isascii() else text)
    if m:
        start = _ERA_BY_KEY[m[1]]
        year = start.year + (1 if m[2] == "元" else int(m[2])) - 1
        try:
            result = date(year, int(m[3]), int(m[4]))
        except ValueError:
            raise ValueError(BAD_DATE) from None
        if result < start:
            raise ValueError(BAD_DATE)
        return result
    raise ValueError(BAD_DATE)


def parse_datetime(value: str, tz: str) -> datetime:
    """A date, or a date and time; without an offset the time is read in the shop's zone `tz`."""
    text = value.strip().replace("T", " ")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is not None:
        return parsed.replace(tzinfo=ZoneInfo(tz)) if parsed.tzinfo is None else parsed.astimezone(UTC)
    parts = text.split(None, 1)
    try:
        day = parse_date(parts[0])
    except ValueError:
        raise ValueError(BAD_DATETIME) from None
    clock = time(0, 0)
    if len(parts) == 2:
        m = _TIME.match(parts[1].replace(" ", ""))
        if not m:
            raise ValueError(BAD_DATETIME)
        try:
            clock = time(int(m[1]), int(m[2]), int(m[3] or 0))
        except ValueError:
            raise ValueError(BAD_DATETIME) from None
    return datetime.combine(day, clock, tzinfo=ZoneInfo(tz))


def parse_int(value: str) -> int:
    text = value.replace(",", "").replace(" ", "")
    if text.endswith(("個", "点", "件", "本", "枚")):
        text = text[:-1]
    try:
        number = float(text)
    except ValueError:
        raise ValueError(BAD_NUMBER) from None
    if not number.is_integer():
        raise ValueError(BAD_NUMBER)
    return int(number)


def parse_amount(value: str, minor_digits: int = 0) -> int:
    """'¥1,200', '1200円', '1200.50' -> integer minor units (JPY has none)."""
    text = value.replace(",", "").replace(" ", "").replace("¥", "").replace("\\", "").replace("円", "")
    text = text.removeprefix("JPY").removesuffix("JPY")
    try:
        number = float(text)
    except ValueError:
        raise ValueError(BAD_AMOUNT) from None
    scaled = round(number * 10**minor_digits, 6)
    if not scaled.is_integer():
        raise ValueError(BAD_AMOUNT)
    return int(scaled)


_GENDERS = {
    "男": "male", "男性": "male", "m": "male", "male": "male", "man": "male",
    "女": "female", "女性": "female", "f": "female", "female": "female", "woman": "female",
    "その他": "other", "other": "other", "x": "other",
    "不明": "unknown", "未回答": "unknown", "回答しない": "unknown", "無回答": "unknown",
    "unknown": "unknown",
}  # fmt: skip


def parse_gender(value: str) -> str:
    found = _GENDERS.get(value.strip().lower())
    if found is None:
        raise ValueError(BAD_CHOICE)
    return found


_PREF_BY_KEY: dict[str, str] = {}
for _name in PREFECTURE_NAMES:
    _PREF_BY_KEY[_name] = _name
    _PREF_BY_KEY[_name[:-1] if _name != "北海道" else _name] = _name  # 東京, 京都, 大阪
    _PREF_BY_KEY[PREFECTURE_EN[_name].lower()] = _name
    _PREF_BY_KEY[PREFECTURE_EN[_name].lower() + " prefecture"] = _name
_PREF_BY_KEY["tokyo to"] = "東京都"


def canonical_prefecture(value: str) -> str:
    """東京 / Tokyo / 東京都 -> 東京都; anything else is returned as is for the schema to refuse."""
    return _PREF_BY_KEY.get(value.strip().lower() if value.isascii() else value.strip(), value)


def split_address(value: str) -> tuple[str | None, str]:
    """'東京都千代田区...' -> ('東京都', '千代田区...'); an address without a prefecture keeps it all."""
    text = value.strip()
    for name in PREFECTURE_NAMES:
        if text.startswith(name):
            return name, text[len(name) :].strip()
    return None, text


def split_list(value: str) -> list[str]:
    return [part.strip() for part in _LIST_SPLIT.split(value) if part.strip()]


def split_identities(value: str) -> list[str]:
    """Several emails or phones in one cell, separated by ; , 、 or new lines."""
    return split_list(value)


def join_name(last: str | None, first: str | None) -> str | None:
    parts = [p for p in (last, first) if p]
    return " ".join(parts) if parts else None


def company_size(value: str) -> str:
    """'10-49', '10〜49', or a head count such as 120 -> one of the company-size bands."""
    text = _SPACES.sub("", value).replace("〜", "-").replace("~", "-").replace("人", "").replace("名", "")
    if text in ("1-9", "10-49", "50-249", "250-999", "1000+"):
        return text
    if text.endswith("以上"):
        text = text[:-2] + "+"
    if text == "1000+":
        return text
    try:
        count = int(text.replace(",", ""))
    except ValueError:
        raise ValueError(BAD_CHOICE) from None
    for limit, band in ((9, "1-9"), (49, "10-49"), (249, "50-249"), (999, "250-999")):
        if count <= limit:
            return band
    return "1000+"


def aware_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))


def days(n: int) -> timedelta:
    return timedelta(days=n)
