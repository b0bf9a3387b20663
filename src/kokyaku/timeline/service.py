"""The only place that changes touchpoints and reads the timeline; also timeline's merge participant."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.customers.merge import (
    move_rows_many,
    register_merge_participant,
    register_merge_participant_batch,
)
from kokyaku.customers.service import get_customer
from kokyaku.db import utcnow
from kokyaku.errors import ValidationFailed
from kokyaku.kit.ids import MAX_ID
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor
from kokyaku.timeline import entries
from kokyaku.timeline.models import TimelineEntry, Touchpoint
from kokyaku.timeline.schemas import TouchpointIn

PAGE_SIZE = 20
MAX_PAGE = 200
# Bound the ids in one IN list: SQLite allows 32,766 parameters, and shorter lists plan better.
_ID_CHUNK = 5000
# Clocks of event sources and browsers drift; a day of slack rejects only times that cannot be right.
FUTURE_SLACK = timedelta(days=1)


def record_touchpoint(session: Session, *, actor: Actor, customer_id: int, data: TouchpointIn) -> Touchpoint:
    """Log one touchpoint (a call, a store visit, an email) with its timeline entry; audited."""
    get_customer(session, customer_id)
    # stored in UTC; converting here makes the returned object read the same as a reloaded one
    at = data.at.astimezone(UTC) if data.at else utcnow()
    if at > utcnow() + FUTURE_SLACK:
        raise ValidationFailed([("at", "The time lies in the future.", {})])
    tp = Touchpoint(
        customer_id=customer_id,
        channel=data.channel,
        type=data.type,
        at=at,
        summary=data.summary or "",
        properties=data.properties,
    )
    session.add(tp)
    session.flush()
    entries.touchpoint_recorded(
        session,
        customer_id=customer_id,
        touchpoint_id=tp.id,
        at=at,
        channel=tp.channel,
        type=tp.type,
        summary=tp.summary,
    )
    audit.record(
        session,
        actor=actor,
        entity_type="touchpoint",
        entity_id=tp.id,
        action="create",
        changes=audit.diff(
            {},
            {
                "customer_id": customer_id,
                "channel": tp.channel,
                "type": tp.type,
                "at": at,
                "summary": tp.summary,
            },
        ),
    )
    return tp


# ---------------------------------------------------------------- reading


def _cursor(cursor: str | None) -> tuple[datetime, int] | None:
    values = decode_cursor(cursor)
    if values is None:
        return None
    try:
        at = datetime.fromisoformat(values[0]).astimezone(UTC)
        last_id = int(values[1])
    except (IndexError, TypeError, ValueError, OverflowError) as exc:
        raise BadCursor(field="cursor") from exc
    if not 0 < last_id <= MAX_ID:
        raise BadCursor(field="cursor")
    return at, last_id


def _before(at_col: Any, id_col: Any, after: tuple[datetime, int]) -> Any:
    """Rows after the cursor in (at desc, id desc) order; `at <= x` lets the index bound the range."""
    at, last_id = after
    return and_(at_col <= at, or_(at_col < at, id_col < last_id))


def list_timeline(
    session: Session,
    customer_id: int,
    *,
    channel: str | None = None,
    kind: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> Page[TimelineEntry]:
    """Newest first, keyset-paginated on (at, id); filter by channel and kind."""
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(TimelineEntry).where(TimelineEntry.customer_id == customer_id)
    if channel:
        stmt = stmt.where(TimelineEntry.channel == channel)
    if kind:
        stmt = stmt.where(TimelineEntry.kind == kind)
    after = _cursor(cursor)
    if after:
        stmt = stmt.where(_before(TimelineEntry.at, TimelineEntry.id, after))
    stmt = stmt.order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc()).limit(limit + 1)
    items = list(session.scalars(stmt))
    return _page(items, limit)


def list_touchpoints(
    session: Session,
    customer_id: int,
    *,
    channel: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Touchpoint]:
    """A customer's touchpoints, newest first, keyset-paginated on (at, id)."""
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(Touchpoint).where(Touchpoint.customer_id == customer_id)
    if channel:
        stmt = stmt.where(Touchpoint.channel == channel)
    after = _cursor(cursor)
    if after:
        stmt = stmt.where(_before(Touchpoint.at, Touchpoint.id, after))
    stmt = stmt.order_by(Touchpoint.at.desc(), Touchpoint.id.desc()).limit(limit + 1)
    return _page(list(session.scalars(stmt)), limit)


def _page(items: list[Any], limit: int) -> Page[Any]:
    more = len(items) > limit
    items = items[:limit]
    cursor = encode_cursor([items[-1].at.isoformat(), items[-1].id]) if more and items else None
    return Page(items, cursor)


def channels_of(session: Session, customer_id: int) -> list[str]:
    """The channels that occur in a customer's timeline (for the filter chips)."""
    stmt = (
        select(TimelineEntry.channel)
        .where(TimelineEntry.customer_id == customer_id, TimelineEntry.channel.is_not(None))
        .distinct()
    )
    return sorted(c for c in session.scalars(stmt) if c)


# ---------------------------------------------------------------- merge participant


def _reassign(session: Session, model: Any, ids: list[int], from_id: int, to_id: int) -> None:
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        session.execute(
            update(model)
            .where(model.id.in_(chunk), model.customer_id == from_id)
            .values(customer_id=to_id)
            .execution_options(synchronize_session=False)
        )


def _move(session: Session, from_id: int, to_id: int) -> dict[str, list[int]]:
    """Merge: the merged customer's timeline entries and touchpoints now belong to the survivor."""
    moved: dict[str, list[int]] = {}
    for model in (TimelineEntry, Touchpoint):
        # One UPDATE ... RETURNING per table (SQLite >= 3.35 and PostgreSQL): merges run inside ingestion.
        stmt = (
            update(model)
            .where(model.customer_id == from_id)
            .values(customer_id=to_id)
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
        moved[model.__tablename__] = sorted(session.scalars(stmt))
    return moved


def _move_back(session: Session, from_id: int, to_id: int, moved: dict[str, list[int]]) -> None:
    """Undo: exactly the rows the merge moved go back to the customer they came from."""
    for model in (TimelineEntry, Touchpoint):
        _reassign(session, model, list(moved.get(model.__tablename__, [])), to_id, from_id)


def _move_many(session: Session, pairs: list[tuple[int, int]]) -> list[dict[str, list[int]]]:
    """Merge of many pairs at once (ingestion's stitching): one select and one update per table."""
    return move_rows_many(session, (TimelineEntry, Touchpoint), pairs)


register_merge_participant("timeline", _move, _move_back)
register_merge_participant_batch("timeline", _move_many)
