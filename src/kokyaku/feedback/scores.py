"""What a customer's answer changes elsewhere (timeline entry, latest NPS, follow-up for a detractor), the
per-customer latest NPS that segment rules read, and the NPS / CSAT summaries of the KPI board."""

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, delete, func, select
from sqlalchemy.orm import Session

from kokyaku.config import Settings
from kokyaku.customers.models import Customer
from kokyaku.feedback import dialect
from kokyaku.feedback.models import TEXT, CustomerScore, Response, Survey
from kokyaku.feedback.schemas import Summary
from kokyaku.timeline import entries as timeline

if TYPE_CHECKING:
    from kokyaku.feedback.responses import Given, Submitted

PROMOTER, PASSIVE, DETRACTOR = "promoter", "passive", "detractor"
NPS_CATEGORIES = (PROMOTER, PASSIVE, DETRACTOR)


def nps_category(score: int) -> str:
    return PROMOTER if score >= 9 else PASSIVE if score >= 7 else DETRACTOR


def nps_value(promoters: int, detractors: int, total: int) -> float | None:
    """NPS = % promoters - % detractors, on -100..100 (None without answers)."""
    return round(100.0 * (promoters - detractors) / total, 1) if total else None


def record_answered(
    session: Session,
    settings: Settings,
    *,
    customer: Customer,
    survey: Survey,
    response: "Submitted",
    answers: "list[Given]",
    base_url: str,
) -> None:
    """A known customer answered: their timeline, their latest NPS, and a follow-up for a detractor."""
    score = next(
        (s for s in (response.nps_score, response.csat_score, response.ces_score) if s is not None), None
    )
    timeline.survey_answered(
        session,
        customer_id=customer.id,
        response_id=response.id,
        at=response.submitted_at,
        survey_name=survey.name,
        score=score,
        channel="web",
    )
    if response.nps_score is None:
        return
    upsert_score(session, customer.id, response.nps_score, response.submitted_at, response.id)
    if nps_category(response.nps_score) == DETRACTOR:
        from kokyaku.feedback.followups import create_followup

        quote = "\n".join(a.text for a in answers if a.question.kind == TEXT and a.text)
        create_followup(
            session,
            settings,
            customer=customer,
            source_type="response",
            source_id=response.id,
            quote=quote or None,
            score=response.nps_score,
            base_url=base_url,
            now=response.submitted_at,
        )


_SCORE_COLUMNS = ("customer_id", "nps_score", "nps_category", "nps_answered_at", "response_id")
_UPSERT_SCORE = dialect.upsert(
    CustomerScore.__table__,  # type: ignore[arg-type]
    _SCORE_COLUMNS,
    conflict=("customer_id",),
    replace=_SCORE_COLUMNS[1:],
    newer="nps_answered_at",
)


def upsert_score(session: Session, customer_id: int, score: int, at: datetime, response_id: int) -> None:
    """Make this the customer's latest NPS unless a later answer is stored already (one statement, so two
    answers at once cannot both insert)."""
    values = {
        "customer_id": customer_id,
        "nps_score": score,
        "nps_category": nps_category(score),
        "nps_answered_at": at,
        "response_id": response_id,
    }
    session.execute(_UPSERT_SCORE, values)


def recompute_scores(session: Session, customer_ids: list[int]) -> None:
    """Rebuild the latest-NPS rows of these customers from their responses (after a merge or its undo)."""
    for customer_id in customer_ids:
        session.execute(delete(CustomerScore).where(CustomerScore.customer_id == customer_id))
        latest = session.execute(
            select(Response.nps_score, Response.submitted_at, Response.id)
            .where(Response.customer_id == customer_id, Response.nps_score.is_not(None))
            .order_by(Response.submitted_at.desc(), Response.id.desc())
            .limit(1)
        ).first()
        if latest is not None:
            upsert_score(session, customer_id, latest[0], latest[1], latest[2])


def latest_nps(session: Session, customer_id: int) -> CustomerScore | None:
    """The customer's latest NPS answer (score, category, when)."""
    return session.get(CustomerScore, customer_id)


# ---------------------------------------------------------------- the KPI board


def _period(stmt: Any, since: date | datetime | None, until: date | datetime | None) -> Any:
    if since is not None:
        stmt = stmt.where(Response.submitted_at >= since)
    if until is not None:
        stmt = stmt.where(Response.submitted_at < until)
    return stmt


def _by_day(since: date | datetime | None, until: date | datetime | None) -> bool:
    """Dates (or nothing) are answered from the daily counters; exact instants from the responses."""
    return not isinstance(since, datetime) and not isinstance(until, datetime)


def nps_summary(
    session: Session, since: date | datetime | None = None, until: date | datetime | None = None
) -> Summary:
    """NPS over every survey's answers in [since, until): local days (dates) or instants (datetimes)."""
    if _by_day(since, until):
        from kokyaku.feedback.results import all_surveys_scores

        t = all_surveys_scores(session, since, until)  # type: ignore[arg-type]
        return Summary(
            since=since,
            until=until,
            responses=t.nps_n,
            value=t.nps,
            promoters=t.promoters,
            passives=t.passives,
            detractors=t.detractors,
        )
    s = Response.nps_score
    stmt = _period(
        select(
            func.count(s),
            func.coalesce(func.sum(case((s >= 9, 1), else_=0)), 0),
            func.coalesce(func.sum(case((and_(s >= 7, s <= 8), 1), else_=0)), 0),
            func.coalesce(func.sum(case((s <= 6, 1), else_=0)), 0),
        ).where(s.is_not(None)),
        since,
        until,
    )
    total, promoters, passives, detractors = (int(v or 0) for v in session.execute(stmt).one())
    return Summary(
        since=since,
        until=until,
        responses=total,
        value=nps_value(promoters, detractors, total),
        promoters=promoters,
        passives=passives,
        detractors=detractors,
    )


def csat_summary(
    session: Session, since: date | datetime | None = None, until: date | datetime | None = None
) -> Summary:
    """CSAT % (4 or 5 out of 5) over every survey's answers in [since, until) (dates or instants)."""
    if _by_day(since, until):
        from kokyaku.feedback.results import all_surveys_scores

        t = all_surveys_scores(session, since, until)  # type: ignore[arg-type]
        return Summary(since=since, until=until, responses=t.csat_n, value=t.csat, satisfied=t.csat_good)
    s = Response.csat_score
    stmt = _period(
        select(func.count(s), func.coalesce(func.sum(case((s >= 4, 1), else_=0)), 0)).where(s.is_not(None)),
        since,
        until,
    )
    total, satisfied = (int(v or 0) for v in session.execute(stmt).one())
    value = round(100.0 * satisfied / total, 1) if total else None
    return Summary(since=since, until=until, responses=total, value=value, satisfied=satisfied)
