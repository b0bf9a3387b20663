"""A survey's figures: NPS, CSAT, CES, response rate, distributions, trend, breakdowns, comments and topics.

Without a segment filter every figure comes from survey_daily_stats (stats.py): one row per survey, day and
breakdown key, kept current by each response, so the page reads a few hundred rows whether the survey has a
hundred answers or a million. Filtered to a segment's members, the same figures are GROUP BYs over the
responses' covering index (ix_survey_responses_survey_day_scores), which carries the local day and the
headline scores copied onto each response.
"""

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from kokyaku.customers.models import Customer
from kokyaku.feedback import periods, stats
from kokyaku.feedback.models import (
    CES,
    CSAT,
    NPS,
    SCALES,
    STAT_COUNTERS,
    Answer,
    DailyStat,
    Invitation,
    Question,
    Response,
    TopicMention,
)
from kokyaku.feedback.scores import nps_value
from kokyaku.feedback.stats import NO_CUSTOMER, UNKNOWN
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor

__all__ = ["NO_CUSTOMER", "UNKNOWN"]


@dataclass
class Filters:
    """Which responses count: local days [since, until) and the members of one segment."""

    since: date | None = None
    until: date | None = None
    segment_where: ColumnElement[bool] | None = None  # a WHERE over customers (segments' compiled rules)
    segment_joins: list[str] = field(default_factory=list)

    def members(self) -> Any:
        from kokyaku.segments.rules import Compiled

        return Compiled(self.segment_where, list(self.segment_joins)).select_from(Customer.id)  # type: ignore[arg-type]

    def apply(self, stmt: Any) -> Any:
        """Restrict a statement over survey_responses."""
        if self.since is not None:
            stmt = stmt.where(Response.day >= self.since)
        if self.until is not None:
            stmt = stmt.where(Response.day < self.until)
        if self.segment_where is not None:
            stmt = stmt.where(Response.customer_id.in_(self.members()))
        return stmt

    def days(self, stmt: Any) -> Any:
        """Restrict a statement over survey_daily_stats."""
        if self.since is not None:
            stmt = stmt.where(DailyStat.day >= self.since)
        if self.until is not None:
            stmt = stmt.where(DailyStat.day < self.until)
        return stmt

    @property
    def active(self) -> bool:
        return self.since is not None or self.until is not None or self.segment_where is not None


def make_filters(
    session: Session,
    *,
    tz: str,
    since: date | None = None,
    until: date | None = None,
    segment_id: int | None = None,
) -> Filters:
    """Filters for local days and, optionally, the members of a segment (asked of the segments domain)."""
    f = Filters(since=since, until=until)
    if segment_id is not None:
        from kokyaku.segments import service as segments
        from kokyaku.segments.models import STATIC, SegmentMember

        segment = segments.get_segment(session, segment_id)
        if segment.kind == STATIC:
            listed = select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)
            f.segment_where = Customer.id.in_(listed)
        else:
            compiled = segments.compile_rules(session, segment.rules, tz)
            f.segment_where, f.segment_joins = compiled.where, list(compiled.joins)
    return f


@dataclass
class Scores:
    """Answers per value of the three scales (index 0 is the lowest value) and the figures from them."""

    responses: int = 0
    nps_counts: list[int] = field(default_factory=lambda: [0] * 11)
    csat_counts: list[int] = field(default_factory=lambda: [0] * 5)
    ces_counts: list[int] = field(default_factory=lambda: [0] * 7)

    def add_row(self, row: Mapping[str, Any] | Any) -> None:
        """Add a counters row (a survey_daily_stats row, or the same names in a dict)."""
        get = row.get if isinstance(row, Mapping) else lambda k, d=0: getattr(row, k, d)
        self.responses += int(get("n", 0) or 0)
        for v in range(11):
            self.nps_counts[v] += int(get(f"nps_{v}", 0) or 0)
        for v in range(5):
            self.csat_counts[v] += int(get(f"csat_{v + 1}", 0) or 0)
        for v in range(7):
            self.ces_counts[v] += int(get(f"ces_{v + 1}", 0) or 0)

    def add(self, other: "Scores") -> None:
        self.responses += other.responses
        self.nps_counts = [a + b for a, b in zip(self.nps_counts, other.nps_counts, strict=True)]
        self.csat_counts = [a + b for a, b in zip(self.csat_counts, other.csat_counts, strict=True)]
        self.ces_counts = [a + b for a, b in zip(self.ces_counts, other.ces_counts, strict=True)]

    nps_n = property(lambda self: sum(self.nps_counts))
    promoters = property(lambda self: sum(self.nps_counts[9:]))
    passives = property(lambda self: sum(self.nps_counts[7:9]))
    detractors = property(lambda self: sum(self.nps_counts[:7]))
    csat_n = property(lambda self: sum(self.csat_counts))
    csat_good = property(lambda self: sum(self.csat_counts[3:]))
    ces_n = property(lambda self: sum(self.ces_counts))

    @property
    def nps(self) -> float | None:
        return nps_value(self.promoters, self.detractors, self.nps_n)

    @property
    def csat(self) -> float | None:
        return round(100.0 * self.csat_good / self.csat_n, 1) if self.csat_n else None

    @property
    def ces(self) -> float | None:
        total = sum((v + 1) * n for v, n in enumerate(self.ces_counts))
        return round(total / self.ces_n, 2) if self.ces_n else None

    def distribution(self, kind: str) -> dict[int, int]:
        low = SCALES[kind][0]
        counts = {NPS: self.nps_counts, CSAT: self.csat_counts, CES: self.ces_counts}[kind]
        return {low + i: n for i, n in enumerate(counts) if n}


@dataclass
class Group:
    key: str
    scores: Scores


@dataclass
class ChoiceCounts:
    question: Question
    counts: dict[int, int]  # value or option index -> answers


@dataclass
class Results:
    scores: Scores
    invitations: int
    invited_responses: int
    trend: list[Group]
    by_channel: list[Group]
    by_lifecycle: list[Group]
    questions: list[ChoiceCounts]
    unit: str

    @property
    def response_rate(self) -> float | None:
        """Answered personal links / personal links sent, in %."""
        return round(100.0 * self.invited_responses / self.invitations, 1) if self.invitations else None

    nps_distribution = property(lambda self: self.scores.distribution(NPS))
    csat_distribution = property(lambda self: self.scores.distribution(CSAT))
    ces_distribution = property(lambda self: self.scores.distribution(CES))


def period_of(day: date, unit: str) -> str:
    """'YYYY-MM' for months; the Monday 'YYYY-MM-DD' for weeks."""
    if unit == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return f"{day.year:04d}-{day.month:02d}"


def survey_results(
    session: Session,
    survey_id: int,
    questions: list[Question],
    *,
    tz: str,
    filters: Filters | None = None,
    unit: str = "month",
) -> Results:
    """Every figure of the results page except comments and topics (see `comments` and `topic_trend`)."""
    f = filters or Filters()
    per_period: dict[str, Scores] = defaultdict(Scores)
    groups: dict[str, dict[str, Scores]] = {
        stats.CHANNEL: defaultdict(Scores),
        stats.STAGE: defaultdict(Scores),
    }
    choice: dict[str, int] = defaultdict(int)
    wanted = stats.counted_questions(questions)
    if f.segment_where is None:
        counters = [DailyStat.__table__.c[c] for c in STAT_COUNTERS]
        sums = [func.sum(c).label(c.name) for c in counters]
        period = periods.day_bucket(session, DailyStat.day, unit).label("period")
        for row in session.execute(
            f.days(
                select(period, *sums)
                .where(DailyStat.survey_id == survey_id, DailyStat.dim == stats.ALL)
                .group_by(period)
            )
        ).mappings():
            per_period[str(row["period"])].add_row(row)
        for row in session.execute(
            f.days(
                select(DailyStat.dim, DailyStat.key, *sums)
                .where(DailyStat.survey_id == survey_id, DailyStat.dim.in_([stats.CHANNEL, stats.STAGE]))
                .group_by(DailyStat.dim, DailyStat.key)
            )
        ).mappings():
            groups[row["dim"]][row["key"]].add_row(row)
        if wanted:  # choice rows carry only `n`: summing the other counters would read them for nothing
            for key, n in session.execute(
                f.days(
                    select(DailyStat.key, func.sum(DailyStat.n))
                    .where(DailyStat.survey_id == survey_id, DailyStat.dim == stats.CHOICE)
                    .group_by(DailyStat.key)
                )
            ):
                choice[key] += int(n or 0)
    else:
        per_day: dict[date, Scores] = defaultdict(Scores)
        _from_responses(session, survey_id, f, per_day, groups, choice, wanted)
        for day, scores in per_day.items():
            per_period[period_of(day, unit)].add(scores)
    total = Scores()
    for scores in per_period.values():
        total.add(scores)

    invitations, used = _invitations(session, survey_id, f, tz)

    def ranked(dim: str) -> list[Group]:
        return sorted(
            (Group(k, s) for k, s in groups[dim].items()), key=lambda g: (-g.scores.responses, g.key)
        )

    counts = [ChoiceCounts(q, {}) for q in wanted]
    by_id = {c.question.id: c for c in counts}
    for key, n in choice.items():
        qid, _, value = key.partition(":")
        if int(qid) in by_id:
            by_id[int(qid)].counts[int(value)] = n
    return Results(
        scores=total,
        invitations=invitations,
        invited_responses=used,
        trend=[Group(p, per_period[p]) for p in sorted(per_period)],
        by_channel=ranked(stats.CHANNEL),
        by_lifecycle=ranked(stats.STAGE),
        questions=counts,
        unit=unit,
    )


def _invitations(session: Session, survey_id: int, f: Filters, tz: str) -> tuple[int, int]:
    """Personal links sent in the period, and how many of them were answered: from the daily counters,
    or, for a segment's members, from the links themselves."""
    if f.segment_where is None:
        stmt = f.days(
            select(DailyStat.key, func.sum(DailyStat.n))
            .where(DailyStat.survey_id == survey_id, DailyStat.dim == stats.INVITED)
            .group_by(DailyStat.key)
        )
        found = {key: int(n or 0) for key, n in session.execute(stmt)}
        return found.get(stats.SENT, 0), found.get(stats.USED, 0)
    inv = select(func.count(), func.count(Invitation.used_at)).where(
        Invitation.survey_id == survey_id, Invitation.customer_id.in_(f.members())
    )
    if f.since is not None:
        inv = inv.where(Invitation.sent_at >= periods.day_start(f.since, tz))
    if f.until is not None:
        inv = inv.where(Invitation.sent_at < periods.day_start(f.until, tz))
    sent, used = (int(v or 0) for v in session.execute(inv).one())
    return sent, used


def _from_responses(
    session: Session,
    survey_id: int,
    f: Filters,
    per_day: dict[date, Scores],
    groups: dict[str, dict[str, Scores]],
    choice: dict[str, int],
    wanted: list[Question],
) -> None:
    """The same figures for a segment's members, grouped from the responses themselves."""
    base = Response.survey_id == survey_id
    values = (Response.nps_score, Response.csat_score, Response.ces_score)
    rows = session.execute(
        f.apply(select(Response.day, *values, func.count()).where(base).group_by(Response.day, *values))
    )
    for day, nps, csat, ces, n in rows:
        per_day[day].add_row({k: v * n for k, v in stats.score_counters(nps, csat, ces).items()})
    keys: list[tuple[str, Any, Any]] = [(stats.CHANNEL, func.coalesce(Customer.channel, UNKNOWN), None)]
    try:
        from kokyaku.segments.models import CustomerLifecycle

        join = (CustomerLifecycle, CustomerLifecycle.customer_id == Response.customer_id)
        keys.append((stats.STAGE, func.coalesce(CustomerLifecycle.stage, "lead"), join))
    except ImportError:  # pragma: no cover
        pass
    for dim, column, extra in keys:
        key = case((Response.customer_id.is_(None), NO_CUSTOMER), else_=column).label("key")
        stmt = (
            select(key, *values, func.count())
            .select_from(Response)
            .outerjoin(Customer, Customer.id == Response.customer_id)
        )
        if extra is not None:
            stmt = stmt.outerjoin(*extra)
        for k, nps, csat, ces, n in session.execute(f.apply(stmt.where(base).group_by(key, *values))):
            groups[dim][str(k)].add_row({c: v * n for c, v in stats.score_counters(nps, csat, ces).items()})
    if wanted:
        stmt = (
            select(Answer.question_id, Answer.value_int, func.count())
            .join(Response, Response.id == Answer.response_id)
            .where(Answer.question_id.in_([q.id for q in wanted]), Answer.value_int.is_not(None))
            .group_by(Answer.question_id, Answer.value_int)
        )
        for qid, value, n in session.execute(f.apply(stmt)):
            choice[f"{qid}:{value}"] += int(n)


def segment_scores(session: Session, survey_id: int, filters: Filters) -> Scores:
    """The headline scores of one segment's members."""
    values = (Response.nps_score, Response.csat_score, Response.ces_score)
    out = Scores()
    stmt = select(*values, func.count()).where(Response.survey_id == survey_id).group_by(*values)
    for nps, csat, ces, n in session.execute(filters.apply(stmt)):
        out.add_row({k: v * n for k, v in stats.score_counters(nps, csat, ces).items()})
    return out


# ---------------------------------------------------------------- comments and topics


@dataclass
class CommentRow:
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


def comments(
    session: Session,
    survey_id: int,
    *,
    sentiment: str | None = None,
    topic: str | None = None,
    filters: Filters | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> Page[CommentRow]:
    """Newest comments first (keyset on the answer id), with their sentiment and topics."""
    stmt = (
        select(
            Answer.id,
            Answer.response_id,
            Response.customer_id,
            Customer.name,
            Response.submitted_at,
            Answer.text,
            Answer.sentiment,
            Answer.sentiment_score,
            Answer.topics,
            func.coalesce(Response.nps_score, Response.csat_score, Response.ces_score),
        )
        .join(Response, Response.id == Answer.response_id)
        .outerjoin(Customer, Customer.id == Response.customer_id)
        .where(Answer.survey_id == survey_id, Answer.has_text.is_(True))
    )
    if sentiment:
        stmt = stmt.where(Answer.sentiment == sentiment)
    if topic:
        hits = select(TopicMention.source_id).where(
            TopicMention.survey_id == survey_id,
            TopicMention.topic == topic,
            TopicMention.source_type == "answer",
        )
        stmt = stmt.where(Answer.id.in_(hits))
    if filters is not None:
        stmt = filters.apply(stmt)
    after = decode_cursor(cursor)
    if after:
        if len(after) != 1 or not isinstance(after[0], int) or isinstance(after[0], bool):
            raise BadCursor(field="cursor")
        stmt = stmt.where(Answer.id < after[0])
    rows = session.execute(stmt.order_by(Answer.id.desc()).limit(limit + 1)).all()
    items = [
        CommentRow(
            answer_id=r[0],
            response_id=r[1],
            customer_id=r[2],
            customer_name=r[3],
            submitted_at=r[4],
            text=r[5] or "",
            sentiment=r[6],
            sentiment_score=r[7],
            topics=list(r[8] or []),
            score=r[9],
        )
        for r in rows[:limit]
    ]
    return Page(items, encode_cursor([items[-1].answer_id]) if len(rows) > limit and items else None)


@dataclass
class TopicTrend:
    periods: list[str]
    topics: list[str]  # most mentioned first
    # topic -> period -> (positive, neutral, negative)
    cells: dict[str, dict[str, tuple[int, int, int]]]

    def totals(self, topic: str) -> tuple[int, int, int]:
        values = self.cells.get(topic, {}).values()
        return (sum(v[0] for v in values), sum(v[1] for v in values), sum(v[2] for v in values))


_SLOT = {"positive": 0, "neutral": 1, "negative": 2}


def _topic_trend(rows: Any, unit: str, top: int) -> TopicTrend:
    cells: dict[str, dict[str, list[int]]] = {}
    found: set[str] = set()
    for day, topic, sentiment, n in rows:  # a day, or already the period's name
        p = day if isinstance(day, str) else period_of(day, unit)
        found.add(p)
        cell = cells.setdefault(topic, {}).setdefault(p, [0, 0, 0])
        cell[_SLOT.get(sentiment, 1)] += int(n)
    ranked = sorted(cells, key=lambda t: (-sum(sum(v) for v in cells[t].values()), t))[:top]
    frozen = {t: {p: (v[0], v[1], v[2]) for p, v in cells[t].items()} for t in ranked}
    return TopicTrend(sorted(found), ranked, frozen)


def topic_trend(
    session: Session, survey_id: int, *, unit: str = "month", filters: Filters | None = None, top: int = 8
) -> TopicTrend:
    """Mentions of each topic in a survey's comments, by sentiment and period."""
    f = filters or Filters()
    if f.segment_where is None:
        period = periods.day_bucket(session, DailyStat.day, unit)
        stmt = f.days(
            select(period, DailyStat.key, func.sum(DailyStat.n))
            .where(DailyStat.survey_id == survey_id, DailyStat.dim == stats.TOPIC)
            .group_by(period, DailyStat.key)
        )
        rows = [(str(p), *key.split(":", 1), n) for p, key, n in session.execute(stmt)]
    else:
        stmt = (
            select(TopicMention.day, TopicMention.topic, TopicMention.sentiment, func.count())
            .join(Answer, Answer.id == TopicMention.source_id)
            .join(Response, Response.id == Answer.response_id)
            .where(TopicMention.survey_id == survey_id, TopicMention.source_type == "answer")
            .group_by(TopicMention.day, TopicMention.topic, TopicMention.sentiment)
        )
        rows = [tuple(r) for r in session.execute(f.apply(stmt))]
    return _topic_trend(rows, unit, top)


def review_topic_trend(
    session: Session, *, unit: str = "month", since: date | None = None, top: int = 8
) -> TopicTrend:
    """Mentions of each topic in the reviews, by sentiment and period (a GROUP BY in index order)."""
    stmt = select(TopicMention.day, TopicMention.topic, TopicMention.sentiment, func.count()).where(
        TopicMention.source_type == "review"
    )
    if since is not None:
        stmt = stmt.where(TopicMention.day >= since)
    stmt = stmt.group_by(TopicMention.day, TopicMention.topic, TopicMention.sentiment)
    return _topic_trend(session.execute(stmt), unit, top)


def responses_of_customer(session: Session, customer_id: int, limit: int = 10) -> list[Response]:
    stmt = (
        select(Response)
        .where(Response.customer_id == customer_id)
        .order_by(Response.submitted_at.desc(), Response.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def scores_of_surveys(session: Session, survey_ids: list[int]) -> dict[int, Scores]:
    """Each survey's headline scores, from the daily counters (one GROUP BY for a list page)."""
    if not survey_ids:
        return {}
    counters = [func.sum(DailyStat.__table__.c[c]).label(c) for c in STAT_COUNTERS]
    stmt = (
        select(DailyStat.survey_id, *counters)
        .where(DailyStat.survey_id.in_(survey_ids), DailyStat.dim == stats.ALL)
        .group_by(DailyStat.survey_id)
    )
    out: dict[int, Scores] = {}
    for row in session.execute(stmt).mappings():
        out[row["survey_id"]] = Scores()
        out[row["survey_id"]].add_row(row)
    return out


def all_surveys_scores(session: Session, since: date | None = None, until: date | None = None) -> Scores:
    """Every survey's answers on local days [since, until), from the daily counters (the KPI board)."""
    counters = [func.sum(DailyStat.__table__.c[c]).label(c) for c in STAT_COUNTERS]
    stmt = select(*counters).where(DailyStat.dim == stats.ALL)
    if since is not None:
        stmt = stmt.where(DailyStat.day >= since)
    if until is not None:
        stmt = stmt.where(DailyStat.day < until)
    out = Scores()
    out.add_row(session.execute(stmt).mappings().one())
    return out
