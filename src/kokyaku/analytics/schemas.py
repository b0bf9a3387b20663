"""What the analytics API returns: scores, the KPI board, cohorts and the calibration/holdout check."""

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class ScoresOut(BaseModel):
    """A customer's latest model scores (written by `kokyaku analytics run`)."""

    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    customer_id: int
    p_alive: float
    expected_90d: float
    expected_365d: float
    clv_12m: int
    currency: str
    churn_band: str
    model: str
    scored_at: datetime


class KpiOut(BaseModel):
    value: float | int | None
    label: str
    definition: str
    format: str  # count | percent | money | number


class SurveyKpiOut(BaseModel):
    value: float | None
    responses: int
    definition: str


class KpiBoardOut(BaseModel):
    start: date
    end: date  # inclusive
    currency: str
    kpis: dict[str, KpiOut]
    clv: dict[str, Any]
    nps: SurveyKpiOut
    csat: SurveyKpiOut


class CohortOut(BaseModel):
    month: str
    size: int
    retained: list[int]
    retained_percent: list[float]
    revenue: list[int]


class CohortsOut(BaseModel):
    channel: str | None
    segment_id: int | None
    currency: str
    cohorts: list[CohortOut]


class CurvePoint(BaseModel):
    period: int
    start: date
    actual: int
    predicted: float
    holdout: bool


class HoldoutRepeats(BaseModel):
    actual: int
    predicted: float


class HoldoutOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    unit: str
    until: date
    start: date
    end: date
    customers: int
    params: dict[str, float]
    log_likelihood: float
    cutoff_period: float
    calibration_periods: int
    holdout_periods: int
    mape_percent: float | None
    calibration_mape_percent: float | None
    holdout_repeats: HoldoutRepeats
    curve: list[CurvePoint]
