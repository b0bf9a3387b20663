"""REST routes of analytics: a customer's scores, the KPI board, cohort retention and the calibration/holdout
check of the repeat-purchase models."""

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from kokyaku.analytics.cohorts import cohorts, segment_members
from kokyaku.analytics.holdout import FIRST_DAY, LAST_DAY, HoldoutUnit, RepeatModel, holdout_check
from kokyaku.analytics.kpis import DEFAULT_DAYS, KPIS, SURVEY_DEFINITIONS, board
from kokyaku.analytics.schemas import (
    CohortOut,
    CohortsOut,
    HoldoutOut,
    KpiBoardOut,
    KpiOut,
    ScoresOut,
    SurveyKpiOut,
)
from kokyaku.analytics.tables import CustomerScore
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.commerce.metrics import base_currency
from kokyaku.customers import service as customers
from kokyaku.deps import DB, SettingsDep, api_permission
from kokyaku.errors import NotFound, ValidationFailed
from kokyaku.kit.ids import PathId, QueryId

router = APIRouter(prefix="/api/v1", tags=["analytics"])
Reader = Annotated[User, Depends(api_permission(Perm.ANALYTICS_READ))]


class ScoresNotFound(NotFound):
    code = "scores_not_found"
    message = "Customer {id} has no scores yet: they appear after the scoring run (kokyaku analytics run)."


def _in_range(field: str, day: date | None) -> None:
    if day is not None and not FIRST_DAY <= day <= LAST_DAY:
        message = "Choose a date between {first} and {last}."
        raise ValidationFailed([(field, message, {"first": FIRST_DAY, "last": LAST_DAY})])


@router.get("/customers/{customer_id}/scores", response_model=ScoresOut)
def customer_scores(db: DB, _user: Reader, customer_id: PathId) -> ScoresOut:
    """The customer's probability still active, expected purchases, 12-month value and churn band."""
    customers.get_customer(db, customer_id)
    score = db.get(CustomerScore, customer_id)
    if score is None:
        raise ScoresNotFound(id=customer_id)
    return ScoresOut(
        customer_id=score.customer_id,
        p_alive=score.p_alive,
        expected_90d=score.expected_90d,
        expected_365d=score.expected_365d,
        clv_12m=score.clv_12m,
        currency=base_currency(),
        churn_band=score.churn_band,
        model=score.model,
        scored_at=score.scored_at,
    )


@router.get("/analytics/kpis", response_model=KpiBoardOut)
def kpis(
    db: DB,
    _user: Reader,
    settings: SettingsDep,
    start: Annotated[
        date | None, Query(alias="from", description="First day (default: 90 days up to `to`)")
    ] = None,
    last: Annotated[
        date | None, Query(alias="to", description="Last day, inclusive (default: today)")
    ] = None,
) -> KpiBoardOut:
    """The KPI board over [from, to] (local days), each figure with its definition."""
    _in_range("from", start)
    _in_range("to", last)
    if start and last and start > last:
        raise ValidationFailed([("from", "The start of the period must not be after its end.", {})])
    tz = settings.timezone
    if last is None:
        today = datetime.now(ZoneInfo(tz)).date()
        last = max(today, start) if start else today
    first = start or last - timedelta(days=DEFAULT_DAYS - 1)
    end = last + timedelta(days=1)
    result = board(db, start=first, end=end, tz=tz)
    return KpiBoardOut(
        start=first,
        end=end - timedelta(days=1),
        currency=base_currency(),
        kpis={
            key: KpiOut(value=result.values.get(key), label=label, definition=definition, format=kind)
            for key, (label, definition, kind) in KPIS.items()
        },
        clv=result.clv,
        nps=SurveyKpiOut(
            value=result.nps, responses=result.nps_responses, definition=SURVEY_DEFINITIONS["nps"]
        ),
        csat=SurveyKpiOut(
            value=result.csat, responses=result.csat_responses, definition=SURVEY_DEFINITIONS["csat"]
        ),
    )


@router.get("/analytics/cohorts", response_model=CohortsOut)
def cohort_matrix(
    db: DB,
    _user: Reader,
    settings: SettingsDep,
    channel: Annotated[str | None, Query(max_length=100)] = None,
    segment_id: QueryId = None,
    months: Annotated[int, Query(ge=1, le=36)] = 12,
) -> CohortsOut:
    """Monthly acquisition cohorts: customers retained and revenue per month since the first purchase,
    optionally of one acquisition channel and one segment's members."""
    members = segment_members(db, segment_id, settings.timezone) if segment_id else None
    rows = cohorts(db, months=months, channel=channel or None, members=members)
    return CohortsOut(
        channel=channel or None,
        segment_id=segment_id,
        currency=base_currency(),
        cohorts=[
            CohortOut(
                month=c.month,
                size=c.size,
                retained=c.retained,
                retained_percent=[round(c.percent(k), 2) for k in range(len(c.retained))],
                revenue=c.revenue,
            )
            for c in rows
        ],
    )


@router.get("/analytics/holdout", response_model=HoldoutOut)
def holdout(
    db: DB,
    _user: Reader,
    settings: SettingsDep,
    model: RepeatModel,
    until: Annotated[date, Query(description="Cut-off: the last day of the calibration period")],
    unit: HoldoutUnit = "week",
    end: Annotated[date | None, Query(description="Last day of the holdout (default: last purchase)")] = None,
) -> Any:
    """Fit the model on the orders up to `until`, predict the cumulative repeat purchases per period and
    compare with the actual ones: the curve and its mean absolute percentage error over the holdout."""
    check = holdout_check(db, model=model, until=until, unit=unit, end=end, tz=settings.timezone)
    return check.as_dict()
