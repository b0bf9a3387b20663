"""Pydantic shapes of touchpoints, timeline entries and ingested events, in and out."""

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from kokyaku.kit.normalize import clean_text, normalize_email, normalize_external_id, normalize_phone
from kokyaku.timeline.models import TOUCHPOINT_CHANNELS

MAX_BATCH = 1000
# Properties are context (page URL, campaign, product); a cap keeps one event from bloating the table.
MAX_PROPERTIES_BYTES = 8192

# RFC 5322 dot-atom (what email_validator accepts before the @ without further checks), lower-cased.
_ATEXT = "a-z0-9!#$%&'*+/=?^_`{|}~-"
_LOCAL = re.compile(f"[{_ATEXT}]+(?:\\.[{_ATEXT}]+)*")
_PLAIN_DOMAIN = re.compile(r"[a-z0-9.-]+")
_EMAIL_MAX = 254


@lru_cache(maxsize=4096)
def _room_before(domain: str) -> int:
    """How long a dot-atom local part may be in front of this (plain ASCII) domain; -1 if the domain is
    not one email_validator accepts. Its checks of the domain do not depend on the local part, apart from
    the address's total length, which is why a valid domain can be checked once."""
    try:
        checked = validate_email("a@" + domain, check_deliverability=False)
    except EmailNotValidError:
        return -1
    longest = max(len(domain), len(checked.domain.encode()), len(checked.ascii_domain.encode()))
    return _EMAIL_MAX - 1 - longest


def fast_normalize_email(value: str) -> str:
    """normalize_email with a shortcut for plain addresses (a dot-atom before the @, a plain ASCII domain
    already known valid): the full check costs ~40 µs, and one event batch brings dozens of new senders
    from the same few domains. Anything else takes normalize_email itself."""
    if value.isascii():
        lowered = value.strip().lower()
        local, at, domain = lowered.rpartition("@")
        plain = at and _PLAIN_DOMAIN.fullmatch(domain) and _LOCAL.fullmatch(local)
        if plain and len(local) <= _room_before(domain):
            return lowered
    return normalize_email(value)


# The same senders recur across events and batches.
_normalize_email = lru_cache(maxsize=65536)(fast_normalize_email)
_normalize_phone = lru_cache(maxsize=65536)(normalize_phone)

Channel = Literal[TOUCHPOINT_CHANNELS]  # type: ignore[valid-type]


def _properties(value: dict[str, Any]) -> dict[str, Any]:
    if _surely_small(value):
        return value
    if len(json.dumps(value, ensure_ascii=False, default=str)) > MAX_PROPERTIES_BYTES:
        raise ValueError("At most 8 KB of properties.")
    return value


def _surely_small(value: dict[str, Any]) -> bool:
    """True when a flat object of short scalars cannot reach the cap, whatever JSON escapes: a bound on
    the size without encoding it (each character escapes to at most 6, these numbers print in at most 32)."""
    if len(value) > 64:
        return False
    size = 2
    for k, v in value.items():
        if type(v) is str:
            size += 6 * (len(k) + len(v)) + 6
        elif (type(v) is int and -(10**30) < v < 10**30) or type(v) in (float, bool) or v is None:
            size += 6 * len(k) + 36
        else:
            return False
    return size <= MAX_PROPERTIES_BYTES


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(value: datetime | None) -> datetime | None:
    """The time in UTC, as it is stored; times before 1970 are typos (or overflow when converted)."""
    if value is None:
        return None
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("Not a valid time.") from exc
    if value < EARLIEST:
        raise ValueError("Must be after 1970.")
    return value


def _summary(value: str | None) -> str:
    return clean_text(value) or ""


Properties = Annotated[dict[str, Any], AfterValidator(_properties)]
Summary = Annotated[str | None, Field(max_length=500), AfterValidator(_summary)]
TouchpointType = Annotated[
    str, Field(min_length=1, max_length=50), AfterValidator(lambda v: clean_text(v) or "")
]


class TouchpointIn(BaseModel):
    """A touchpoint logged by a person or an integration; `at` defaults to now."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    type: TouchpointType
    at: Annotated[AwareDatetime | None, AfterValidator(_utc)] = None
    summary: Summary = ""
    properties: Properties = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _type_not_blank(cls, value: str) -> str:
        if not value:
            raise ValueError("This field is required.")
        return value


class TouchpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    channel: str
    type: str
    at: datetime
    summary: str
    properties: dict[str, Any]
    source_event_id: str | None


class TouchpointPage(BaseModel):
    items: list[TouchpointOut]
    next_cursor: str | None


class TimelineEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    at: datetime
    kind: str
    channel: str | None
    summary: str
    ref_type: str | None
    ref_id: int | None
    properties: dict[str, Any]


class TimelinePage(BaseModel):
    items: list[TimelineEntryOut]
    next_cursor: str | None


# ---------------------------------------------------------------- ingestion


class EventIn(BaseModel):
    """One event of an ingestion batch; validated one by one so that a bad event spoils only itself."""

    model_config = ConfigDict(extra="forbid")

    event_id: Annotated[str, Field(min_length=1, max_length=100)]
    type: Annotated[str, Field(min_length=1, max_length=50)]
    at: Annotated[AwareDatetime, AfterValidator(_utc)]
    email: Annotated[str | None, Field(max_length=254)] = None
    phone: Annotated[str | None, Field(max_length=30)] = None
    external_id: Annotated[str | None, Field(max_length=200)] = None
    source: Annotated[str | None, Field(max_length=50)] = None
    anonymous_id: Annotated[str | None, Field(max_length=200)] = None
    channel: Channel | None = None
    summary: Summary = ""
    properties: Properties = Field(default_factory=dict)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return _normalize_email(value) if value else None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return _normalize_phone(value) if value else None

    @field_validator("external_id", "anonymous_id")
    @classmethod
    def _ident(cls, value: str | None) -> str | None:
        return normalize_external_id(value) if value and value.strip() else None

    @model_validator(mode="after")
    def _has_key(self) -> "EventIn":
        if not (self.email or self.phone or self.external_id or self.anonymous_id):
            raise ValueError("An event needs at least one of email, phone, external_id or anonymous_id.")
        return self


class EventBatch(BaseModel):
    """The request body: events are checked one by one by the ingestion, not here."""

    events: list[Any]


class EventError(BaseModel):
    field: str
    message: str


class EventResult(BaseModel):
    index: int
    status: Literal["created", "duplicate", "invalid"]
    customer_id: int | None = None
    errors: list[EventError] = Field(default_factory=list)


class IngestCounts(BaseModel):
    created: int = 0
    duplicate: int = 0
    invalid: int = 0
    prospects_created: int = 0
    customers_merged: int = 0


class IngestResult(BaseModel):
    results: list[EventResult]
    counts: IngestCounts
