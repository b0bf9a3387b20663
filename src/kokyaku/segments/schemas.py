"""Pydantic shapes of segments, members, counts, RFM summaries and lifecycle journeys."""

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kokyaku.kit.normalize import clean_text


def _name(value: str) -> str:
    text = clean_text(value)
    if not text:
        raise ValueError("This field is required.")
    return text


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_name)]
Description = Annotated[str | None, Field(max_length=1000), AfterValidator(clean_text)]
Rules = Annotated[
    dict[str, Any],
    Field(
        description='Nested groups: {"op": "and"|"or", "conditions": [{"field": "age", "operator": '
        '"between", "value": [30, 39]}, {"op": "or", "conditions": [...]}]}. '
        "GET /api/v1/segments/fields lists the fields."
    ),
]


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = None
    kind: Literal["dynamic", "static"] = "dynamic"
    rules: Rules


class SegmentUpdate(BaseModel):
    """Partial update; a static segment's rules cannot change (freeze the dynamic one again instead)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description = None
    rules: Rules | None = None


class SegmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    kind: str
    rules: dict[str, Any]
    frozen_at: datetime | None
    source_id: int | None
    size: int | None
    counted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SegmentPage(BaseModel):
    items: list[SegmentOut]
    next_cursor: str | None


class RulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: Rules


class FreezeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None


class CountOut(BaseModel):
    count: int
    counted_at: datetime


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    name: str
    name_kana: str | None
    email: str | None
    phone: str | None
    prefecture: str | None
    city: str | None


class MemberPage(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None


class PreviewOut(BaseModel):
    count: int
    sample: list[MemberOut]
    description: str


class SizePoint(BaseModel):
    day: date
    size: int


class FieldOut(BaseModel):
    key: str
    label: str
    category: str
    kind: str
    operators: list[str]
    choices: list[str] | None
    unit: str | None
    days: bool
    minimum: float | None
    maximum: float | None


class RfmCell(BaseModel):
    r: int
    f: int
    segment: str
    customers: int
    revenue: int


class RfmSegmentOut(BaseModel):
    key: str
    label: str
    meaning: str
    customers: int
    revenue: int


class RfmSummary(BaseModel):
    computed_at: datetime | None
    customers: int
    active: int
    grid: list[RfmCell]
    segments: list[RfmSegmentOut]
    bounds: dict[str, dict[str, list[int]]]


class RfmScores(BaseModel):
    r: int
    f: int
    m: int
    segment: str
    computed_at: datetime


class StageChangeOut(BaseModel):
    stage: str
    from_stage: str | None
    changed_at: datetime


class LifecycleOut(BaseModel):
    customer_id: int
    stage: str
    since: datetime | None
    rfm: RfmScores | None
    history: list[StageChangeOut]


class RecomputeOut(BaseModel):
    job_id: int | None = None
    status: str
    run_id: int | None = None
