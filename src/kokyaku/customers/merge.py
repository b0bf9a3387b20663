"""Merging two customers into one, and undoing it exactly.

Contract for other domains (register at import of your service module):

    from kokyaku.customers.merge import register_merge_participant

    def _move(session: Session, from_id: int, to_id: int) -> dict[str, list[int]]:
        # reassign this domain's rows of customer from_id to to_id (one set-based UPDATE per table,
        # recompute per-customer aggregates such as metrics for both ids); return the moved row ids per table
        ...

    def _move_back(session: Session, from_id: int, to_id: int, moved: dict[str, list[int]]) -> None:
        # move exactly the rows listed in `moved` back from to_id to from_id (undo), and recompute aggregates
        ...

    register_merge_participant("commerce", _move, _move_back)

- `register_merge_participant(name, move, move_back)`: `move(session, from_id, to_id)` reassigns the domain's
  rows of customer `from_id` to `to_id` and returns `{table: [row ids]}`; `move_back(session, from_id, to_id,
  moved)` moves exactly those rows back to `from_id`. Registering the same name again replaces the hooks
  (module reloads in tests). Participants must write only their own tables and must not commit.
- `merge_customers(session, *, actor, survivor_id, merged_id, automatic=False, reason=None) -> CustomerMerge`.
- `undo_merge(session, *, actor, merge_id) -> None`.

What a merge does (and undo reverses, from what the CustomerMerge row recorded):
- The merged customer's row stays, with `merged_into_id` set: hidden from lists, search, counts and contacts;
  `service.get_customer` answers 404 `customer_merged` naming the survivor; deleting the survivor deletes it
  (foreign key cascade). Keeping the row is what makes undo exact.
- The survivor keeps its values; its empty fields (the address only as a whole) and missing custom keys are
  filled from the merged customer; identities move; interests become the union; a merged company's contacts
  move to the survivor; every participant's rows move. Audit rows keep their entity ids; both customers get a
  `merge`/`merged_into` row, and `unmerge` rows on undo. The survivor's timeline gets a "customers merged"
  entry, which stays after an undo as history.
- Undo clears only the filled fields still holding the merged value: an edit made since the merge wins.

`kokyaku.domains` imports every domain's service module so that all participants are registered before a
merge. Merge never calls another domain directly: it only runs the registered hooks (and writes its timeline
entry through `kokyaku.timeline.entries`, the one way any domain writes to the timeline).
"""

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.customers import service
from kokyaku.customers.merge_models import OPEN, CustomerMerge, DuplicateCandidate
from kokyaku.customers.models import COMPANY, Customer, Identity, Interest
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, KokyakuError, NotFound, ValidationFailed
from kokyaku.kit.normalize import clean_text
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor
from kokyaku.timeline import entries as timeline_entries

MoveFn = Callable[[Session, int, int], dict[str, list[int]]]
MoveBackFn = Callable[[Session, int, int, dict[str, list[int]]], None]


@dataclass(frozen=True)
class MergeParticipant:
    name: str
    move: MoveFn
    move_back: MoveBackFn


_PARTICIPANTS: dict[str, MergeParticipant] = {}


def register_merge_participant(name: str, move: MoveFn, move_back: MoveBackFn) -> None:
    """Register a domain whose rows follow a customer through merge and undo."""
    _PARTICIPANTS[name] = MergeParticipant(name, move, move_back)


def participants() -> list[MergeParticipant]:
    """The registered participants, in registration order."""
    return list(_PARTICIPANTS.values())


# ---------------------------------------------------------------- errors


class MergeSelf(KokyakuError):
    code = "merge_self"
    status = 422
    message = "A customer cannot be merged into itself."


class MergeKindMismatch(KokyakuError):
    code = "merge_kind_mismatch"
    status = 422
    message = "A person and a company cannot be merged."


class AlreadyMerged(Conflict):
    code = "already_merged"
    message = "Customer {id} has already been merged into customer {into}."


class MergeNotFound(NotFound):
    code = "merge_not_found"
    message = "Merge {id} does not exist."


class MergeAlreadyUndone(Conflict):
    code = "merge_already_undone"
    message = "Merge {id} has already been undone."


class UndoBlocked(Conflict):
    code = "merge_undo_blocked"
    message = "Customer {id} has since been merged into customer {into}; undo that merge first."


# ---------------------------------------------------------------- merge

# Survivor fields filled from the merged customer when empty. The address is one unit: filled only when the
# survivor has none of it, so that a postal code never lands next to another address's street.
FILL_FIELDS = (
    "name_kana", "email", "phone", "birthday", "gender", "company_id", "job_title", "industry",
    "company_size", "website", "source", "channel", "owner_id", "locale", "note",
)  # fmt: skip
ADDRESS_FIELDS = ("postal_code", "prefecture", "city", "street")
REASON_MAX = 500
_ID_CHUNK = 5000  # ids per IN list: under every database's parameter limit


def _plain(value: Any) -> Any:
    # what JSON keeps of a value, so that recorded values compare with current ones
    return value.isoformat() if isinstance(value, date) else value


def _empty(field: str, value: Any) -> bool:
    return value is None or value == "" or (field == "gender" and value == "unknown")


def _register_all() -> None:
    # Every domain's participant must be registered before rows are moved; importing here (not at the top)
    # keeps customers free of import cycles with the domains that import this module.
    importlib.import_module("kokyaku.domains")


def _lock(session: Session, *ids: int) -> dict[int, Customer]:
    """Both customers, locked in id order (PostgreSQL; SQLite writers already hold the write lock)."""
    stmt = (
        select(Customer)
        .where(Customer.id.in_(ids))
        .order_by(Customer.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {c.id: c for c in session.scalars(stmt)}


def _fill(survivor: Customer, merged: Customer) -> dict[str, list[Any]]:
    """Copy the merged customer's values into the survivor's empty fields; returns {field: [old, new]}."""
    filled: dict[str, list[Any]] = {}
    fields = list(FILL_FIELDS)
    if all(_empty(f, getattr(survivor, f)) for f in ADDRESS_FIELDS):
        fields += ADDRESS_FIELDS
    for field in fields:
        old, new = getattr(survivor, field), getattr(merged, field)
        if _empty(field, old) and not _empty(field, new):
            setattr(survivor, field, new)
            filled[field] = [_plain(old), _plain(new)]
    custom = dict(survivor.custom or {})
    for key, value in (merged.custom or {}).items():
        if custom.get(key) is None and value is not None:
            custom[key] = value
            filled[f"custom.{key}"] = [None, value]
    if custom != (survivor.custom or {}):
        survivor.custom = custom
    return filled


def _checked(name: str, moved: Any) -> dict[str, list[int]]:
    if not isinstance(moved, dict):
        raise TypeError(f"merge participant {name} must return {{table: [ids]}}")
    return {str(table): [int(i) for i in ids] for table, ids in moved.items()}


def merge_customers(
    session: Session,
    *,
    actor: Actor,
    survivor_id: int,
    merged_id: int,
    automatic: bool = False,
    reason: str | None = None,
) -> CustomerMerge:
    """Merge `merged_id` into `survivor_id`: every row follows the survivor; the merged row stays hidden."""
    _register_all()
    if survivor_id == merged_id:
        raise MergeSelf(field="merged_id")
    reason = clean_text(reason)
    if reason is not None and len(reason) > REASON_MAX:
        raise ValidationFailed([("reason", "At most {max_length} characters.", {"max_length": REASON_MAX})])
    found = _lock(session, survivor_id, merged_id)
    for field, cid in (("survivor_id", survivor_id), ("merged_id", merged_id)):
        if cid not in found:
            raise service.CustomerNotFound(field=field, id=cid)
        if found[cid].merged_into_id is not None:
            raise AlreadyMerged(field=field, id=cid, into=found[cid].merged_into_id)
    survivor, merged = found[survivor_id], found[merged_id]
    if survivor.kind != merged.kind:
        raise MergeKindMismatch(field="merged_id")

    now = utcnow()
    filled = _fill(survivor, merged)
    identity_ids = list(
        session.scalars(select(Identity.id).where(Identity.customer_id == merged.id).order_by(Identity.id))
    )
    if identity_ids:
        session.execute(update(Identity).where(Identity.id.in_(identity_ids)).values(customer_id=survivor.id))
    interests = _move_interests(session, merged.id, survivor.id)
    contact_ids: list[int] = []
    if merged.kind == COMPANY:
        contact_ids = list(
            session.scalars(select(Customer.id).where(Customer.company_id == merged.id).order_by(Customer.id))
        )
        _set_company(session, contact_ids, merged.id, survivor.id)
    merged.merged_into_id = survivor.id
    session.flush()
    moved = {p.name: _checked(p.name, p.move(session, merged.id, survivor.id)) for p in participants()}
    if "name_kana" in filled:
        service._reindex(session, survivor)
    if filled:
        survivor.updated_at = now
    # Open candidates that involve the merged customer are settled; dismissed ones are kept as decisions.
    session.execute(
        delete(DuplicateCandidate).where(
            DuplicateCandidate.status == OPEN,
            or_(DuplicateCandidate.customer_a_id == merged.id, DuplicateCandidate.customer_b_id == merged.id),
        )
    )
    record = CustomerMerge(
        survivor_id=survivor.id, merged_id=merged.id, automatic=automatic, reason=reason,
        actor_id=actor.user_id, actor_label=actor.label, merged_at=now, moved=moved,
        identity_ids=identity_ids, interests=interests, contact_ids=contact_ids, filled=filled,
    )  # fmt: skip
    session.add(record)
    session.flush()
    _audit_merge(
        session, actor, survivor, merged, record, automatic,
        {**({"reason": [None, reason]} if reason else {}), **filled},
    )  # fmt: skip
    timeline_entries.customers_merged(
        session, customer_id=survivor.id, merged_id=merged.id, at=now, actor_label=actor.label
    )
    return record


def _move_interests(session: Session, from_id: int, to_id: int) -> dict[str, list[str]]:
    """Tags only the merged customer had move to the survivor; tags both had are dropped from the merged."""
    theirs = set(session.scalars(select(Interest.tag).where(Interest.customer_id == from_id)))
    ours = set(session.scalars(select(Interest.tag).where(Interest.customer_id == to_id)))
    moved, dropped = sorted(theirs - ours), sorted(theirs & ours)
    if moved:
        session.execute(
            update(Interest)
            .where(Interest.customer_id == from_id, Interest.tag.in_(moved))
            .values(customer_id=to_id)
        )
    if dropped:
        session.execute(delete(Interest).where(Interest.customer_id == from_id, Interest.tag.in_(dropped)))
    return {"moved": moved, "dropped": dropped}


def _set_company(session: Session, person_ids: list[int], from_id: int, to_id: int) -> None:
    if person_ids:
        session.execute(
            update(Customer)
            .where(Customer.id.in_(person_ids), Customer.company_id == from_id)
            .values(company_id=to_id)
        )


# ---------------------------------------------------------------- undo


def undo_merge(session: Session, *, actor: Actor, merge_id: int) -> None:
    """Give the merged customer back exactly what it had (rows, identities, interests); unfill fields."""
    _register_all()
    record = session.get(CustomerMerge, merge_id, with_for_update=True)
    if record is None:
        raise MergeNotFound(id=merge_id)
    if record.undone_at is not None:
        raise MergeAlreadyUndone(id=merge_id)
    found = _lock(session, record.survivor_id, record.merged_id)
    survivor, merged = found[record.survivor_id], found[record.merged_id]
    if survivor.merged_into_id is not None:
        raise UndoBlocked(id=survivor.id, into=survivor.merged_into_id)
    now = utcnow()
    for name in reversed(list(record.moved)):
        part = _PARTICIPANTS.get(name)
        if part is None:
            # A merge recorded rows of a domain that is no longer registered: refusing beats half an undo.
            raise RuntimeError(f"merge participant {name} is not registered")
        part.move_back(session, merged.id, survivor.id, record.moved[name])
    if record.identity_ids:
        session.execute(
            update(Identity)
            .where(Identity.id.in_(record.identity_ids), Identity.customer_id == survivor.id)
            .values(customer_id=merged.id)
        )
    moved_tags = record.interests.get("moved", [])
    if moved_tags:
        session.execute(
            update(Interest)
            .where(Interest.customer_id == survivor.id, Interest.tag.in_(moved_tags))
            .values(customer_id=merged.id)
        )
    dropped = record.interests.get("dropped", [])
    if dropped:
        session.execute(insert(Interest), [{"customer_id": merged.id, "tag": t} for t in dropped])
    _set_company(session, record.contact_ids, survivor.id, merged.id)
    restored = _unfill(survivor, record.filled)
    if "name_kana" in restored:
        service._reindex(session, survivor)
    if restored:
        survivor.updated_at = now
    merged.merged_into_id = None
    record.undone_at = now
    record.undone_by_label = actor.label
    session.flush()
    timeline_entries.customers_merged(
        session, customer_id=survivor.id, merged_id=merged.id, at=now, actor_label=actor.label, undone=True
    )
    audit.record(
        session, actor=actor, entity_type=service.ENTITY[survivor.kind], entity_id=survivor.id,
        action="unmerge",
        changes={"merged_from": [merged.id, None], "merge_id": [record.id, None], **restored},
    )  # fmt: skip
    audit.record(
        session, actor=actor, entity_type=service.ENTITY[merged.kind], entity_id=merged.id, action="unmerge",
        changes={"merged_into_id": [survivor.id, None], "merge_id": [record.id, None]},
    )  # fmt: skip


def _unfill(survivor: Customer, filled: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Clear the fields a merge filled, unless changed since; returns {field: [current, restored]}."""
    restored: dict[str, list[Any]] = {}
    custom = dict(survivor.custom or {})
    for field, (old, new) in filled.items():
        if field.startswith("custom."):
            key = field.removeprefix("custom.")
            if custom.get(key) == new:
                custom.pop(key)
                restored[field] = [new, None]
            continue
        if _plain(getattr(survivor, field)) != new:
            continue  # edited after the merge: the newer edit wins
        value = date.fromisoformat(old) if field == "birthday" and old else old
        setattr(survivor, field, value)
        restored[field] = [new, old]
    if custom != (survivor.custom or {}):
        survivor.custom = custom
    return restored


# ---------------------------------------------------------------- reading


def get_merge(session: Session, merge_id: int) -> CustomerMerge:
    record = session.get(CustomerMerge, merge_id)
    if record is None:
        raise MergeNotFound(id=merge_id)
    return record


def list_merges(
    session: Session, *, customer_id: int | None = None, cursor: str | None = None, limit: int = 50
) -> Page[CustomerMerge]:
    """Newest first, keyset on id; with `customer_id`, the merges that customer took part in."""
    stmt = select(CustomerMerge)
    if customer_id is not None:
        stmt = stmt.where(
            or_(CustomerMerge.survivor_id == customer_id, CustomerMerge.merged_id == customer_id)
        )
    after = decode_cursor(cursor)
    if after:
        try:
            stmt = stmt.where(CustomerMerge.id < int(after[0]))
        except (TypeError, ValueError) as exc:
            raise BadCursor(field="cursor") from exc
    items = list(session.scalars(stmt.order_by(CustomerMerge.id.desc()).limit(limit + 1)))
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_cursor([items[-1].id]) if more and items else None)


def merged_into(session: Session, survivor_id: int, limit: int = 50) -> list[tuple[CustomerMerge, Customer]]:
    """The customers currently merged into this one, newest merge first, with their hidden rows."""
    stmt = (
        select(CustomerMerge, Customer)
        .join(Customer, Customer.id == CustomerMerge.merged_id)
        .where(CustomerMerge.survivor_id == survivor_id, CustomerMerge.undone_at.is_(None))
        .order_by(CustomerMerge.id.desc())
        .limit(limit)
    )
    return [(m, c) for m, c in session.execute(stmt).tuples()]


# ---------------------------------------------------------------- many merges at once (event ingestion)

MoveManyFn = Callable[[Session, list[tuple[int, int]]], list[dict[str, list[int]]]]
_BATCH_MOVES: dict[str, MoveManyFn] = {}


def register_merge_participant_batch(name: str, move_many: MoveManyFn) -> None:
    """Optionally give a registered participant a set-based move for many (from_id, to_id) pairs at once.

    `move_many(session, pairs)` returns one `{table: [row ids]}` per pair, in order, exactly what `move` would
    have returned for each pair run one after another; undo still goes through the participant's `move_back`.
    """
    _BATCH_MOVES[name] = move_many


def _audit_merge(
    session: Session, actor: Actor, survivor: Customer, merged: Customer, record: CustomerMerge,
    automatic: bool, extra: dict[str, Any],
) -> None:  # fmt: skip
    """The two audit rows of a merge: `merge` on the survivor (with `extra`: reason, filled fields) and
    `merged_into` on the merged customer."""
    how = "automatic" if automatic else "manual"
    audit.record(
        session, actor=actor, entity_type=service.ENTITY[survivor.kind], entity_id=survivor.id,
        action="merge",
        changes={"merged_from": [None, merged.id], "merge_id": [None, record.id], "merge": [None, how],
                 **extra},
    )  # fmt: skip
    audit.record(
        session, actor=actor, entity_type=service.ENTITY[merged.kind], entity_id=merged.id,
        action="merged_into",
        changes={"merged_into_id": [None, survivor.id], "merge_id": [None, record.id], "merge": [None, how]},
    )  # fmt: skip


def move_rows_many(
    session: Session, models: Sequence[Any], pairs: list[tuple[int, int]]
) -> list[dict[str, list[int]]]:
    """The usual set-based `move_many` for participants whose tables have `id` and `customer_id`: per table,
    one select of the merged customers' rows and one update by id, returning `{table: [row ids]}` per pair."""
    to_of = dict(pairs)
    out: list[dict[str, list[int]]] = [{} for _ in pairs]
    for model in models:
        ids: dict[int, list[int]] = {f: [] for f in to_of}
        stmt = select(model.id, model.customer_id).where(model.customer_id.in_(list(to_of)))
        for row_id, cid in session.execute(stmt):
            ids[cid].append(row_id)
        every = sorted(i for rows in ids.values() for i in rows)
        for start in range(0, len(every), _ID_CHUNK):
            # by id, not by owner: a row added meanwhile (PostgreSQL) stays out of the merge, as with a move
            session.execute(
                update(model)
                .where(model.id.in_(every[start : start + _ID_CHUNK]))
                .values(customer_id=case(to_of, value=model.customer_id))
                .execution_options(synchronize_session=False)
            )
        for slot, (from_id, _to) in zip(out, pairs, strict=True):
            slot[model.__tablename__] = sorted(ids[from_id])
    return out


def merge_many(
    session: Session, *, actor: Actor, pairs: list[tuple[int, int]], automatic: bool = False
) -> list[CustomerMerge | KokyakuError]:
    """Merge many (survivor_id, merged_id) pairs with a few set-based statements.

    The outcome is what `merge_customers` called pair by pair would leave: each pair gets its own
    CustomerMerge record (so each is undone on its own, exactly), its audit rows and its timeline entry. A
    pair that `merge_customers` would refuse (unknown or already merged customer, self, kind mismatch) is
    skipped and its error is returned in its place. A customer may be merged at most once per call, and a
    survivor may not be merged in the same call (ValueError: resolve chains first).
    """
    _register_all()
    if not pairs:
        return []
    merged_ids = [m for _s, m in pairs]
    if len(set(merged_ids)) != len(merged_ids) or {s for s, _m in pairs} & set(merged_ids):
        raise ValueError("merge_many needs each customer merged at most once and no survivor merged")
    found = _lock(session, *{i for pair in pairs for i in pair})
    out: list[CustomerMerge | KokyakuError] = []
    ok: list[tuple[Customer, Customer]] = []
    for survivor_id, merged_id in pairs:
        error: KokyakuError | None = None
        if survivor_id == merged_id:
            error = MergeSelf(field="merged_id")
        for field, cid in (("survivor_id", survivor_id), ("merged_id", merged_id)):
            if error is None and cid not in found:
                error = service.CustomerNotFound(field=field, id=cid)
            elif error is None and found[cid].merged_into_id is not None:
                error = AlreadyMerged(field=field, id=cid, into=found[cid].merged_into_id)
        if error is None and found[survivor_id].kind != found[merged_id].kind:
            error = MergeKindMismatch(field="merged_id")
        if error is not None:
            out.append(error)
            continue
        ok.append((found[survivor_id], found[merged_id]))
        out.append(None)  # type: ignore[arg-type]  # filled in below
    if not ok:
        return out

    now = utcnow()
    filled = [_fill(survivor, merged) for survivor, merged in ok]
    identity_ids: dict[int, list[int]] = {merged.id: [] for _s, merged in ok}
    stmt = select(Identity.id, Identity.customer_id).where(Identity.customer_id.in_(list(identity_ids)))
    for iid, cid in session.execute(stmt.order_by(Identity.id)):
        identity_ids[cid].append(iid)
    moves = [{"b_from": m.id, "b_to": s.id} for s, m in ok if identity_ids[m.id]]
    if moves:
        table = cast(Table, Identity.__table__)
        session.connection().execute(
            update(table)
            .where(table.c.customer_id == bindparam("b_from"))
            .values(customer_id=bindparam("b_to")),
            moves,
        )
    interests = _move_interests_many(session, [(m.id, s.id) for s, m in ok])
    contact_ids: list[list[int]] = []
    for survivor, merged in ok:
        contacts: list[int] = []
        if merged.kind == COMPANY:
            contacts = list(
                session.scalars(
                    select(Customer.id).where(Customer.company_id == merged.id).order_by(Customer.id)
                )
            )
            _set_company(session, contacts, merged.id, survivor.id)
        contact_ids.append(contacts)
        merged.merged_into_id = survivor.id
    session.flush()
    moved: list[dict[str, Any]] = [{} for _ in ok]
    from_to = [(m.id, s.id) for s, m in ok]
    for p in participants():
        batch = _BATCH_MOVES.get(p.name)
        results = batch(session, from_to) if batch else [p.move(session, f, t) for f, t in from_to]
        for slot, result in zip(moved, results, strict=True):
            slot[p.name] = _checked(p.name, result)
    reindex = {s.id: s for (s, _m), f in zip(ok, filled, strict=True) if "name_kana" in f}
    for survivor in reindex.values():
        service._reindex(session, survivor)
    for (survivor, _m), f in zip(ok, filled, strict=True):
        if f:
            survivor.updated_at = now
    session.execute(
        delete(DuplicateCandidate).where(
            DuplicateCandidate.status == OPEN,
            or_(
                DuplicateCandidate.customer_a_id.in_(list(identity_ids)),
                DuplicateCandidate.customer_b_id.in_(list(identity_ids)),
            ),
        )
    )
    records = [
        CustomerMerge(
            survivor_id=s.id, merged_id=m.id, automatic=automatic, reason=None, actor_id=actor.user_id,
            actor_label=actor.label, merged_at=now, moved=mv, identity_ids=identity_ids[m.id],
            interests=tags, contact_ids=contacts, filled=f,
        )
        for (s, m), mv, tags, contacts, f in zip(ok, moved, interests, contact_ids, filled, strict=True)
    ]  # fmt: skip
    session.add_all(records)
    session.flush()
    for (survivor, merged), record, f in zip(ok, records, filled, strict=True):
        _audit_merge(session, actor, survivor, merged, record, automatic, f)
    timeline_entries.bulk_add(
        session,
        [
            {"customer_id": s.id, "at": now, "kind": "customers_merged", "channel": None, "summary": "",
             "ref_type": "customer", "ref_id": m.id, "properties": {"merged_id": m.id, "actor": actor.label}}
            for s, m in ok
        ],
    )  # fmt: skip
    done = iter(records)
    return [item if item is not None else next(done) for item in out]


def _move_interests_many(session: Session, pairs: list[tuple[int, int]]) -> list[dict[str, list[str]]]:
    """_move_interests for many (from_id, to_id) pairs, as if run one pair after another."""
    ids = {i for pair in pairs for i in pair}
    tags: dict[int, set[str]] = {i: set() for i in ids}
    for cid, tag in session.execute(
        select(Interest.customer_id, Interest.tag).where(Interest.customer_id.in_(ids))
    ):
        tags[cid].add(tag)
    out = []
    for from_id, to_id in pairs:
        theirs, ours = tags[from_id], tags[to_id]
        moved, dropped = sorted(theirs - ours), sorted(theirs & ours)
        if moved:
            session.execute(
                update(Interest)
                .where(Interest.customer_id == from_id, Interest.tag.in_(moved))
                .values(customer_id=to_id)
            )
        if dropped:
            session.execute(
                delete(Interest).where(Interest.customer_id == from_id, Interest.tag.in_(dropped))
            )
        ours |= theirs
        tags[from_id] = set()
        out.append({"moved": moved, "dropped": dropped})
    return out
