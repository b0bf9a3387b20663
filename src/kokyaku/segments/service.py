"""The only place that changes segments: create, edit, freeze, delete; counting, members, breakdowns, size
history, the customer's RFM scores and lifecycle journey, and static memberships through customer merges.
(Exports of members go through kokyaku.imports.export, which pages through `members`.)"""

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.customers.merge import register_merge_participant, register_merge_participant_batch
from kokyaku.customers.models import Customer, CustomFieldDef
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, NotFound, ValidationFailed
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor
from kokyaku.segments import bulk
from kokyaku.segments import rules as R
from kokyaku.segments.models import (
    STATIC,
    CustomerLifecycle,
    CustomerRfm,
    LifecycleChange,
    Segment,
    SegmentMember,
    SegmentSize,
)
from kokyaku.segments.schemas import SegmentIn, SegmentUpdate

ENTITY = "segment"
BREAKDOWNS = ("prefecture", "lifecycle_stage", "rfm_segment", "gender", "kind")


class SegmentNotFound(NotFound):
    code = "segment_not_found"
    message = "Segment {id} does not exist."


class StaticRulesFixed(Conflict):
    code = "segment_static"
    message = "A snapshot's members do not change. Freeze the dynamic segment again instead."


class AlreadyStatic(Conflict):
    code = "segment_static"
    message = "This segment is a snapshot already."


# ---------------------------------------------------------------- compiling


def context(session: Session, tz: str, now: datetime | None = None) -> R.Context:
    """The compile context: the clock, the business time zone and the current custom fields."""
    defs = session.execute(select(CustomFieldDef.key, CustomFieldDef.type, CustomFieldDef.choices)).all()
    custom = {key: (kind, tuple(choices or ())) for key, kind, choices in defs}
    return R.Context(now=now or utcnow(), tz=ZoneInfo(tz), custom=custom)


def compile_rules(session: Session, raw: Any, tz: str) -> R.Compiled:
    """Validate and compile rules; ValidationFailed names each bad condition by its path."""
    return R.compile_rules(raw, context(session, tz))


def membership(session: Session, segment: Segment, tz: str) -> R.Compiled:
    """The condition on customers that selects a segment's members (frozen list or live rules)."""
    if segment.kind == STATIC:
        ids = select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)
        return R.Compiled(Customer.id.in_(ids), [])
    return compile_rules(session, segment.rules, tz)


def count_compiled(session: Session, compiled: R.Compiled) -> int:
    bulk.analytics_memory(session)
    return int(session.scalar(compiled.select_from(func.count())) or 0)


def count_rules(session: Session, raw: Any, tz: str) -> int:
    return count_compiled(session, compile_rules(session, raw, tz))


def count_segment(session: Session, segment: Segment, tz: str) -> int:
    return count_compiled(session, membership(session, segment, tz))


# ---------------------------------------------------------------- reading


def get_segment(session: Session, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise SegmentNotFound(id=segment_id)
    return segment


def list_segments(session: Session, *, cursor: str | None = None, limit: int = 50) -> Page[Segment]:
    """Newest first, keyset-paginated on id."""
    after = decode_cursor(cursor)
    stmt = select(Segment).order_by(Segment.id.desc()).limit(limit + 1)
    if after:
        stmt = stmt.where(Segment.id < _cursor_id(after))
    items = list(session.scalars(stmt))
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_cursor([items[-1].id]) if more and items else None)


def _cursor_id(values: list[Any]) -> int:
    if len(values) != 1 or not isinstance(values[0], int) or isinstance(values[0], bool):
        raise BadCursor(field="cursor")
    return values[0]


def members(
    session: Session, segment: Segment, tz: str, *, cursor: str | None = None, limit: int = 50
) -> Page[Customer]:
    """The members in id order, keyset-paginated."""
    return members_of(session, membership(session, segment, tz), cursor=cursor, limit=limit)


def members_of(
    session: Session, compiled: R.Compiled, *, cursor: str | None = None, limit: int = 50
) -> Page[Customer]:
    after = decode_cursor(cursor)
    stmt = compiled.select_from(Customer).order_by(Customer.id).limit(limit + 1)
    if after:
        stmt = stmt.where(Customer.id > _cursor_id(after))
    items = list(session.scalars(stmt))
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_cursor([items[-1].id]) if more and items else None)


def breakdown(session: Session, segment: Segment, tz: str, by: str) -> list[tuple[str | None, int]]:
    """Member counts grouped by prefecture, lifecycle stage, RFM segment, gender or type; largest first."""
    if by not in BREAKDOWNS:
        raise ValidationFailed([("by", "Not one of the allowed values.", {})])
    compiled = membership(session, segment, tz)
    joins = list(compiled.joins)
    column: Any
    if by == "lifecycle_stage":
        joins = [*joins, "lifecycle"] if "lifecycle" not in joins else joins
        column = func.coalesce(CustomerLifecycle.stage, "lead")
    elif by == "rfm_segment":
        joins = [*joins, "rfm"] if "rfm" not in joins else joins
        column = CustomerRfm.segment
    else:
        column = getattr(Customer, by)
    query = R.Compiled(compiled.where, joins).select_from(column.label("key"), func.count().label("n"))
    rows = session.execute(query.group_by(column).order_by(func.count().desc()).limit(60)).all()
    return [(key, int(n)) for key, n in rows]


def size_history(
    session: Session, segment_ids: list[int], days: int = 90
) -> dict[int, list[tuple[date, int]]]:
    """(day, size) per segment over the last `days` days, oldest first."""
    out: dict[int, list[tuple[date, int]]] = {i: [] for i in segment_ids}
    if not segment_ids:
        return out
    since = date.today() - timedelta(days=days)
    rows = session.execute(
        select(SegmentSize.segment_id, SegmentSize.day, SegmentSize.size)
        .where(SegmentSize.segment_id.in_(segment_ids), SegmentSize.day >= since)
        .order_by(SegmentSize.segment_id, SegmentSize.day)
    ).all()
    for sid, day, size in rows:
        out[sid].append((day, size))
    return out


# ---------------------------------------------------------------- changing


def _local_day(tz: str, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(ZoneInfo(tz)).date()


def record_size(session: Session, segment: Segment, size: int, tz: str) -> None:
    """Keep the segment's latest size and today's point of its size history."""
    now = utcnow()
    segment.size, segment.counted_at = size, now
    day = _local_day(tz, now)
    row = session.get(SegmentSize, (segment.id, day))
    if row is None:
        session.add(SegmentSize(segment_id=segment.id, day=day, size=size))
    else:
        row.size = size


def _freeze_members(session: Session, segment: Segment, compiled: R.Compiled) -> int:
    """Copy the current members into the static segment with one INSERT ... SELECT."""
    source = compiled.select_from(literal(segment.id), Customer.id)
    session.execute(insert(SegmentMember).from_select(["segment_id", "customer_id"], source))
    return int(session.scalar(select(func.count()).where(SegmentMember.segment_id == segment.id)) or 0)


def create_segment(session: Session, *, actor: Actor, data: SegmentIn, tz: str) -> Segment:
    """Save a new segment; a static one is frozen at once."""
    ctx = context(session, tz)
    rules = R.normalize_rules(data.rules, ctx)
    compiled = R.compile_rules(rules, ctx)
    now = utcnow()
    segment = Segment(
        name=data.name,
        description=data.description,
        kind=data.kind,
        rules=rules,
        frozen_at=now if data.kind == STATIC else None,
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    session.flush()
    if data.kind == STATIC:
        size = _freeze_members(session, segment, compiled)
    else:
        size = count_compiled(session, compiled)
    record_size(session, segment, size, tz)
    audit.record(
        session,
        actor=actor,
        entity_type=ENTITY,
        entity_id=segment.id,
        action="create",
        changes={"name": [None, segment.name], "kind": [None, segment.kind], "rules": [None, segment.rules]},
    )
    return segment


def update_segment(
    session: Session, *, actor: Actor, segment_id: int, data: SegmentUpdate, tz: str
) -> Segment:
    segment = get_segment(session, segment_id)
    before = {"name": segment.name, "description": segment.description, "rules": segment.rules}
    given = data.model_dump(exclude_unset=True)
    if "rules" in given and given["rules"] is not None:
        if segment.kind == STATIC:
            raise StaticRulesFixed()
        ctx = context(session, tz)
        segment.rules = R.normalize_rules(given["rules"], ctx)
        compiled = R.compile_rules(segment.rules, ctx)
        record_size(session, segment, count_compiled(session, compiled), tz)
    if given.get("name"):
        segment.name = given["name"]
    if "description" in given:
        segment.description = given["description"]
    after = {"name": segment.name, "description": segment.description, "rules": segment.rules}
    changes = audit.diff(before, after)
    if changes:
        segment.updated_at = utcnow()
        audit.record(
            session, actor=actor, entity_type=ENTITY, entity_id=segment.id, action="update", changes=changes
        )
    return segment


def freeze_segment(
    session: Session, *, actor: Actor, segment_id: int, tz: str, name: str | None = None
) -> Segment:
    """A static snapshot of a dynamic segment's current members, as a new segment; the original stays."""
    source = get_segment(session, segment_id)
    if source.kind == STATIC:
        raise AlreadyStatic()
    compiled = compile_rules(session, source.rules, tz)
    now = utcnow()
    snapshot = Segment(
        name=name or f"{source.name} ({_local_day(tz, now).isoformat()})"[:200],
        description=source.description,
        kind=STATIC,
        rules=source.rules,
        frozen_at=now,
        source_id=source.id,
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    session.add(snapshot)
    session.flush()
    record_size(session, snapshot, _freeze_members(session, snapshot, compiled), tz)
    audit.record(
        session,
        actor=actor,
        entity_type=ENTITY,
        entity_id=snapshot.id,
        action="freeze",
        changes={"source_id": [None, source.id], "size": [None, snapshot.size]},
    )
    return snapshot


def delete_segment(session: Session, *, actor: Actor, segment_id: int) -> None:
    segment = get_segment(session, segment_id)
    audit.record(
        session,
        actor=actor,
        entity_type=ENTITY,
        entity_id=segment.id,
        action="delete",
        changes={"name": [segment.name, None], "kind": [segment.kind, None]},
    )
    session.execute(delete(SegmentMember).where(SegmentMember.segment_id == segment.id))
    session.execute(delete(SegmentSize).where(SegmentSize.segment_id == segment.id))
    session.delete(segment)


def refresh_sizes(session: Session, tz: str) -> int:
    """Count every segment and append today's size (the daily job); returns how many were counted."""
    segments = list(session.scalars(select(Segment).order_by(Segment.id)))
    for segment in segments:
        try:
            size = count_segment(session, segment, tz)
        except ValidationFailed:
            # a custom field the rules use was deleted: the segment is shown as invalid, not counted
            continue
        record_size(session, segment, size, tz)
    return len(segments)


# ---------------------------------------------------------------- one customer


@dataclass
class Journey:
    stage: str
    since: datetime | None
    rfm: CustomerRfm | None
    history: list[LifecycleChange]


def journey(session: Session, customer_id: int, limit: int = 50) -> Journey:
    """The customer's RFM scores, current stage and stage history (newest first)."""
    state = session.get(CustomerLifecycle, customer_id)
    history = list(
        session.scalars(
            select(LifecycleChange)
            .where(LifecycleChange.customer_id == customer_id)
            .order_by(LifecycleChange.changed_at.desc(), LifecycleChange.id.desc())
            .limit(limit)
        )
    )
    return Journey(
        stage=state.stage if state else "lead",
        since=state.since if state else None,
        rfm=session.get(CustomerRfm, customer_id),
        history=history,
    )


def segments_of_customer(session: Session, customer_id: int, tz: str, limit: int = 30) -> list[Segment]:
    """The segments this customer is in: static by membership, dynamic by evaluating each rule for one id."""
    found: list[Segment] = []
    ctx = replace(context(session, tz), correlated=True)
    for segment in session.scalars(select(Segment).order_by(Segment.id.desc()).limit(200)):
        if segment.kind == STATIC:
            hit = session.get(SegmentMember, (segment.id, customer_id)) is not None
        else:
            try:
                compiled = R.compile_rules(segment.rules, ctx)
            except ValidationFailed:
                continue
            hit = (
                session.scalar(compiled.select_from(Customer.id).where(Customer.id == customer_id))
                is not None
            )
        if hit:
            found.append(segment)
            if len(found) >= limit:
                break
    return found


# ---------------------------------------------------------------- merging customers


def _move_members(session: Session, from_id: int, to_id: int) -> dict[str, list[int]]:
    """Merge: the survivor joins the snapshots the merged customer was in (not those it is in already)."""
    theirs = set(
        session.scalars(select(SegmentMember.segment_id).where(SegmentMember.customer_id == from_id))
    )
    mine = set(session.scalars(select(SegmentMember.segment_id).where(SegmentMember.customer_id == to_id)))
    moved = sorted(theirs - mine)
    session.execute(delete(SegmentMember).where(SegmentMember.customer_id == from_id))
    if moved:
        session.execute(insert(SegmentMember), [{"segment_id": sid, "customer_id": to_id} for sid in moved])
    return {"segment_members": moved, "segment_members_shared": sorted(theirs & mine)}


def _move_members_back(session: Session, from_id: int, to_id: int, moved: dict[str, list[int]]) -> None:
    """Undo: the merged customer is in its snapshots again, and the survivor leaves those it joined."""
    joined = list(moved.get("segment_members", []))
    back = joined + list(moved.get("segment_members_shared", []))
    if joined:
        session.execute(
            delete(SegmentMember).where(
                SegmentMember.customer_id == to_id, SegmentMember.segment_id.in_(joined)
            )
        )
    if back:
        session.execute(insert(SegmentMember), [{"segment_id": sid, "customer_id": from_id} for sid in back])


def _move_members_many(session: Session, pairs: list[tuple[int, int]]) -> list[dict[str, list[int]]]:
    """_move_members for many pairs at once (ingestion's stitching): one select, one delete, one insert. Pairs
    are worked through in order, so a survivor of two pairs has joined the first one's snapshots when the
    second is compared, as when merging one pair after another."""
    ids = list({i for pair in pairs for i in pair})
    segments: dict[int, set[int]] = {i: set() for i in ids}
    for segment_id, customer_id in session.execute(
        select(SegmentMember.segment_id, SegmentMember.customer_id).where(SegmentMember.customer_id.in_(ids))
    ):
        segments[customer_id].add(segment_id)
    out: list[dict[str, list[int]]] = []
    joins: list[dict[str, int]] = []
    for from_id, to_id in pairs:
        theirs, mine = segments[from_id], segments[to_id]
        moved = sorted(theirs - mine)
        out.append({"segment_members": moved, "segment_members_shared": sorted(theirs & mine)})
        joins += [{"segment_id": sid, "customer_id": to_id} for sid in moved]
        mine.update(moved)
        theirs.clear()
    session.execute(delete(SegmentMember).where(SegmentMember.customer_id.in_([f for f, _t in pairs])))
    if joins:
        session.execute(insert(SegmentMember), joins)
    return out


register_merge_participant("segments", _move_members, _move_members_back)
register_merge_participant_batch("segments", _move_members_many)
