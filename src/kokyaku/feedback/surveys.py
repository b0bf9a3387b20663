"""Surveys and their questions (the builder), and personal links: signed, single-use, expiring invitations
sent by email or copied by staff."""

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.config import Settings
from kokyaku.customers.models import Customer
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, KokyakuError, NotFound, ValidationFailed
from kokyaku.feedback import stats
from kokyaku.feedback.models import DRAFT, OPEN, DailyStat, Invitation, Question, Response, Survey
from kokyaku.feedback.schemas import MAX_INVITE, InvitationsIn, QuestionIn, SurveyIn, SurveyUpdate
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor
from kokyaku.mail.service import Message, is_configured, render_mail, send_mails

INVITE_SALT = "kokyaku.survey-invitation"
_ID_CHUNK = 5000


class SurveyNotFound(NotFound):
    code = "survey_not_found"
    message = "Survey {id} does not exist."


class QuestionsLocked(Conflict):
    code = "survey_questions_locked"
    message = (
        "Customers have answered this survey, so its questions can no longer be added, removed or changed "
        "in kind; only their wording can. Copy the survey to ask different questions."
    )


class SurveyNotOpen(Conflict):
    code = "survey_not_open"
    message = "Open the survey before sending it."


class BackToDraft(Conflict):
    code = "survey_has_responses"
    message = "A survey that customers have answered cannot go back to draft."


class TooManyInvitees(KokyakuError):
    code = "too_many_invitees"
    status = 422
    message = "At most {limit} customers at once; send to a smaller segment or use the command line."


# ---------------------------------------------------------------- reading


def get_survey(session: Session, survey_id: int) -> Survey:
    survey = session.get(Survey, survey_id)
    if survey is None:
        raise SurveyNotFound(id=survey_id)
    return survey


def questions_of(session: Session, survey_id: int) -> list[Question]:
    stmt = select(Question).where(Question.survey_id == survey_id).order_by(Question.position, Question.id)
    return list(session.scalars(stmt))


def questions_of_surveys(session: Session, survey_ids: list[int]) -> dict[int, list[Question]]:
    """The questions of several surveys in one query, each list in order."""
    out: dict[int, list[Question]] = {sid: [] for sid in survey_ids}
    if survey_ids:
        stmt = select(Question).where(Question.survey_id.in_(survey_ids))
        for q in session.scalars(stmt.order_by(Question.survey_id, Question.position, Question.id)):
            out[q.survey_id].append(q)
    return out


def survey_by_slug(session: Session, slug: str) -> Survey | None:
    if not slug or len(slug) > 32:
        return None
    return session.scalar(select(Survey).where(Survey.public_slug == slug))


def list_surveys(session: Session, *, cursor: str | None = None, limit: int = 50) -> Page[Survey]:
    """Newest first, keyset-paginated on id."""
    stmt = select(Survey).order_by(Survey.id.desc()).limit(limit + 1)
    after = decode_cursor(cursor)
    if after:
        if len(after) != 1 or not isinstance(after[0], int) or isinstance(after[0], bool):
            raise BadCursor(field="cursor")
        stmt = stmt.where(Survey.id < after[0])
    items = list(session.scalars(stmt))
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_cursor([items[-1].id]) if more and items else None)


def response_counts(session: Session, survey_ids: list[int]) -> dict[int, int]:
    """Responses per survey, from the daily counters."""
    if not survey_ids:
        return {}
    stmt = (
        select(DailyStat.survey_id, func.sum(DailyStat.n))
        .where(DailyStat.survey_id.in_(survey_ids), DailyStat.dim == "all")
        .group_by(DailyStat.survey_id)
    )
    return {int(sid): int(n or 0) for sid, n in session.execute(stmt).all()}


def has_responses(session: Session, survey_id: int) -> bool:
    return session.scalar(select(Response.id).where(Response.survey_id == survey_id).limit(1)) is not None


# ---------------------------------------------------------------- the builder


def _question_rows(survey_id: int, questions: list[QuestionIn]) -> list[dict[str, Any]]:
    return [
        {
            "survey_id": survey_id,
            "position": i + 1,
            "kind": q.kind,
            "text_ja": q.text_ja,
            "text_en": q.text_en,
            "required": q.required,
            "choices": [c.model_dump() for c in q.choices],
        }
        for i, q in enumerate(questions)
    ]


def _snapshot(survey: Survey, questions: list[Question] | list[dict[str, Any]]) -> dict[str, Any]:
    def q(x: Any) -> str:
        kind = x["kind"] if isinstance(x, dict) else x.kind
        text = x["text_ja"] if isinstance(x, dict) else x.text_ja
        return f"{kind}: {text}"

    return {
        "name": survey.name,
        "status": survey.status,
        "title_ja": survey.title_ja,
        "title_en": survey.title_en,
        "thank_you_ja": survey.thank_you_ja,
        "thank_you_en": survey.thank_you_en,
        "public_enabled": survey.public_enabled,
        "link_days": survey.link_days,
        "questions": [q(x) for x in questions],
    }


def create_survey(session: Session, *, actor: Actor, data: SurveyIn) -> Survey:
    """A new draft survey with its questions; audited."""
    now = utcnow()
    survey = Survey(
        name=data.name,
        status=DRAFT,
        title_ja=data.title_ja,
        title_en=data.title_en,
        thank_you_ja=data.thank_you_ja,
        thank_you_en=data.thank_you_en,
        public_enabled=data.public_enabled,
        link_days=data.link_days,
        public_slug=secrets.token_urlsafe(12),
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(survey)
    session.flush()
    rows = _question_rows(survey.id, data.questions)
    session.execute(insert(Question), rows)
    audit.record(
        session,
        actor=actor,
        entity_type="survey",
        entity_id=survey.id,
        action="create",
        changes=audit.diff({}, _snapshot(survey, rows)),
    )
    return survey


def _same_shape(old: list[Question], new: list[QuestionIn]) -> bool:
    """Only the wording (and required flags) differ: answers already given still mean the same."""
    return len(old) == len(new) and all(
        o.kind == n.kind and len(o.choices or []) == len(n.choices) for o, n in zip(old, new, strict=True)
    )


def update_survey(session: Session, *, actor: Actor, survey_id: int, data: SurveyUpdate) -> Survey:
    """Change a survey; the question list may be replaced only while no one has answered (wording may
    always be corrected). Audited."""
    survey = get_survey(session, survey_id)
    old_questions = questions_of(session, survey_id)
    before = _snapshot(survey, old_questions)
    answered = has_responses(session, survey_id)
    fields = data.model_fields_set - {"questions"}
    if data.status == DRAFT and survey.status != DRAFT and answered:
        raise BackToDraft()
    for name in fields:
        value = getattr(data, name)
        if value is not None:
            setattr(survey, name, value)
    new_questions = old_questions
    if data.questions is not None:
        if _same_shape(old_questions, data.questions):
            for old, new in zip(old_questions, data.questions, strict=True):
                old.text_ja, old.text_en, old.required = new.text_ja, new.text_en, new.required
                old.choices = [c.model_dump() for c in new.choices]
        elif answered:
            raise QuestionsLocked()
        else:
            session.execute(delete(Question).where(Question.survey_id == survey_id))
            session.execute(insert(Question), _question_rows(survey_id, data.questions))
        session.flush()
        session.expire_all()
        survey = get_survey(session, survey_id)
        new_questions = questions_of(session, survey_id)
    changes = audit.diff(before, _snapshot(survey, new_questions))
    if changes:
        survey.updated_at = utcnow()
        audit.record(
            session, actor=actor, entity_type="survey", entity_id=survey.id, action="update", changes=changes
        )
    return survey


def copy_survey(session: Session, *, actor: Actor, survey_id: int) -> Survey:
    """A new draft with the same questions (to ask different questions without mixing answers)."""
    survey = get_survey(session, survey_id)
    questions = [
        QuestionIn(kind=q.kind, text_ja=q.text_ja, text_en=q.text_en, required=q.required, choices=q.choices)  # type: ignore[arg-type]
        for q in questions_of(session, survey_id)
    ]
    data = SurveyIn(
        name=f"{survey.name} (2)"[:200],
        title_ja=survey.title_ja,
        title_en=survey.title_en,
        thank_you_ja=survey.thank_you_ja,
        thank_you_en=survey.thank_you_en,
        public_enabled=survey.public_enabled,
        link_days=survey.link_days,
        questions=questions,
    )
    return create_survey(session, actor=actor, data=data)


def delete_survey(session: Session, *, actor: Actor, survey_id: int) -> None:
    """Delete a survey with its questions, links and answers; audited."""
    survey = get_survey(session, survey_id)
    audit.record(
        session,
        actor=actor,
        entity_type="survey",
        entity_id=survey.id,
        action="delete",
        changes={"name": [survey.name, None]},
    )
    session.delete(survey)


# ---------------------------------------------------------------- personal links


def _signer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key, salt=INVITE_SALT)


def invitation_token(settings: Settings, invitation_id: int) -> str:
    """The signed token of a personal link (deterministic: the same link can be copied again later)."""
    return str(_signer(settings).dumps(invitation_id))


def invitation_id_of(settings: Settings, token: str) -> int | None:
    """The invitation a token names, or None when it is forged, damaged or not a token at all."""
    if not token or len(token) > 200:
        return None
    try:
        value = _signer(settings).loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def link_url(settings: Settings, base_url: str, invitation_id: int) -> str:
    return f"{base_url.rstrip('/')}/r/{invitation_token(settings, invitation_id)}"


def public_url(base_url: str, survey: Survey) -> str:
    return f"{base_url.rstrip('/')}/s/{survey.public_slug}"


def base_url_of(settings: Settings, request_base: str | None = None) -> str:
    """Where links in emails point: KOKYAKU_PUBLIC_URL, else the address the request came to."""
    return (settings.public_url or request_base or "http://localhost:8000").rstrip("/")


def format_day(value: datetime, locale: str, tz: str) -> str:
    day = value.astimezone(ZoneInfo(tz)).date()
    return f"{day.year}年{day.month}月{day.day}日" if locale == "ja" else day.strftime("%b %-d, %Y")


@dataclass
class Invited:
    created: list[tuple[Invitation, str]] = field(default_factory=list)  # with each link's url
    emailed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def _candidates(session: Session, settings: Settings, data: InvitationsIn) -> tuple[list[Customer], int]:
    """The customers named and the segment's members (merged ones left out); and how many ids were unknown."""
    ids: list[int] = list(dict.fromkeys(data.customer_ids))
    if data.segment_id is not None:
        from kokyaku.segments import service as segments

        segment = segments.get_segment(session, data.segment_id)
        cursor = None
        while True:
            page = segments.members(session, segment, settings.timezone, cursor=cursor, limit=2000)
            ids.extend(c.id for c in page.items)
            if len(ids) > MAX_INVITE:
                raise TooManyInvitees(limit=f"{MAX_INVITE:,}")
            cursor = page.next_cursor
            if not cursor:
                break
        ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_INVITE:
        raise TooManyInvitees(limit=f"{MAX_INVITE:,}")
    found: list[Customer] = []
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        found += session.scalars(select(Customer).where(Customer.id.in_(chunk))).all()
    alive = [c for c in found if c.merged_into_id is None]
    return alive, len(ids) - len(found)


def invite(
    session: Session,
    settings: Settings,
    *,
    actor: Actor,
    survey_id: int,
    data: InvitationsIn,
    base_url: str,
    now: datetime | None = None,
) -> Invited:
    """Create personal links for customers or a segment's members; with channel email, queue one email per
    link (sent after commit, by the mail job). Customers without an email address (for email) and customers
    who hold an unused, unexpired link to this survey are skipped and counted. Audited once per batch."""
    survey = get_survey(session, survey_id)
    if survey.status != OPEN:
        raise SurveyNotOpen()
    if data.channel == "email" and not is_configured(settings):
        from kokyaku.mail.service import MailNotConfigured

        raise MailNotConfigured()
    now = now or utcnow()
    out = Invited()
    customers, unknown = _candidates(session, settings, data)
    if unknown:
        out.skipped["not_found"] = unknown
    if data.channel == "email":
        without = [c for c in customers if not c.email]
        if without:
            out.skipped["no_email"] = len(without)
        customers = [c for c in customers if c.email]
    holding: set[int] = set()
    ids = [c.id for c in customers]
    for i in range(0, len(ids), _ID_CHUNK):
        holding.update(
            session.scalars(
                select(Invitation.customer_id).where(
                    Invitation.survey_id == survey_id,
                    Invitation.customer_id.in_(ids[i : i + _ID_CHUNK]),
                    Invitation.used_at.is_(None),
                    Invitation.expires_at > now,
                )
            )
        )
    if holding:
        out.skipped["already_invited"] = len(holding)
    customers = [c for c in customers if c.id not in holding]
    if not customers:
        return out
    expires = now + timedelta(days=survey.link_days)
    rows = [
        {
            "survey_id": survey_id,
            "customer_id": c.id,
            "channel": data.channel,
            "sent_at": now,
            "expires_at": expires,
            "created_by": actor.user_id,
        }
        for c in customers
    ]
    invitations = list(
        session.scalars(insert(Invitation).returning(Invitation, sort_by_parameter_order=True), rows)
    )
    # the response rate's denominator, counted where the results page reads it
    day = stats.local_day(now, settings.timezone)
    stats.add(session, survey_id, day, {(stats.INVITED, stats.SENT): {"n": len(invitations)}})
    by_id = {c.id: c for c in customers}
    messages: list[Message] = []
    sender = parseaddr(settings.smtp_sender)[0] or "Kokyaku"
    for inv in invitations:
        url = link_url(settings, base_url, inv.id)
        out.created.append((inv, url))
        customer = by_id[inv.customer_id]
        if data.channel == "email" and customer.email:
            locale = customer.locale or settings.default_locale
            title = (survey.title_ja if locale == "ja" else survey.title_en) or survey.name
            messages.append(
                render_mail(
                    "survey_invitation",
                    locale,
                    to=customer.email,
                    customer_name=customer.name,
                    survey_title=title,
                    url=url,
                    expires_on=format_day(expires, locale, settings.timezone),
                    sender_name=sender,
                )
            )
    if messages:
        send_mails(session, messages)
    out.emailed = len(messages)
    audit.record(
        session,
        actor=actor,
        entity_type="survey",
        entity_id=survey_id,
        action="invite",
        changes={
            "channel": [None, data.channel],
            "invitations": [None, len(invitations)],
            "segment_id": [None, data.segment_id],
        },
    )
    return out


def invitations_of(session: Session, survey_id: int, *, limit: int = 50) -> list[Invitation]:
    """The newest personal links of a survey."""
    stmt = (
        select(Invitation)
        .where(Invitation.survey_id == survey_id)
        .order_by(Invitation.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def check_problems(problems: list[tuple[str, str, dict[str, Any]]]) -> None:
    if problems:
        raise ValidationFailed(problems)
