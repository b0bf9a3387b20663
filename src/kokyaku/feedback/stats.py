"""The per-day counters behind the results page (survey_daily_stats): added to by each response in its own
transaction, rebuilt from the responses on demand (a bulk load, a change of business time zone)."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from kokyaku.customers.models import Customer
from kokyaku.feedback import dialect
from kokyaku.feedback.models import (
    MULTIPLE,
    SCALES,
    SINGLE,
    STAT_COUNTERS,
    Answer,
    DailyStat,
    Invitation,
    Question,
    Response,
    TopicMention,
)

ALL, CHANNEL, STAGE, CHOICE, TOPIC = "all", "channel", "stage", "choice", "topic"
# personal links per local day they were sent: key SENT counts links made, key USED those answered since
INVITED, SENT, USED = "invited", "", "used"
NO_CUSTOMER = "~anonymous"  # the breakdown key of answers without a known customer
UNKNOWN = "~unknown"  # a customer without an acquisition channel
Increments = dict[tuple[str, str], dict[str, int]]  # (dim, key) -> counter -> +n
_UPSERT = dialect.upsert(
    DailyStat.__table__,  # type: ignore[arg-type]
    ("survey_id", "dim", "key", "day", *STAT_COUNTERS),
    conflict=("survey_id", "dim", "key", "day"),
    add=STAT_COUNTERS,
)


def local_day(at: datetime, tz: str) -> date:
    return at.astimezone(ZoneInfo(tz)).date()


def score_counters(nps: int | None, csat: int | None, ces: int | None) -> dict[str, int]:
    """One response's counters: n, and the value it gave on each scale it answered."""
    out = {"n": 1}
    for name, value in (("nps", nps), ("csat", csat), ("ces", ces)):
        if value is not None:
            out[f"{name}_{value}"] = 1
    return out


def customer_keys(session: Session, customer: Customer | None, stage: str | None = None) -> tuple[str, str]:
    """The breakdown keys of a customer now: acquisition channel, and lifecycle stage (no row: a lead);
    pass the `stage` when it is known already, to save the query."""
    if customer is None:
        return NO_CUSTOMER, NO_CUSTOMER
    if stage is not None:
        return (customer.channel or UNKNOWN)[:40], stage
    stage = "lead"
    try:
        from kokyaku.segments.models import CustomerLifecycle

        found = session.scalar(
            select(CustomerLifecycle.stage).where(CustomerLifecycle.customer_id == customer.id)
        )
        stage = found or stage
    except ImportError:  # pragma: no cover - only without the segments domain
        pass
    return (customer.channel or UNKNOWN)[:40], stage


def counted_questions(questions: list[Question]) -> list[Question]:
    """The questions counted by value under dim "choice": choice questions, and scale questions after the
    first of their kind (the first NPS, CSAT and CES are the counters of every row)."""
    seen: set[str] = set()
    wanted: list[Question] = []
    for q in questions:
        if q.kind in (SINGLE, MULTIPLE):
            wanted.append(q)
        elif q.kind in SCALES:
            if q.kind in seen:
                wanted.append(q)
            seen.add(q.kind)
    return wanted


def response_increments(
    *,
    scores: dict[str, int],
    channel: str,
    stage: str,
    choices: Iterable[tuple[int, int]] = (),
    topics: Iterable[tuple[str, str]] = (),
) -> Increments:
    """The rows one response adds to: everything, its channel and stage, each choice and each topic."""
    inc: Increments = {
        (ALL, ""): dict(scores),
        (CHANNEL, channel): dict(scores),
        (STAGE, stage): dict(scores),
    }
    for question_id, value in choices:
        inc.setdefault((CHOICE, f"{question_id}:{value}"), {"n": 0})["n"] += 1
    for topic, sentiment in topics:
        inc.setdefault((TOPIC, f"{topic}:{sentiment}"), {"n": 0})["n"] += 1
    return inc


def add(session: Session, survey_id: int, day: date, increments: Increments) -> None:
    """Add to the day's counters (see `add_rows`)."""
    add_rows(session, survey_id, [(day, dim, key, counters) for (dim, key), counters in increments.items()])


def add_rows(session: Session, survey_id: int, rows: Iterable[tuple[date, str, str, dict[str, int]]]) -> None:
    """Add to the counters of (day, dim, key) rows: one upsert per row, in key order (so that two responses
    at once lock the shared rows in the same order and cannot deadlock), in one executemany."""
    params = [
        {
            "survey_id": survey_id,
            "dim": dim,
            "key": key,
            "day": day,
            **{c: counters.get(c, 0) for c in STAT_COUNTERS},
        }
        for day, dim, key, counters in sorted(rows, key=lambda r: (r[1], r[2], r[0]))
    ]
    if params:
        session.execute(_UPSERT, params)


def rebuild(session: Session, survey_id: int, tz: str) -> int:
    """Recount a survey's days from its responses (channel and stage as the customers have them now);
    returns the number of rows written. Set-based: one GROUP BY per kind of row."""
    session.execute(delete(DailyStat).where(DailyStat.survey_id == survey_id))
    totals: dict[tuple[str, str, date], dict[str, int]] = defaultdict(lambda: dict.fromkeys(STAT_COUNTERS, 0))

    def count(dim: str, key: str, day: date, counters: dict[str, int], n: int) -> None:
        row = totals[(dim, key, day)]
        for name in counters:
            row[name] += n

    stage_col: Any = None
    source: Any = Response.__table__.outerjoin(Customer, Customer.id == Response.customer_id)
    try:
        from kokyaku.segments.models import CustomerLifecycle

        source = source.outerjoin(CustomerLifecycle, CustomerLifecycle.customer_id == Response.customer_id)
        stage_col = CustomerLifecycle.stage
    except ImportError:  # pragma: no cover
        pass
    columns = [
        Response.day,
        Response.nps_score,
        Response.csat_score,
        Response.ces_score,
        Response.customer_id.is_(None),
        Customer.channel,
        stage_col if stage_col is not None else Customer.kind,
    ]
    grouped = session.execute(
        select(*columns, func.count())
        .select_from(source)
        .where(Response.survey_id == survey_id)
        .group_by(*columns)
    ).all()
    for day, nps, csat, ces, anonymous, channel, stage, n in grouped:
        counters = score_counters(nps, csat, ces)
        channel_key = NO_CUSTOMER if anonymous else (channel or UNKNOWN)[:40]
        stage_key = NO_CUSTOMER if anonymous else (stage if stage_col is not None and stage else "lead")
        count(ALL, "", day, counters, n)
        count(CHANNEL, channel_key, day, counters, n)
        count(STAGE, stage_key, day, counters, n)
    counted = [
        q.id
        for q in counted_questions(
            list(
                session.scalars(
                    select(Question)
                    .where(Question.survey_id == survey_id)
                    .order_by(Question.position, Question.id)
                )
            )
        )
    ]
    choices = (
        session.execute(
            select(Response.day, Answer.question_id, Answer.value_int, func.count())
            .join(Response, Response.id == Answer.response_id)
            .where(Answer.question_id.in_(counted), Answer.value_int.is_not(None))
            .group_by(Response.day, Answer.question_id, Answer.value_int)
        ).all()
        if counted
        else []
    )
    for day, qid, value, n in choices:
        count(CHOICE, f"{qid}:{value}", day, {"n": 1}, n)
    topics = session.execute(
        select(TopicMention.day, TopicMention.topic, TopicMention.sentiment, func.count())
        .where(TopicMention.survey_id == survey_id, TopicMention.source_type == "answer")
        .group_by(TopicMention.day, TopicMention.topic, TopicMention.sentiment)
    ).all()
    for day, topic, sentiment, n in topics:
        count(TOPIC, f"{topic}:{sentiment}", day, {"n": 1}, n)
    sent = session.execute(
        select(Invitation.sent_at, func.count(), func.count(Invitation.used_at))
        .where(Invitation.survey_id == survey_id)
        .group_by(Invitation.sent_at)  # a batch of links shares its time
    )
    for at, made, used in sent:
        day = local_day(at, tz)
        count(INVITED, SENT, day, {"n": 1}, made)
        if used:
            count(INVITED, USED, day, {"n": 1}, used)
    rows = [
        {"survey_id": survey_id, "dim": dim, "key": key, "day": day, **values}
        for (dim, key, day), values in totals.items()
    ]
    for i in range(0, len(rows), 2000):
        session.execute(insert(DailyStat), rows[i : i + 2000])
    return len(rows)
