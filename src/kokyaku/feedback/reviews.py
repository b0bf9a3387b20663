"""Reviews from review sites and social networks: idempotent import (API batches and CSV), linking to a
customer (by id, email, a unique name, or by hand), text analysis, negative-review alerts and follow-ups, and
the monitoring figures."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.config import Settings
from kokyaku.customers.models import PERSON, Customer, Identity
from kokyaku.db import utcnow
from kokyaku.errors import NotFound, ValidationFailed
from kokyaku.feedback import periods
from kokyaku.feedback.followups import create_followup
from kokyaku.feedback.models import Review, TopicMention
from kokyaku.feedback.schemas import ImportResult, ReviewIn
from kokyaku.feedback.text import analyze
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor

FUTURE_SLACK = timedelta(days=1)
_FIELDS = ("rating", "title", "text", "author", "posted_at", "url")


class ReviewNotFound(NotFound):
    code = "review_not_found"
    message = "Review {id} does not exist."


NEGATIVE_MAX_RATING = 2  # 1 or 2 stars: negative whatever the words say
MIXED_RATING = 3  # 3 stars: negative only when the words are


def is_negative(rating: int, sentiment: str | None) -> bool:
    """A review needs attention (an alert, and a follow-up for a known customer) when it rates 1 or 2 stars,
    or 3 stars with negative words. 4 and 5 stars never do: a mild complaint inside a good review ("great
    food, a bit slow") is not an alarm, and the rating is the reviewer's own verdict."""
    return rating <= NEGATIVE_MAX_RATING or (rating == MIXED_RATING and sentiment == "negative")


def _aware(value: datetime, tz: str) -> datetime:
    """A time without zone is read in the business time zone (what review exports write)."""
    return (value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))).astimezone(UTC)


def _analysed(title: str | None, text: str | None) -> dict[str, Any]:
    words = "\n".join(t for t in (title, text) if t)
    if not words:
        return {"lang": None, "sentiment": None, "sentiment_score": None, "phrases": [], "topics": []}
    a = analyze(words)
    return {
        "lang": a.lang,
        "sentiment": a.sentiment,
        "sentiment_score": round(a.score, 4),
        "phrases": list(a.phrases)[:20],
        "topics": list(a.topics),
    }


def _resolve_customers(
    session: Session, reviews: list[ReviewIn], offset: int
) -> tuple[dict[int, tuple[int, str]], list[tuple[str, str, dict[str, Any]]]]:
    """index -> (customer id, how it was linked); explicit ids must exist, emails that match no one are
    ignored (the review stays unlinked), and a name links only when exactly one person has it."""
    links: dict[int, tuple[int, str]] = {}
    problems: list[tuple[str, str, dict[str, Any]]] = []
    ids = {r.customer_id for r in reviews if r.customer_id}
    live = set(
        session.scalars(select(Customer.id).where(Customer.id.in_(ids), Customer.merged_into_id.is_(None)))
    )
    emails = {r.customer_email for r in reviews if r.customer_email and not r.customer_id}
    by_email: dict[str, int] = {}
    if emails:
        query = select(Identity.value, Identity.customer_id).where(
            Identity.kind == "email", Identity.value.in_(emails)
        )
        by_email = {str(value): int(cid) for value, cid in session.execute(query)}
    names = {r.author for r in reviews if r.author and not r.customer_id and r.customer_email not in by_email}
    by_name: dict[str, list[int]] = defaultdict(list)
    if names:
        rows = session.execute(
            select(Customer.name, Customer.id).where(
                Customer.name.in_(names), Customer.kind == PERSON, Customer.merged_into_id.is_(None)
            )
        ).all()
        for name, cid in rows:
            by_name[name].append(cid)
    for i, r in enumerate(reviews):
        if r.customer_id:
            if r.customer_id in live:
                links[i] = (r.customer_id, "manual")
            else:
                problems.append(
                    (
                        f"reviews.{offset + i}.customer_id",
                        "Customer {id} does not exist.",
                        {"id": r.customer_id},
                    )
                )
        elif r.customer_email and r.customer_email in by_email:
            links[i] = (by_email[r.customer_email], "email")
        elif r.author and len(by_name.get(r.author, [])) == 1:
            links[i] = (by_name[r.author][0], "name")
    return links, problems


def import_reviews(
    session: Session,
    settings: Settings,
    *,
    actor: Actor,
    reviews: list[ReviewIn],
    base_url: str = "",
    now: datetime | None = None,
    offset: int = 0,
) -> ImportResult:
    """Create or update reviews by (source, external_id): importing the same batch again changes nothing.
    All or nothing: any invalid review (named by its index) means nothing is written. A new negative review
    raises an alert; one linked to a customer also gets a follow-up for the owner."""
    now = now or utcnow()
    tz = settings.timezone
    problems: list[tuple[str, str, dict[str, Any]]] = []
    latest: dict[tuple[str, str], int] = {}
    for i, r in enumerate(reviews):
        if _aware(r.posted_at, tz) > now + FUTURE_SLACK:
            problems.append((f"reviews.{offset + i}.posted_at", "The time lies in the future.", {}))
        latest[(r.source, r.external_id)] = i  # the last copy in a batch wins
    links, link_problems = _resolve_customers(session, reviews, offset)
    problems += link_problems
    if problems:
        raise ValidationFailed(problems)
    out = ImportResult()
    existing: dict[tuple[str, str], Review] = {}
    by_source: dict[str, list[str]] = defaultdict(list)
    for source, external_id in latest:
        by_source[source].append(external_id)
    for source, external_ids in by_source.items():
        for row in session.scalars(
            select(Review).where(Review.source == source, Review.external_id.in_(external_ids))
        ):
            existing[(row.source, row.external_id)] = row
    new_rows: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    updated: list[Review] = []
    reanalysed: list[int] = []
    for key, i in latest.items():
        r = reviews[i]
        values: dict[str, Any] = {
            "rating": r.rating,
            "title": r.title,
            "text": r.text,
            "author": r.author,
            "posted_at": _aware(r.posted_at, tz),
            "url": r.url,
        }
        link = links.get(i)
        old = existing.get(key)
        if old is None:
            analysis = _analysed(r.title, r.text)
            negative = is_negative(r.rating, analysis["sentiment"])
            new_rows.append(
                {
                    "source": r.source,
                    "external_id": r.external_id,
                    **values,
                    **analysis,
                    "customer_id": link[0] if link else None,
                    "link_method": link[1] if link else None,
                    "negative": negative,
                    "alert": negative,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            continue
        changes = {k: v for k, v in values.items() if getattr(old, k) != v}
        # a link made by hand is kept unless the import names the customer explicitly
        relink = link is not None and (old.customer_id, old.link_method) != link
        if relink and (old.link_method != "manual" or link[1] == "manual"):  # type: ignore[index]
            changes["customer_id"], changes["link_method"] = link  # type: ignore[misc]
        if not changes:
            out.unchanged += 1
            continue
        if "title" in changes or "text" in changes:
            changes.update(_analysed(values["title"], values["text"]))
            reanalysed.append(old.id)
        negative = is_negative(changes.get("rating", old.rating), changes.get("sentiment", old.sentiment))
        if negative != old.negative:
            changes["negative"] = negative
            changes["alert"] = negative  # newly negative: alert again even if acknowledged before
        before = {k: getattr(old, k) for k in changes}
        updates.append({"id": old.id, **changes, "updated_at": now})
        audit.record(
            session,
            actor=actor,
            entity_type="review",
            entity_id=old.id,
            action="update",
            changes=audit.diff(before, changes),
        )
        updated.append(old)
        out.updated += 1
        out.linked += "customer_id" in changes
        out.alerts += bool(changes.get("alert"))
    if updates:
        session.execute(update(Review), updates)
        for old in updated:
            session.expire(old)
    if reanalysed:
        session.execute(
            delete(TopicMention).where(
                TopicMention.source_type == "review", TopicMention.source_id.in_(reanalysed)
            )
        )
    created: list[Review] = []
    if new_rows:
        created = list(
            session.scalars(insert(Review).returning(Review, sort_by_parameter_order=True), new_rows)
        )
        out.created = len(created)
        for review in created:
            audit.record(
                session,
                actor=actor,
                entity_type="review",
                entity_id=review.id,
                action="create",
                changes={
                    "source": [None, review.source],
                    "external_id": [None, review.external_id],
                    "rating": [None, review.rating],
                    "customer_id": [None, review.customer_id],
                },
            )
            out.linked += review.customer_id is not None
            out.alerts += review.alert
    changed = [*created, *updated]
    mentions = [
        {
            "source_type": "review",
            "source_id": r.id,
            "survey_id": None,
            "topic": t,
            "sentiment": r.sentiment,
            "day": r.posted_at.astimezone(ZoneInfo(tz)).date(),
        }
        for r in changed
        if r.sentiment and (r.id in reanalysed or r in created)
        for t in r.topics or []
    ]
    if mentions:
        session.execute(insert(TopicMention), mentions)
    for review in changed:
        if (
            review.negative
            and review.customer_id
            and _followup(session, settings, review, base_url) is not None
        ):
            out.followups += 1
    return out


def _followup(session: Session, settings: Settings, review: Review, base_url: str) -> Any:
    customer = session.get(Customer, review.customer_id)
    if customer is None:
        return None
    quote = "\n".join(t for t in (review.title, review.text) if t)
    return create_followup(
        session,
        settings,
        customer=customer,
        source_type="review",
        source_id=review.id,
        quote=quote or None,
        rating=review.rating,
        source=review.source,
        base_url=base_url,
    )


def get_review(session: Session, review_id: int) -> Review:
    review = session.get(Review, review_id)
    if review is None:
        raise ReviewNotFound(id=review_id)
    return review


def acknowledge(session: Session, *, actor: Actor, review_id: int) -> Review:
    """Take a negative review off the alert list; audited."""
    review = get_review(session, review_id)
    if review.alert:
        review.alert = False
        review.acknowledged_at = utcnow()
        review.acknowledged_by = actor.user_id
        audit.record(
            session,
            actor=actor,
            entity_type="review",
            entity_id=review.id,
            action="acknowledge",
            changes={"alert": [True, False]},
        )
    return review


def link_customer(
    session: Session,
    settings: Settings,
    *,
    actor: Actor,
    review_id: int,
    customer_id: int | None,
    base_url: str = "",
) -> Review:
    """Link a review to a customer by hand (or unlink it); a negative one then gets a follow-up. Audited."""
    review = get_review(session, review_id)
    if customer_id is not None:
        customer = session.get(Customer, customer_id)
        if customer is None or customer.merged_into_id is not None:
            raise ValidationFailed([("customer_id", "Customer {id} does not exist.", {"id": customer_id})])
    before = review.customer_id
    review.customer_id = customer_id
    review.link_method = "manual" if customer_id else None
    audit.record(
        session,
        actor=actor,
        entity_type="review",
        entity_id=review.id,
        action="update",
        changes={"customer_id": [before, customer_id]},
    )
    session.flush()
    if review.negative and customer_id:
        _followup(session, settings, review, base_url)
    return review


def list_reviews(
    session: Session,
    *,
    source: str | None = None,
    alert: bool | None = None,
    sentiment: str | None = None,
    customer_id: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Review]:
    """Newest first, keyset-paginated on (posted_at, id)."""
    stmt = select(Review)
    if source:
        stmt = stmt.where(Review.source == source)
    if alert is not None:
        stmt = stmt.where(Review.alert.is_(alert))
    if sentiment:
        stmt = stmt.where(Review.sentiment == sentiment)
    if customer_id is not None:
        stmt = stmt.where(Review.customer_id == customer_id)
    after = decode_cursor(cursor)
    if after:
        try:
            at, last = datetime.fromisoformat(after[0]), int(after[1])
        except (IndexError, TypeError, ValueError):
            raise BadCursor(field="cursor") from None
        if at.tzinfo is None:
            raise BadCursor(field="cursor")
        stmt = stmt.where(and_(Review.posted_at <= at, or_(Review.posted_at < at, Review.id < last)))
    items = list(session.scalars(stmt.order_by(Review.posted_at.desc(), Review.id.desc()).limit(limit + 1)))
    more = len(items) > limit
    items = items[:limit]
    cursor_out = encode_cursor([items[-1].posted_at.isoformat(), items[-1].id]) if more and items else None
    return Page(items, cursor_out)


# ---------------------------------------------------------------- monitoring


@dataclass
class SourceTrend:
    source: str
    periods: list[str]
    average: list[float]
    counts: list[int]


def rating_trend(
    session: Session, tz: str, *, months: int = 12, now: datetime | None = None
) -> list[SourceTrend]:
    """Monthly average rating and count per source over the last `months` months (one GROUP BY)."""
    since = (now or utcnow()) - timedelta(days=31 * months)
    period = periods.bucket(session, Review.posted_at, "month", tz)
    rows = session.execute(
        select(Review.source, period.label("p"), func.avg(Review.rating), func.count())
        .where(Review.posted_at >= since)
        .group_by(Review.source, period)
        .order_by(Review.source, period)
    ).all()
    trends: dict[str, SourceTrend] = {}
    for source, p, avg, n in rows:
        t = trends.setdefault(source, SourceTrend(source, [], [], []))
        t.periods.append(str(p))
        t.average.append(round(float(avg), 2))
        t.counts.append(int(n))
    return list(trends.values())


def source_summary(session: Session) -> list[tuple[str, int, float, int]]:
    """(source, reviews, average rating, open alerts) per source."""
    rows = session.execute(
        select(
            Review.source,
            func.count(),
            func.avg(Review.rating),
            func.sum(case((Review.alert.is_(True), 1), else_=0)),
        )
        .group_by(Review.source)
        .order_by(func.count().desc())
    ).all()
    return [(s, int(n), round(float(a), 2), int(al or 0)) for s, n, a, al in rows]


def alerts(session: Session, *, limit: int = 50) -> list[Review]:
    """Unacknowledged negative reviews, newest first."""
    stmt = select(Review).where(Review.alert.is_(True)).order_by(Review.posted_at.desc(), Review.id.desc())
    return list(session.scalars(stmt.limit(limit)))


def count_alerts(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Review).where(Review.alert.is_(True))) or 0)
