"""Pydantic shapes of customers and custom fields, in and out."""

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from kokyaku.customers.models import COMPANY_SIZES, GENDERS
from kokyaku.kit.ids import BodyId
from kokyaku.kit.normalize import (
    clean_text,
    normalize_email,
    normalize_external_id,
    normalize_phone,
    normalize_postal_code,
)
from kokyaku.kit.prefectures import PREFECTURE_NAMES

# Kana readings: hiragana, katakana, the long-vowel mark, middle dot and spaces (and Latin for
# foreign names written as they are read).
_KANA = re.compile(r"^[\u3040-\u309F\u30A0-\u30FF\u30FC\u30FB \u3000A-Za-z・ー]+$")


def _kana(value: str | None) -> str | None:
    value = clean_text(value)
    if value is not None and not _KANA.match(value):
        raise ValueError("Use hiragana or katakana only.")
    return value


def _postal(value: str | None) -> str | None:
    value = clean_text(value)
    return normalize_postal_code(value) if value else None


def _prefecture(value: str | None) -> str | None:
    value = clean_text(value)
    if value is not None and value not in PREFECTURE_NAMES:
        raise ValueError("Not a prefecture of Japan.")
    return value


# Control characters are invisible, break spreadsheets and exports, and have no place in a name or address;
# tab and new line are allowed only in the note.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: str | None) -> str | None:
    value = clean_text(value)
    if value is not None and _CONTROL_OR_BREAK.search(value):
        raise ValueError("Control characters are not allowed.")
    return value


def _note(value: str | None) -> str | None:
    value = clean_text(value)
    if value is not None and _CONTROL.search(value):
        raise ValueError("Control characters are not allowed.")
    return value


def _website(value: str | None) -> str | None:
    value = clean_text(value)
    if value is not None and not re.match(r"^https?://[^\s/]+\.[^\s]+$", value):
        raise ValueError("Not a web address (https://...).")
    return value


def _optional_text(max_length: int, validator: Callable[[str | None], str | None] = _text) -> Any:
    """An optional string: the length limit applies to a string, never to null."""
    return Annotated[str, Field(max_length=max_length), AfterValidator(validator)] | None


Kana = _optional_text(200, _kana)
Email = Annotated[str, Field(max_length=254), AfterValidator(normalize_email)]
Phone = Annotated[str, Field(max_length=30), AfterValidator(normalize_phone)]
Tag = Annotated[str, Field(min_length=1, max_length=50), AfterValidator(lambda v: _text(v) or "")]


class ExternalId(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Annotated[str, Field(min_length=1, max_length=50), AfterValidator(lambda v: _text(v) or "")]
    value: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(normalize_external_id)]


class CustomerFields(BaseModel):
    """Fields shared by create and update; every one optional here."""

    model_config = ConfigDict(extra="forbid", str_max_length=2000)

    name: _optional_text(200) = None  # type: ignore[valid-type]
    name_kana: Kana = None  # type: ignore[valid-type]
    emails: Annotated[list[Email] | None, Field(max_length=10)] = None
    phones: Annotated[list[Phone] | None, Field(max_length=10)] = None
    external_ids: Annotated[list[ExternalId] | None, Field(max_length=10)] = None
    birthday: date | None = None
    gender: Literal[GENDERS] | None = None  # type: ignore[valid-type]
    postal_code: _optional_text(10, _postal) = None  # type: ignore[valid-type]
    prefecture: _optional_text(10, _prefecture) = None  # type: ignore[valid-type]
    city: _optional_text(100) = None  # type: ignore[valid-type]
    street: _optional_text(200) = None  # type: ignore[valid-type]
    company_id: BodyId | None = None
    job_title: _optional_text(100) = None  # type: ignore[valid-type]
    industry: _optional_text(100) = None  # type: ignore[valid-type]
    company_size: Literal[COMPANY_SIZES] | None = None  # type: ignore[valid-type]
    website: _optional_text(300, _website) = None  # type: ignore[valid-type]
    source: _optional_text(100) = None  # type: ignore[valid-type]
    channel: _optional_text(30) = None  # type: ignore[valid-type]
    owner_id: BodyId | None = None
    locale: Literal["ja", "en"] | None = None
    note: _optional_text(2000, _note) = None  # type: ignore[valid-type]
    interests: Annotated[list[Tag] | None, Field(max_length=50)] = None
    custom: dict[str, Any] | None = None

    @field_validator("birthday")
    @classmethod
    def _birthday_in_past(cls, value: date | None) -> date | None:
        if value is not None and (value > date.today() or value.year < 1900):
            raise ValueError("The birthday must be a past date after 1900.")
        return value


class CustomerCreate(CustomerFields):
    kind: Literal["person", "company"] = "person"
    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(lambda v: _text(v) or "")]


class CustomerUpdate(CustomerFields):
    """Partial update: only the fields present in the request change."""


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    name: str
    name_kana: str | None
    email: str | None
    phone: str | None
    emails: list[str] = []
    phones: list[str] = []
    external_ids: list[ExternalId] = []
    birthday: date | None
    gender: str | None
    postal_code: str | None
    prefecture: str | None
    city: str | None
    street: str | None
    company_id: int | None
    job_title: str | None
    industry: str | None
    company_size: str | None
    website: str | None
    source: str | None
    channel: str | None
    owner_id: int | None
    locale: str | None
    note: str | None
    interests: list[str] = []
    custom: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None


class CustomFieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    label_ja: Annotated[str, Field(min_length=1, max_length=100)]
    label_en: Annotated[str, Field(min_length=1, max_length=100)]
    type: Literal["text", "number", "date", "choice"]
    choices: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=100)] = []
    applies_to: Literal["person", "company"] = "person"
    required: bool = False


class CustomFieldOut(CustomFieldIn):
    model_config = ConfigDict(from_attributes=True)
    id: int
