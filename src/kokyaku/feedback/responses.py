"""Answering a survey: opening a personal or public link, checking the answers, the public link's one-time
form token and per-address throttle, and writing a response with everything that follows from it (text
analysis, the customer's timeline and latest score, a follow-up for a detractor)."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.config import Settings
from kokyaku.customers.models import Customer
from kokyaku.db import utcnow
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


def _answerable(survey: Survey) -> None:
    if survey.status == CLOSED:
        raise SurveyClosed()
    if survey.status != OPEN:
        raise LinkInvalid()


def open_personal(session: Session, settings: Settings, token: str, *, now: datetime | None = None) -> Opened:
    """The survey behind a personal link; LinkInvalid (forged), LinkExpired, SurveyClosed, AlreadyAnswered."""
    invitation_id = invitation_id_of(settings, token)
    invitation = session.get(Invitation, invitation_id) if invitation_id else None
    if invitation is None:
        raise LinkInvalid()
    survey = session.get(Survey, invitation.survey_id)
    if survey is None:
        raise LinkInvalid()
    _answerable(survey)
    if invitation.used_at is not None:
        raise AlreadyAnswered()
    if invitation.expires_at <= (now or utcnow()):
        raise LinkExpired()
    customer = session.get(Customer, invitation.customer_id)
    return Opened(survey, questions_of(session, survey.id), invitation, customer)


def open_public(session: Session, slug: str) -> Opened:
    """The survey behind the anonymous public link."""
    from kokyaku.feedback.surveys import survey_by_slug

    survey = survey_by_slug(session, slug)
    if survey is None or not survey.public_enabled:
        raise LinkInvalid()
    _answerable(survey)
    return Opened(survey, questions_of(session, survey.id))


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


def throttle(
    session: Session, settings: Settings, *, survey_id: int, address: str, now: datetime | None = None
) -> None:
    """Count one submission from `address` to a public link; TooManySubmits past the limit in the window.

    The address is stored only as a keyed hash. Rows live in the database, so the limit holds across
    processes; an hourly job (feedback/tasks.py) deletes the rows older than the window."""
    now = now or utcnow()
    window = timedelta(seconds=settings.survey_public_window_seconds)
    key = hmac.new(
        settings.secret_key.encode(), f"{survey_id}:{address}".encode(), hashlib.sha256
    ).hexdigest()
    recent = session.scalar(
        select(func.count()).select_from(SubmitHit).where(SubmitHit.key == key, SubmitHit.at > now - window)
    )
    if (recent or 0) >= settings.survey_public_max_submits:
        raise TooManySubmits(minutes=max(1, settings.survey_public_window_seconds // 60))
    session.execute(insert(SubmitHit).values(key=key, at=now))


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
) -> Response:
    """Store one response and its answers, once: a personal link already used, or a public form token
    already spent, raises AlreadyAnswered and stores nothing (also when two submits race)."""
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
    # The unique invitation and nonce stop a second copy: ON CONFLICT DO NOTHING returns no row then.
    stmt = dialect.insert(session, Response).values(**values).on_conflict_do_nothing().returning(Response)
    response = session.scalars(stmt).first()
    if response is None:
        raise AlreadyAnswered()
    topics = _write_answers(session, survey.id, response, answers, day)
    channel_key, stage_key = stats.customer_keys(session, customer)
    counted = {q.id for q in stats.counted_questions(opened.questions)}
    chosen = [
        (a.question.id, v)
        for a in answers
        if a.question.id in counted
        for v in ([a.value] if a.question.kind != MULTIPLE else a.chosen)
        if v is not None
    ]
    stats.add(
        session,
        survey.id,
        day,
        stats.response_increments(
            scores=stats.score_counters(first[NPS], first[CSAT], first[CES]),
            channel=channel_key,
            stage=stage_key,
            choices=chosen,
            topics=topics,
        ),
    )
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
            entity_id=response.id,
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


def _write_answers(
    session: Session, survey_id: int, response: Response, answers: list[Given], day: date
) -> list[tuple[str, str]]:
    """One batched insert of the answers; comments carry their sentiment, phrases and topics, and each topic
    also becomes a mention row (to filter comments by topic). Returns the (topic, sentiment) pairs."""
    rows: list[dict[str, Any]] = []
    analysed: list[tuple[int, Any]] = []
    for a in answers:
        base: dict[str, Any] = {
            "response_id": response.id,
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
            result = analyze(a.text)
            analysed.append((len(rows), result))
            rows.append(
                {
                    **base,
                    "has_text": True,
                    "text": a.text,
                    "lang": result.lang,
                    "sentiment": result.sentiment,
                    "sentiment_score": round(result.score, 4),
                    "phrases": list(result.phrases)[:20],
                    "topics": list(result.topics),
                }
            )
        elif a.question.kind == MULTIPLE:
            rows += [{**base, "value_int": c} for c in a.chosen]
        else:
            rows.append({**base, "value_int": a.value})
    if not rows:
        return []
    if not analysed:
        session.execute(insert(Answer), rows)
        return []
    ids = list(session.scalars(insert(Answer).returning(Answer.id, sort_by_parameter_order=True), rows))
    mentions = [
        {
            "source_type": "answer",
            "source_id": ids[i],
            "survey_id": survey_id,
            "topic": topic,
            "sentiment": result.sentiment,
            "day": day,
        }
        for i, result in analysed
        for topic in result.topics
    ]
    if mentions:
        session.execute(insert(TopicMention), mentions)
    return [(m["topic"], m["sentiment"]) for m in mentions]
