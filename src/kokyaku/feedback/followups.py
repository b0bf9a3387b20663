"""Closing the loop: a detractor's answer or a negative review of a known customer becomes a follow-up task
for the customer's owner (emailed after commit); closing it is recorded on the customer's timeline."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.auth.models import User
from kokyaku.config import Settings
from kokyaku.customers.models import Customer
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, NotFound, PermissionDenied
from kokyaku.feedback import dialect
from kokyaku.feedback.models import (
    FOLLOWUP_CLOSED,
    FOLLOWUP_OPEN,
    Answer,
    Followup,
    Question,
    Response,
    Review,
    Survey,
)
from kokyaku.i18n import gettext
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor
from kokyaku.mail.service import is_configured, render_mail, send_mail
from kokyaku.timeline import entries as timeline

FEEDBACK_ACTOR = Actor.system("feedback")


class FollowupNotFound(NotFound):
    code = "followup_not_found"
    message = "Follow-up {id} does not exist."


class FollowupClosed(Conflict):
    code = "followup_closed"
    message = "This follow-up has already been closed."


_INSERT_FOLLOWUP = dialect.upsert(
    Followup.__table__,  # type: ignore[arg-type]
    ("customer_id", "source_type", "source_id", "owner_id", "status", "created_at", "due_on"),
    returning="id",
)


def local_today(tz: str, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(ZoneInfo(tz)).date()


def _owner(session: Session, settings: Settings, customer: Customer) -> User | None:
    """The customer's owner; else the configured default owner; else nobody (the task is unassigned)."""
    for user_id in (customer.owner_id, settings.followup_default_owner_id):
        if user_id:
            user = session.get(User, user_id)
            if user is not None and user.is_active:
                return user
    return None


def reason_text(
    locale: str,
    source_type: str,
    *,
    score: int | None = None,
    rating: int | None = None,
    source: str | None = None,
) -> str:
    if source_type == "response":
        return gettext(locale, "Detractor: NPS {score}", score=score if score is not None else "—")
    return gettext(
        locale, "Negative review: {rating}/5 on {source}", rating=rating or "—", source=source or ""
    )


def create_followup(
    session: Session,
    settings: Settings,
    *,
    customer: Customer,
    source_type: str,
    source_id: int,
    quote: str | None = None,
    score: int | None = None,
    rating: int | None = None,
    source: str | None = None,
    base_url: str = "",
    now: datetime | None = None,
) -> int | None:
    """A task for the customer's owner, once per answer or review: its id, or None if it exists already.
    The owner is emailed after commit when email is set up. Audited."""
    owner = _owner(session, settings, customer)
    values: dict[str, Any] = {
        "customer_id": customer.id,
        "source_type": source_type,
        "source_id": source_id,
        "owner_id": owner.id if owner else None,
        "status": FOLLOWUP_OPEN,
        "created_at": now or utcnow(),
        "due_on": local_today(settings.timezone, now) + timedelta(days=settings.followup_due_days),
    }
    # unique per answer or review: a re-import, or two imports at once, make no second task
    task_id = session.scalar(_INSERT_FOLLOWUP, values)
    if task_id is None:
        return None
    audit.record(
        session,
        actor=FEEDBACK_ACTOR,
        entity_type="followup",
        entity_id=task_id,
        action="create",
        changes={
            "customer_id": [None, customer.id],
            "source": [None, f"{source_type}:{source_id}"],
            "owner_id": [None, values["owner_id"]],
        },
    )
    if owner is not None and is_configured(settings):
        locale = owner.locale or settings.default_locale
        message = render_mail(
            "followup_created",
            locale,
            to=owner.email,
            owner_name=owner.name,
            customer_name=customer.name,
            reason=reason_text(locale, source_type, score=score, rating=rating, source=source),
            quote=(quote or "")[:500],
            due_on=values["due_on"].isoformat(),
            url=f"{(settings.public_url or base_url or 'http://localhost:8000').rstrip('/')}/followups/{task_id}",
        )
        send_mail(session, message)
    return int(task_id)


def get_followup(session: Session, followup_id: int) -> Followup:
    task = session.get(Followup, followup_id)
    if task is None:
        raise FollowupNotFound(id=followup_id)
    return task


def list_followups(
    session: Session,
    *,
    owner_id: int | None = None,
    unassigned: bool = False,
    status: str | None = FOLLOWUP_OPEN,
    customer_id: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Followup]:
    """Soonest due first, keyset-paginated on (due_on, id)."""
    stmt = select(Followup)
    if owner_id is not None:
        stmt = stmt.where(Followup.owner_id == owner_id)
    elif unassigned:
        stmt = stmt.where(Followup.owner_id.is_(None))
    if status in (FOLLOWUP_OPEN, FOLLOWUP_CLOSED):
        stmt = stmt.where(Followup.status == status)
    if customer_id is not None:
        stmt = stmt.where(Followup.customer_id == customer_id)
    after = decode_cursor(cursor)
    if after:
        try:
            due, last = date.fromisoformat(after[0]), int(after[1])
        except (IndexError, TypeError, ValueError):
            raise BadCursor(field="cursor") from None
        stmt = stmt.where((Followup.due_on > due) | ((Followup.due_on == due) & (Followup.id > last)))
    items = list(session.scalars(stmt.order_by(Followup.due_on, Followup.id).limit(limit + 1)))
    more = len(items) > limit
    items = items[:limit]
    return Page(
        items, encode_cursor([items[-1].due_on.isoformat(), items[-1].id]) if more and items else None
    )


def close_followup(
    session: Session, *, actor: Actor, user: User, followup_id: int, resolution: str, any_owner: bool
) -> Followup:
    """Close a task with what was done: the owner closes their own, feedback writers any. The closing is
    written to the customer's timeline and audited."""
    task = get_followup(session, followup_id)
    if not any_owner and task.owner_id != user.id:
        raise PermissionDenied()
    if task.status == FOLLOWUP_CLOSED:
        raise FollowupClosed()
    now = utcnow()
    task.status, task.closed_at, task.closed_by, task.resolution = FOLLOWUP_CLOSED, now, user.id, resolution
    timeline.bulk_add(
        session,
        [
            {
                "customer_id": task.customer_id,
                "at": now,
                "kind": "followup_closed",
                "channel": None,
                "summary": resolution,
                "ref_type": "followup",
                "ref_id": task.id,
                "properties": {
                    "followup_id": task.id,
                    "source_type": task.source_type,
                    "source_id": task.source_id,
                    "closed_by": actor.label,
                },
            }
        ],
    )
    audit.record(
        session,
        actor=actor,
        entity_type="followup",
        entity_id=task.id,
        action="close",
        changes={"status": [FOLLOWUP_OPEN, FOLLOWUP_CLOSED], "resolution": [None, resolution]},
    )
    return task


@dataclass
class Source:
    """What the customer said: the answers of a response, or a review."""

    kind: str
    at: datetime | None
    score: int | None = None
    rating: int | None = None
    site: str | None = None
    title: str | None = None
    texts: list[tuple[str, str | None]] | None = None  # (text, sentiment)
    survey_name: str | None = None
    url: str | None = None


def source_of(session: Session, task: Followup, locale: str) -> Source:
    if task.source_type == "review":
        review = session.get(Review, task.source_id)
        if review is None:
            return Source("review", None)
        return Source(
            "review",
            review.posted_at,
            rating=review.rating,
            site=review.source,
            title=review.title,
            texts=[(review.text or "", review.sentiment)],
            url=review.url,
        )
    response = session.get(Response, task.source_id)
    if response is None:
        return Source("response", None)
    survey = session.get(Survey, response.survey_id)
    rows = session.execute(
        select(Answer.text, Answer.sentiment)
        .join(Question, Question.id == Answer.question_id)
        .where(Answer.response_id == response.id, Answer.has_text.is_(True))
        .order_by(Question.position)
    ).all()
    return Source(
        "response",
        response.submitted_at,
        score=response.nps_score,
        survey_name=survey.name if survey else None,
        texts=[(t or "", s) for t, s in rows],
    )


def customer_context(session: Session, customer_id: int) -> dict[str, Any]:
    """The customer's lifecycle stage, RFM segment and latest orders, where those domains exist."""
    ctx: dict[str, Any] = {"stage": None, "rfm": None, "orders": []}
    try:
        from kokyaku.segments.models import CustomerLifecycle, CustomerRfm

        ctx["stage"] = (
            session.scalar(
                select(CustomerLifecycle.stage).where(CustomerLifecycle.customer_id == customer_id)
            )
            or "lead"
        )
        ctx["rfm"] = session.scalar(select(CustomerRfm.segment).where(CustomerRfm.customer_id == customer_id))
    except ImportError:  # pragma: no cover - only without the segments domain
        pass
    try:
        from kokyaku.commerce.service import latest_orders

        ctx["orders"] = latest_orders(session, customer_id, limit=5)
    except ImportError:  # pragma: no cover
        pass
    return ctx
