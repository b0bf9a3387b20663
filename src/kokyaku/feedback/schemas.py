"""Pydantic shapes of surveys, invitations, results, reviews and follow-ups, in and out."""

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from kokyaku.feedback.models import (
    INVITATION_CHANNELS,
    MULTIPLE,
    QUESTION_KINDS,
    SINGLE,
    SURVEY_STATUSES,
)
from kokyaku.kit.ids import BodyId
from kokyaku.kit.normalize import clean_text, normalize_email

MAX_QUESTIONS = 50
MAX_CHOICES = 30
MAX_INVITE = 20_000
MAX_REVIEWS = 1000
_SOURCE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")


def _required_text(max_length: int) -> Any:
    return Annotated[
        str, Field(min_length=1, max_length=max_length), AfterValidator(lambda v: _not_blank(clean_text(v)))
    ]


def _optional_text(max_length: int) -> Any:
    return Annotated[str, Field(max_length=max_length), AfterValidator(lambda v: clean_text(v) or "")]


def _not_blank(value: str | None) -> str:
    if not value:
        raise ValueError("This field is required.")
    return value


class ChoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ja: _required_text(200)  # type: ignore[valid-type]
    en: _required_text(200)  # type: ignore[valid-type]


class QuestionIn(BaseModel):
    """One question, worded in Japanese and English; choice questions list their options in both."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal[QUESTION_KINDS]  # type: ignore[valid-type]
    text_ja: _required_text(500)  # type: ignore[valid-type]
    text_en: _required_text(500)  # type: ignore[valid-type]
    required: bool = True
    choices: Annotated[list[ChoiceIn], Field(max_length=MAX_CHOICES)] = []

    @model_validator(mode="after")
    def _choices_fit_kind(self) -> "QuestionIn":
        if self.kind in (SINGLE, MULTIPLE) and len(self.choices) < 2:
            raise ValueError("A choice question needs at least two choices.")
        if self.kind not in (SINGLE, MULTIPLE) and self.choices:
            raise ValueError("Only choice questions have choices.")
        return self


class SurveyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: _required_text(200)  # type: ignore[valid-type]
    title_ja: _optional_text(200) = ""  # type: ignore[valid-type]
    title_en: _optional_text(200) = ""  # type: ignore[valid-type]
    thank_you_ja: _optional_text(2000) = ""  # type: ignore[valid-type]
    thank_you_en: _optional_text(2000) = ""  # type: ignore[valid-type]
    public_enabled: bool = True
    link_days: Annotated[int, Field(ge=1, le=365)] = 30
    questions: Annotated[list[QuestionIn], Field(min_length=1, max_length=MAX_QUESTIONS)]


class SurveyUpdate(BaseModel):
    """Every field optional; `questions` replaces the whole list (only while no one has answered)."""

    model_config = ConfigDict(extra="forbid")
    name: _required_text(200) | None = None  # type: ignore[valid-type]
    status: Literal[SURVEY_STATUSES] | None = None  # type: ignore[valid-type]
    title_ja: _optional_text(200) | None = None  # type: ignore[valid-type]
    title_en: _optional_text(200) | None = None  # type: ignore[valid-type]
    thank_you_ja: _optional_text(2000) | None = None  # type: ignore[valid-type]
    thank_you_en: _optional_text(2000) | None = None  # type: ignore[valid-type]
    public_enabled: bool | None = None
    link_days: Annotated[int, Field(ge=1, le=365)] | None = None
    questions: Annotated[list[QuestionIn], Field(min_length=1, max_length=MAX_QUESTIONS)] | None = None


class QuestionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    position: int
    kind: str
    text_ja: str
    text_en: str
    required: bool
    choices: list[dict[str, str]]


class SurveyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    status: str
    title_ja: str
    title_en: str
    thank_you_ja: str
    thank_you_en: str
    public_enabled: bool
    public_slug: str
    public_url: str = ""
    link_days: int
    created_at: datetime
    updated_at: datetime
    questions: list[QuestionOut] = []


class SurveyPage(BaseModel):
    items: list[SurveyOut]
    next_cursor: str | None


class InvitationsIn(BaseModel):
    """Personal links for customers (by id) and/or every member of a segment."""

    model_config = ConfigDict(extra="forbid")
    channel: Literal[INVITATION_CHANNELS] = "email"  # type: ignore[valid-type]
    customer_ids: Annotated[list[BodyId], Field(max_length=MAX_INVITE)] = []
    segment_id: BodyId | None = None

    @model_validator(mode="after")
    def _someone(self) -> "InvitationsIn":
        if not self.customer_ids and self.segment_id is None:
            raise ValueError("Choose customers or a segment.")
        return self


class InvitationOut(BaseModel):
    id: int
    customer_id: int
    channel: str
    url: str
    sent_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class InvitationsOut(BaseModel):
    created: int
    emailed: int
    skipped: dict[str, int]  # reason -> how many customers
    invitations: list[InvitationOut]


class Bucket(BaseModel):
    key: str
    label: str
    responses: int
    nps: float | None
    csat: float | None
    ces: float | None


class QuestionResult(BaseModel):
    question_id: int
    kind: str
    text: str
    counts: dict[str, int]  # value (or choice index) -> answers


class Comment(BaseModel):
    answer_id: int
    response_id: int
    customer_id: int | None
    customer_name: str | None
    submitted_at: datetime
    text: str
    sentiment: str | None
    sentiment_score: float | None
    topics: list[str]
    score: int | None


class ResultsOut(BaseModel):
    survey_id: int
    responses: int
    invitations: int
    invited_responses: int
    response_rate: float | None
    nps: float | None
    promoters: int
    passives: int
    detractors: int
    nps_distribution: dict[str, int]
    csat: float | None
    csat_distribution: dict[str, int]
    ces: float | None
    ces_distribution: dict[str, int]
    trend: list[Bucket]
    by_channel: list[Bucket]
    by_lifecycle: list[Bucket]
    questions: list[QuestionResult]
    comments: list[Comment]


class Summary(BaseModel):
    """NPS or CSAT over all surveys in a period (the KPI board)."""

    since: date | datetime | None
    until: date | datetime | None
    responses: int
    value: float | None  # NPS (-100..100) or CSAT % (0..100)
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    satisfied: int = 0


def _source(value: str) -> str:
    value = value.strip().lower()
    if not _SOURCE.match(value):
        raise ValueError("Use lower-case letters, digits and _ only, starting with a letter.")
    return value


def _url(value: str | None) -> str | None:
    value = clean_text(value)
    if value is not None and not re.match(r"^https?://[^\s/]+[^\s]*$", value):
        raise ValueError("Not a web address (https://...).")
    return value


def _email(value: str | None) -> str | None:
    value = clean_text(value)
    return normalize_email(value) if value else None


class ReviewIn(BaseModel):
    """A review from a review site or social network; (source, external_id) identifies it."""

    model_config = ConfigDict(extra="forbid")
    source: Annotated[str, Field(min_length=1, max_length=20), AfterValidator(_source)]
    external_id: _required_text(200)  # type: ignore[valid-type]
    rating: Annotated[int, Field(ge=1, le=5)]
    title: Annotated[str | None, Field(max_length=300), AfterValidator(clean_text)] = None
    text: Annotated[str | None, Field(max_length=5000), AfterValidator(clean_text)] = None
    author: Annotated[str | None, Field(max_length=200), AfterValidator(clean_text)] = None
    posted_at: datetime
    url: Annotated[str | None, Field(max_length=1000), AfterValidator(_url)] = None
    customer_id: BodyId | None = None
    customer_email: Annotated[str | None, Field(max_length=254), AfterValidator(_email)] = None


class ReviewsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviews: Annotated[list[ReviewIn], Field(min_length=1, max_length=MAX_REVIEWS)]


class ImportResult(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    linked: int = 0
    alerts: int = 0
    followups: int = 0


class ReviewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    source: str
    external_id: str
    rating: int
    title: str | None
    text: str | None
    author: str | None
    posted_at: datetime
    url: str | None
    customer_id: int | None
    link_method: str | None
    sentiment: str | None
    sentiment_score: float | None
    topics: list[str]
    negative: bool
    alert: bool
    acknowledged_at: datetime | None


class ReviewPage(BaseModel):
    items: list[ReviewOut]
    next_cursor: str | None


class ReviewLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: BodyId | None


class FollowupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    customer_id: int
    source_type: str
    source_id: int
    owner_id: int | None
    due_on: date
    status: str
    resolution: str | None
    created_at: datetime
    closed_at: datetime | None


class FollowupPage(BaseModel):
    items: list[FollowupOut]
    next_cursor: str | None


class FollowupClose(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: _required_text(2000)  # type: ignore[valid-type]
