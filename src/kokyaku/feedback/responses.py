"""Answering a survey: opening a personal or public link, checking the answers, the public link's one-time
form token and per-address throttle, writing a response with everything that must hold when the thank-you
page shows (answers, counters, the customer's timeline and latest score, a follow-up for a detractor), and
the analysis of its comments, which a job does after commit (analyse_response)."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Integer, String, Table, bindparam, func, insert, literal, select, update
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.config import Settings
from kokyaku.customers.models import Customer
from kokyaku.db import UTCDateTime, utcnow
from kokyaku.errors import KokyakuError
from kokyaku.feedback import dialect, scores, stats
from kokyaku.feedback.models import (
    CES,
    CLOSED,
    CSAT,
    MULTIPLE,
    NPS,
    OPEN,
    SCALES,
    SINGLE,
    TEXT,
    Answer,
    Invitation,
    Question,
    Response,
    SubmitHit,
    Survey,
    TopicMention,
)
from kokyaku.feedback.surveys import invitation_id_of, questions_of
from kokyaku.feedback.text import analyze
from kokyaku.jobs.service import enqueue

NONCE_SALT = "kokyaku.survey-form"
NONCE_MAX_AGE = 24 * 3600  # a public form left open longer than a day is reloaded
MAX_TEXT = 2000
SURVEY_ACTOR = Actor.system("survey")


class LinkError(KokyakuError):
    """A survey link that cannot be answered; the public page shows the message."""


class LinkInvalid(LinkError):
    code = "survey_link_invalid"
    status = 404
    message = "This survey link is not valid. Check that you opened the whole address from the email."


class LinkExpired(LinkError):
    code = "survey_link_expired"
    status = 410
    message = "This survey link has expired."


class SurveyClosed(LinkError):
    code = "survey_closed"
    status = 410
    message = "This survey has closed. Thank you for your interest."


class AlreadyAnswered(LinkError):
    code = "survey_already_answered"
    status = 409
    message = "You have already answered this survey. Thank you!"


class FormExpired(LinkError):
    code = "survey_form_expired"
    status = 400
    message = "This form has expired. Please reload the page and answer again."


class TooManySubmits(LinkError):
    code = "survey_too_many_submits"
    status = 429
    message = "Too many answers have been sent from your network. Please try again in {minutes} minutes."


# ---------------------------------------------------------------- opening a link


@dataclass
class Opened:
    survey: Survey
    questions: list[Question]
    invitation: Invitation | None = None
    customer: Customer | None = None
    stage: str | None = None  # the customer's lifecycle stage, read with the link (None: not read)


def _answerable(survey: Survey) -> None:
    if survey.status == CLOSED:
        raise SurveyClosed()
    if survey.status != OPEN:
        raise LinkInvalid()


# The public pages' questions, per survey and version: the survey row is read on every request anyway,
# and its updated_at changes with every edit of the questions (surveys.update_survey), so a stale entry is
# never used. Entries are transient copies, never attached to a session: a rollback elsewhere cannot
# expire them under another request.
_QUESTION_CACHE: dict[tuple[int, datetime], list[Question]] = {}
_QUESTION_CACHE_SIZE = 256
_QUESTION_COLUMNS = tuple(c.key for c in Question.__table__.columns)


def _questions(session: Session, survey: Survey) -> list[Question]:
    """The survey's questions in order, from the cache when this version of the survey was read before."""
    key = (survey.id, survey.updated_at)
    cached = _QUESTION_CACHE.get(key)
    if cached is None:
        loaded = questions_of(session, survey.id)
        cached = [Question(**{c: getattr(q, c) for c in _QUESTION_COLUMNS}) for q in loaded]
        if len(_QUESTION_CACHE) >= _QUESTION_CACHE_SIZE:
            _QUESTION_CACHE.clear()  # a site has a handful of open surveys; this only bounds old versions
        _QUESTION_CACHE[key] = cached
    return cached


def open_personal(session: Session, settings: Settings, token: str, *, now: datetime | None = None) -> Opened:
    """The survey behind a personal link; LinkInvalid (forged), LinkExpired, SurveyClosed, AlreadyAnswered.
    The link, its survey, its customer and the customer's lifecycle stage come in one query."""
    invitation_id = invitation_id_of(settings, token)
    if not invitation_id:
        raise LinkInvalid()
    stage: Any = literal(None, String)
    stmt = select(Invitation, Survey, Customer)
    try:
        from kokyaku.segments.models import CustomerLifecycle

        stage = func.coalesce(CustomerLifecycle.stage, "lead")
        stmt = stmt.outerjoin(CustomerLifecycle, CustomerLifecycle.customer_id == Invitation.customer_id)
    except ImportError:  # pragma: no cover - only without the segments domain
        pass
    found = session.execute(
        stmt.add_columns(stage)
        .join(Survey, Survey.id == Invitation.survey_id)
        .join(Customer, Customer.id == Invitation.customer_id)
        .where(Invitation.id == invitation_id)
    ).one_or_none()
    if found is None:
        raise LinkInvalid()
    invitation, survey, customer, stage_key = found
    _answerable(survey)
    if invitation.used_at is not None:
        raise AlreadyAnswered()
    if invitation.expires_at <= (now or utcnow()):
        raise LinkExpired()
    return Opened(survey, _questions(session, survey), invitation, customer, stage_key)


def open_public(session: Session, slug: str) -> Opened:
    """The survey behind the anonymous public link."""
    from kokyaku.feedback.surveys import survey_by_slug

    survey = survey_by_slug(session, slug)
    if survey is None or not survey.public_enabled:
        raise LinkInvalid()
    _answerable(survey)
    return Opened(survey, _questions(session, survey))


# ---------------------------------------------------------------- the public form's token and throttle


def _nonce_signer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=NONCE_SALT)


def issue_nonce(settings: Settings, survey_id: int) -> str:
    """A signed one-time token for one rendering of the public form (no database write)."""
    return str(_nonce_signer(settings).dumps([survey_id, secrets.token_urlsafe(12)]))


def check_nonce(settings: Settings, survey_id: int, token: str | None) -> str:
    """The token's random part (stored, unique, with the response); FormExpired if forged, old or foreign."""
    if not token or len(token) > 200:
        raise FormExpired()
    try:
        value = _nonce_signer(settings).loads(token, max_age=NONCE_MAX_AGE)
    except (SignatureExpired, BadSignature, ValueError, TypeError):
        raise FormExpired() from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or value[0] != survey_id
        or not isinstance(value[1], str)
    ):
        raise FormExpired()
    return value[1]


# Insert the hit only while the address is under the limit, in one statement built once (RETURNING, not
# rowcount: psycopg reports -1 for an INSERT ... SELECT).
_THROTTLE = (
    insert(cast(Table, SubmitHit.__table__))  # Core: an ORM insert would take the parameters for rows
    .from_select(
        ["key", "at"],
        select(bindparam("key", type_=String), bindparam("at", type_=UTCDateTime)).where(
            select(func.count())
            .select_from(SubmitHit)
            .where(
                SubmitHit.key == bindparam("key_", type_=String),
                SubmitHit.at > bindparam("since", type_=UTCDateTime),
            )
            .scalar_subquery()
            < bindparam("limit", type_=Integer)
        ),
    )
    .returning(SubmitHit.__table__.c.id)
)


def throttle(
    session: Session, settings: Settings, *, survey_id: int, address: str, now: datetime | None = None
) -> None:
    """Count one submission from `address` to a public link; TooManySubmits past the limit in the window.

    One statement: the row is inserted only while the address is under the limit. The address is stored
    only as a keyed hash. Rows live in the database, so the limit holds across processes; an hourly job
    (feedback/tasks.py) deletes the rows older than the window."""
    now = now or utcnow()
    window = timedelta(seconds=settings.survey_public_window_seconds)
    key = hmac.new(
        settings.secret_key.encode(), f"{survey_id}:{address}".encode(), hashlib.sha256
    ).hexdigest()
    limit = settings.survey_public_max_submits
    params = {"key": key, "key_": key, "at": now, "since": now - window, "limit": limit}
    if session.scalar(_THROTTLE, params) is None:
        raise TooManySubmits(minutes=max(1, settings.survey_public_window_seconds // 60))


# ---------------------------------------------------------------- checking answers


@dataclass
class Given:
    """One question's checked answer."""

    question: Question
    value: int | None = None  # scale value or chosen option
    chosen: list[int] = field(default_factory=list)  # multiple choice
    text: str | None = None


Problems = dict[int, tuple[str, dict[str, Any]]]  # question id -> (msgid, params)


def field_name(question: Question) -> str:
    return f"q{question.id}"


def check_answers(questions: list[Question], values: dict[str, list[str]]) -> tuple[list[Given], Problems]:
    """The answers as values, or the problem of each question (a msgid at the question)."""
    given: list[Given] = []
    problems: Problems = {}
    for q in questions:
        raw = [v.strip() for v in values.get(field_name(q), []) if v is not None and v.strip()]
        if not raw:
            if q.required:
                problems[q.id] = ("Please answer this question.", {})
            continue
        if q.kind in SCALES:
            low, high = SCALES[q.kind]
            number = _int(raw[0])
            if len(raw) != 1 or number is None or not low <= number <= high:
                problems[q.id] = ("Choose a number from {low} to {high}.", {"low": low, "high": high})
                continue
            given.append(Given(q, value=number))
        elif q.kind in (SINGLE, MULTIPLE):
            picked = [_int(v) for v in raw]
            n = len(q.choices or [])
            if any(p is None or not 0 <= p < n for p in picked) or (q.kind == SINGLE and len(picked) != 1):
                problems[q.id] = ("Choose from the options shown.", {})
                continue
            chosen = sorted({p for p in picked if p is not None})
            given.append(Given(q, value=chosen[0] if q.kind == SINGLE else None, chosen=chosen))
        elif q.kind == TEXT:
            text = "\n".join(raw).replace("\r\n", "\n").replace("\x00", "")
            if len(text) > MAX_TEXT:
                problems[q.id] = ("At most {max_length} characters.", {"max_length": MAX_TEXT})
                continue
            given.append(Given(q, text=text))
    return given, problems


def _int(value: str) -> int | None:
    value = value.strip()
    if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 3:
        return None
    return int(value)


# ---------------------------------------------------------------- writing a response

ANALYSE = "feedback.analyse_response"  # the job that analyses a response's comments (tasks.py)
_RESPONSE_COLUMNS = (
    "survey_id",
    "invitation_id",
    "customer_id",
    "channel",
    "locale",
    "submitted_at",
    "day",
    "nps_score",
    "csat_score",
    "ces_score",
    "nonce",
)
# The unique invitation and nonce stop a second copy: ON CONFLICT DO NOTHING returns no row then.
_INSERT_RESPONSE = dialect.upsert(
    Response.__table__,  # type: ignore[arg-type]
    _RESPONSE_COLUMNS,
    returning="id",
)
_INSERT_ANSWERS = insert(cast(Table, Answer.__table__))  # Core: no ORM bulk bookkeeping


@dataclass(frozen=True)
class Submitted:
    """A stored response: what the rest of the request needs to know about it."""

    id: int
    survey_id: int
    customer_id: int | None
    submitted_at: datetime
    day: date
    nps_score: int | None
    csat_score: int | None
    ces_score: int | None
    comments: int  # answers with text, analysed by the ANALYSE job after commit


def submit(
    session: Session,
    settings: Settings,
    *,
    opened: Opened,
    answers: list[Given],
    channel: str,
    locale: str,
    nonce: str | None = None,
    base_url: str = "",
    now: datetime | None = None,
) -> Submitted:
    """Store one response and its answers, once: a personal link already used, or a public form token
    already spent, raises AlreadyAnswered and stores nothing (also when two submits race).

    Everything that must hold when the thank-you page shows is written here, in the request's
    transaction: the answers, the results' counters, the customer's timeline entry and latest NPS, a
    detractor's follow-up. The comments' text analysis (sentiment, key phrases, topics and the topic
    counters) is a job queued in the same transaction: its cost grows with the comment's length, and the
    customer should not wait for it."""
    now = now or utcnow()
    survey, invitation, customer = opened.survey, opened.invitation, opened.customer
    if invitation is not None:
        # Conditional: of two racing submits only one marks the link used (PostgreSQL re-checks the row
        # after the other commits; SQLite writers run one at a time).
        used = session.execute(
            update(Invitation)
            .where(Invitation.id == invitation.id, Invitation.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if used != 1:
            raise AlreadyAnswered()
    first = {
        kind: next((a.value for a in answers if a.question.kind == kind), None) for kind in (NPS, CSAT, CES)
    }
    day = stats.local_day(now, settings.timezone)
    values = {
        "survey_id": survey.id,
        "invitation_id": invitation.id if invitation else None,
        "customer_id": customer.id if customer else None,
        "channel": channel,
        "locale": locale,
        "submitted_at": now,
        "day": day,
        "nps_score": first[NPS],
        "csat_score": first[CSAT],
        "ces_score": first[CES],
        "nonce": nonce,
    }
    response_id = session.scalar(_INSERT_RESPONSE, values)
    if response_id is None:
        raise AlreadyAnswered()
    response = Submitted(
        id=response_id,
        survey_id=survey.id,
        customer_id=customer.id if customer else None,
        submitted_at=now,
        day=day,
        nps_score=first[NPS],
        csat_score=first[CSAT],
        ces_score=first[CES],
        comments=sum(1 for a in answers if a.question.kind == TEXT and a.text),
    )
    _write_answers(session, survey.id, response_id, answers)
    channel_key, stage_key = stats.customer_keys(session, customer, opened.stage)
    counted = {q.id for q in stats.counted_questions(opened.questions)}
    chosen = [
        (a.question.id, v)
        for a in answers
        if a.question.id in counted
        for v in ([a.value] if a.question.kind != MULTIPLE else a.chosen)
        if v is not None
    ]
    increments = stats.response_increments(
        scores=stats.score_counters(first[NPS], first[CSAT], first[CES]),
        channel=channel_key,
        stage=stage_key,
        choices=chosen,
    )
    rows = [(day, dim, key, counters) for (dim, key), counters in increments.items()]
    if invitation is not None:  # the response rate counts answered links by the day they were sent
        rows.append(
            (stats.local_day(invitation.sent_at, settings.timezone), stats.INVITED, stats.USED, {"n": 1})
        )
    stats.add_rows(session, survey.id, rows)
    if response.comments:
        enqueue(session, kind=ANALYSE, payload={"response_id": response_id})
    if customer is not None:
        scores.record_answered(
            session,
            settings,
            customer=customer,
            survey=survey,
            response=response,
            answers=answers,
            base_url=base_url,
        )
        audit.record(
            session,
            actor=SURVEY_ACTOR,
            entity_type="survey_response",
            entity_id=response_id,
            action="create",
            changes={
                "survey": [None, survey.name],
                "customer_id": [None, customer.id],
                "nps": [None, first[NPS]],
                "csat": [None, first[CSAT]],
                "ces": [None, first[CES]],
            },
        )
    return response


def _write_answers(session: Session, survey_id: int, response_id: int, answers: list[Given]) -> None:
    """One batched insert of the answers; comments are stored as written, not analysed yet."""
    rows: list[dict[str, Any]] = []
    for a in answers:
        base: dict[str, Any] = {
            "response_id": response_id,
            "question_id": a.question.id,
            "survey_id": survey_id,
            "value_int": None,
            "has_text": False,
            "text": None,
            "lang": None,
            "sentiment": None,
            "sentiment_score": None,
            "phrases": [],
            "topics": [],
        }
        if a.question.kind == TEXT and a.text:
            rows.append({**base, "has_text": True, "text": a.text})
        elif a.question.kind == MULTIPLE:
            rows += [{**base, "value_int": c} for c in a.chosen]
        else:
            rows.append({**base, "value_int": a.value})
    if rows:
        session.execute(_INSERT_ANSWERS, rows)


def analyse_response(session: Session, response_id: int) -> int:
    """Analyse the response's comments that are not analysed yet: sentiment, key phrases and topics on each
    answer, a mention row per topic, and the day's topic counters. Returns how many comments it analysed.

    Idempotent (the ANALYSE job runs at least once): each comment is claimed by a conditional UPDATE
    (`sentiment IS NULL`), and only the comments this call claimed add mentions and counters."""
    found = session.execute(
        select(Response.survey_id, Response.day).where(Response.id == response_id)
    ).one_or_none()
    if found is None:  # the survey was deleted meanwhile
        return 0
    survey_id, day = found
    pending = session.execute(
        select(Answer.id, Answer.text)
        .where(Answer.response_id == response_id, Answer.has_text.is_(True), Answer.sentiment.is_(None))
        .order_by(Answer.id)
    ).all()
    mentions: list[dict[str, Any]] = []
    done = 0
    for answer_id, text in pending:
        result = analyze(text or "")
        claimed = session.execute(
            update(Answer)
            .where(Answer.id == answer_id, Answer.sentiment.is_(None))
            .values(
                lang=result.lang,
                sentiment=result.sentiment,
                sentiment_score=round(result.score, 4),
                phrases=list(result.phrases)[:20],
                topics=list(result.topics),
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            continue
        done += 1
        mentions += [
            {
                "source_type": "answer",
                "source_id": answer_id,
                "survey_id": survey_id,
                "topic": topic,
                "sentiment": result.sentiment,
                "day": day,
            }
            for topic in result.topics
        ]
    if mentions:
        session.execute(insert(TopicMention), mentions)
        counts: stats.Increments = {}
        for m in mentions:
            counts.setdefault((stats.TOPIC, f"{m['topic']}:{m['sentiment']}"), {"n": 0})["n"] += 1
        stats.add(session, survey_id, day, counts)
    return done
