"""Event ingestion: a batch of up to 1,000 events resolved to customers and stored in one transaction.

The batch is validated event by event (a bad event is reported, the others are stored), de-duplicated by
event id against `touchpoints.source_event_id`, and resolved with a handful of set-based queries:

1. every identifying key of the batch (email, phone, external id, anonymous id) is looked up at once;
2. each event goes to the customer owning one of its keys, or to a new prospect;
3. keys not yet owned are attached to that customer; when one event shows that an anonymous-only customer
   (a visitor known by an anonymous id alone) is the same person as another customer, the two are
   stitched: prospects made in this batch are simply folded, existing ones are merged through
   `kokyaku.customers.merge` (automatic, undoable);
4. prospects, identities, touchpoints and timeline entries are written with batched inserts.

Two customers who each own a real key (email, phone, external id) are never merged here: that is a
decision for a person on the duplicates page. The event goes to the owner of its strongest key.
"""

from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Table, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.customers import bulk as customers_bulk
from kokyaku.customers.merge import merge_customers
from kokyaku.customers.models import Identity
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, KokyakuError
from kokyaku.timeline import entries
from kokyaku.timeline.models import TOUCHPOINT_CHANNELS, Touchpoint
from kokyaku.timeline.schemas import (
    MAX_BATCH,
    EventError,
    EventIn,
    EventResult,
    IngestCounts,
    IngestResult,
)
from kokyaku.timeline.service import FUTURE_SLACK

# Key kinds in the order of how surely they name one person: the event goes to the owner of the first.
KEY_ORDER = ("external", "email", "phone", "anonymous")
# Any constant: one advisory lock serialises ingestion batches on PostgreSQL (see _lock_ingestion).
_PG_LOCK_ID = 0x6B6F6B79616B75  # "kokyaku"

Key = tuple[str, str]


class BatchTooLarge(KokyakuError):
    code = "batch_too_large"
    status = 413
    message = "A batch holds at most {limit} events; this one has {count}. Split it into smaller batches."


class IngestConflict(Conflict):
    code = "ingest_conflict"
    message = "Another change touched the same customers at the same moment. Send the batch again."


# ---------------------------------------------------------------- validation

_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field.",
    "string_type": "Must be a string.",
    "string_too_short": "This field is required.",
    "string_too_long": "At most {max_length} characters.",
    "timezone_aware": "Must include a time zone, like 2026-01-31T10:00:00+09:00.",
    "datetime_parsing": "Must be an ISO 8601 time with a zone, like 2026-01-31T10:00:00+09:00.",
    "datetime_from_date_parsing": "Must be an ISO 8601 time with a zone, like 2026-01-31T10:00:00+09:00.",
    "datetime_type": "Must be an ISO 8601 time with a zone, like 2026-01-31T10:00:00+09:00.",
    "literal_error": "Must be one of: " + ", ".join(TOUCHPOINT_CHANNELS) + ".",
    "dict_type": "Must be a JSON object.",
    "model_type": "Each event must be a JSON object.",
}


def _errors(exc: ValidationError) -> list[EventError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err.get("loc", ())]
        # A whole-event rule (no identifying key) is reported at the first key a sender would add.
        name = ".".join(loc) or "email"
        kind = err.get("type", "")
        if kind == "value_error":
            message = str(err.get("msg", "")).removeprefix("Value error, ")
        else:
            message = _MESSAGES.get(kind, str(err.get("msg", "Not valid.")))
            ctx = err.get("ctx") or {}
            if "{" in message:
                message = message.format(**{k: v for k, v in ctx.items() if isinstance(v, int | str)})
        out.append(EventError(field=name, message=message))
    return out


def _validate(raw: Any) -> EventIn | list[EventError]:
    if not isinstance(raw, dict):
        return [EventError(field="event", message="Each event must be a JSON object.")]
    try:
        event = EventIn.model_validate(raw)
    except ValidationError as exc:
        return _errors(exc)
    if event.at > utcnow() + FUTURE_SLACK:
        return [EventError(field="at", message="The time lies in the future.")]
    return event


def _keys(event: EventIn) -> list[Key]:
    values = {"external": event.external_id, "email": event.email, "phone": event.phone}
    values["anonymous"] = event.anonymous_id
    return [(kind, v) for kind in KEY_ORDER if (v := values[kind])]


# ---------------------------------------------------------------- database-specific pieces


def _lock_ingestion(session: Session) -> None:
    """Serialise batches so that two never create the same prospect or identity.

    SQLite already does: every writer begins IMMEDIATE. On PostgreSQL a transaction-scoped advisory lock
    does it; a lock per key would need thousands of lock slots per batch.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})


def insert_ignoring_conflicts(
    session: Session, table: Table, rows: list[dict[str, Any]], *, unique: list[str], returning: list[str]
) -> list[Any]:
    """INSERT that skips rows whose unique columns already exist; returns the inserted rows' `returning`.

    SQLite and PostgreSQL say ON CONFLICT DO NOTHING; other databases take the portable path: select the
    existing keys first, then insert the rest.
    """
    if not rows:
        return []
    cols = [table.c[name] for name in returning]
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        make = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = make(table).on_conflict_do_nothing(index_elements=unique).returning(*cols)
        return list(session.execute(stmt, rows))
    existing = {
        tuple(r)
        for r in session.execute(
            select(*[table.c[u] for u in unique]).where(table.c[unique[0]].in_([r[unique[0]] for r in rows]))
        )
    }
    fresh = [r for r in rows if tuple(r[u] for u in unique) not in existing]
    if not fresh:
        return []
    return list(session.execute(insert(table).returning(*cols), fresh))


# ---------------------------------------------------------------- resolution


@dataclass
class _Resolver:
    """Who each event belongs to, worked out in memory before anything is written.

    Handles are existing customer ids (> 0) or prospects to create (< 0); `parent` folds one handle into
    another, so every lookup goes through `find`.
    """

    owner: dict[Key, int]
    has_real_key: set[int]  # existing customers owning an email, phone or external id
    parent: dict[int, int] = field(default_factory=dict)
    added: dict[int, list[Key]] = field(default_factory=dict)  # keys to attach (or to create with)
    merges: list[tuple[int, int]] = field(default_factory=list)  # (merged, survivor), existing customers
    next_prospect: int = -1

    def find(self, h: int) -> int:
        while h in self.parent:
            h = self.parent[h]
        return h

    def anonymous_only(self, h: int) -> bool:
        if h > 0 and h in self.has_real_key:
            return False
        return all(kind == "anonymous" for kind, _v in self.added.get(h, []))

    def fold(self, h: int, into: int) -> None:
        self.parent[h] = into
        self.added.setdefault(into, []).extend(self.added.pop(h, []))
        if h > 0:
            self.merges.append((h, into))

    def resolve(self, keys: list[Key]) -> int:
        handles = list(dict.fromkeys(self.find(self.owner[k]) for k in keys if k in self.owner))
        if not handles:
            target = self.next_prospect
            self.next_prospect -= 1
        elif len(handles) == 1:
            target = handles[0]
        else:
            target = self._stitch(handles)
        for key in keys:
            if key not in self.owner:
                self.owner[key] = target
                self.added.setdefault(target, []).append(key)
        return target

    def _stitch(self, handles: list[int]) -> int:
        existing = [h for h in handles if h > 0]
        real = [h for h in existing if not self.anonymous_only(h)]
        survivor = (real or existing or handles)[0]
        for h in handles:
            if h == survivor:
                continue
            # Prospects of this batch fold into anyone; an existing customer only if it is anonymous-only.
            if h < 0 or self.anonymous_only(h):
                self.fold(h, survivor)
        return survivor


def _lookup(session: Session, keys: set[Key]) -> dict[Key, int]:
    """Owners of the batch's keys: one indexed IN query per key kind."""
    owner: dict[Key, int] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in keys:
        by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        stmt = select(Identity.value, Identity.customer_id).where(
            Identity.kind == kind, Identity.value.in_(values)
        )
        for value, cid in session.execute(stmt):
            owner[(kind, value)] = cid
    return owner


def _with_real_keys(session: Session, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    stmt = (
        select(Identity.customer_id)
        .where(Identity.customer_id.in_(list(ids)), Identity.kind != "anonymous")
        .distinct()
    )
    return set(session.scalars(stmt))


def _prospect_name(keys: list[Key], placeholder: str) -> str:
    values = dict(reversed(keys))
    return values.get("email") or values.get("phone") or values.get("external") or placeholder


def _identity_rows(keys: list[Key], source: dict[Key, str | None]) -> list[customers_bulk.IdentityKey]:
    return [(kind, value, source.get((kind, value))) for kind, value in keys]


# ---------------------------------------------------------------- the batch


@dataclass
class Checked:
    """A batch after validation: a result slot per event, and the valid events with their index."""

    results: list[EventResult]
    valid: list[tuple[int, EventIn]]


def validate(events: list[Any]) -> Checked:
    """Check every event on its own; needs no database, so it runs before the write transaction begins."""
    if len(events) > MAX_BATCH:
        raise BatchTooLarge(field="events", limit=MAX_BATCH, count=len(events))
    results = [EventResult(index=i, status="invalid") for i in range(len(events))]
    valid: list[tuple[int, EventIn]] = []
    for i, raw in enumerate(events):
        checked = _validate(raw)
        if isinstance(checked, EventIn):
            valid.append((i, checked))
        else:
            results[i].errors = checked
    return Checked(results, valid)


def ingest(session: Session, *, actor: Actor, events: list[Any], placeholder_name: str) -> IngestResult:
    """Validate, de-duplicate, resolve and store one batch; returns one result per event, in order."""
    return store(session, actor=actor, checked=validate(events), placeholder_name=placeholder_name)


def store(session: Session, *, actor: Actor, checked: Checked, placeholder_name: str) -> IngestResult:
    """De-duplicate, resolve and store the valid events of a checked batch in the caller's transaction."""
    _lock_ingestion(session)
    results, valid = checked.results, checked.valid

    # Idempotency: event ids seen before, or earlier in this batch, store nothing new.
    seen: dict[str, int] = {}
    ids = list({e.event_id for _i, e in valid})
    if ids:
        stmt = select(Touchpoint.source_event_id, Touchpoint.customer_id).where(
            Touchpoint.source_event_id.in_(ids)
        )
        seen = {eid: cid for eid, cid in session.execute(stmt)}
    fresh: list[tuple[int, EventIn]] = []
    first_of: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []  # (index, index of the first event with that id)
    for i, event in valid:
        if event.event_id in seen:
            results[i].status = "duplicate"
            results[i].customer_id = seen[event.event_id]
        elif event.event_id in first_of:
            results[i].status = "duplicate"
            repeats.append((i, first_of[event.event_id]))
        else:
            first_of[event.event_id] = i
            fresh.append((i, event))

    try:
        counts = _store(session, actor, fresh, results, placeholder_name)
    except IntegrityError as exc:
        # Only a concurrent writer outside ingestion can get here; the transaction rolls back whole.
        raise IngestConflict() from exc
    for i, first in repeats:
        results[i].customer_id = results[first].customer_id
    counts.duplicate = sum(r.status == "duplicate" for r in results)
    counts.invalid = sum(r.status == "invalid" for r in results)
    return IngestResult(results=results, counts=counts)


def _store(
    session: Session,
    actor: Actor,
    fresh: list[tuple[int, EventIn]],
    results: list[EventResult],
    placeholder: str,
) -> IngestCounts:
    counts = IngestCounts()
    if not fresh:
        return counts
    event_keys = {i: _keys(e) for i, e in fresh}
    source: dict[Key, str | None] = {}
    for _i, e in fresh:
        if e.external_id:
            source.setdefault(("external", e.external_id), e.source or "events")
    all_keys = {k for ks in event_keys.values() for k in ks}
    owner = _lookup(session, all_keys)
    # Owners found through an email, phone or external id have a real key; owners found only through an
    # anonymous id are checked in one query.
    real_owners = {cid for (kind, _v), cid in owner.items() if kind != "anonymous"}
    anonymous_owners = {cid for (kind, _v), cid in owner.items() if kind == "anonymous"} - real_owners
    r = _Resolver(owner=owner, has_real_key=real_owners | _with_real_keys(session, anonymous_owners))
    handle_of = {i: r.resolve(event_keys[i]) for i, _e in fresh}

    # Prospects: the pending handles still standing after folding.
    pending = sorted({r.find(h) for h in handle_of.values() if r.find(h) < 0}, reverse=True)
    channel_of: dict[int, str | None] = {}
    for i, e in fresh:
        channel_of.setdefault(r.find(handle_of[i]), _channel(e))
    new_ids = customers_bulk.create_prospects(
        session,
        actor=actor,
        prospects=[
            customers_bulk.Prospect(
                name=_prospect_name(r.added.get(h, []), placeholder),
                identities=_identity_rows(r.added.get(h, []), source),
                channel=channel_of.get(h),
            )
            for h in pending
        ],
    )
    real = dict(zip(pending, new_ids, strict=True))
    counts.prospects_created = len(new_ids)

    def customer_of(h: int) -> int:
        root = r.find(h)
        return real.get(root, root)

    for merged, survivor in r.merges:
        counts.customers_merged += _stitch(session, actor, survivor=customer_of(survivor), merged=merged)
    attach = {
        h: _identity_rows(keys, source) for h, keys in r.added.items() if h > 0 and r.find(h) == h and keys
    }
    customers_bulk.attach_identities(session, actor=actor, keys=attach, placeholder_name=placeholder)

    now = utcnow()
    rows = []
    for i, e in fresh:
        cid = customer_of(handle_of[i])
        results[i].customer_id = cid
        rows.append(
            {
                "customer_id": cid,
                "channel": _channel(e),
                "type": e.type,
                "at": e.at,
                "summary": e.summary or "",
                "properties": e.properties,
                "source_event_id": e.event_id,
                "created_at": now,
            }
        )
    inserted = insert_ignoring_conflicts(
        session,
        cast(Table, Touchpoint.__table__),
        rows,
        unique=["source_event_id"],
        returning=["id", "source_event_id"],
    )
    tp_id = {eid: tid for tid, eid in inserted}
    timeline = []
    for (i, e), row in zip(fresh, rows, strict=True):
        if e.event_id not in tp_id:
            # Stored by a concurrent batch between our check and our insert (not possible while the lock
            # holds, kept for safety): report it as what it is.
            results[i].status = "duplicate"
            continue
        results[i].status = "created"
        timeline.append(
            {
                "customer_id": row["customer_id"],
                "at": e.at,
                "kind": "touchpoint",
                "channel": row["channel"],
                "summary": row["summary"],
                "ref_type": "touchpoint",
                "ref_id": tp_id[e.event_id],
                "properties": {"type": e.type},
            }
        )
    entries.bulk_add(session, timeline)
    counts.created = len(timeline)
    return counts


def _stitch(session: Session, actor: Actor, *, survivor: int, merged: int) -> int:
    """Merge an anonymous-only visitor into the customer an event tied it to; 1 if merged.

    A merge the customers domain refuses (a company's address used by a visitor, a record merged meanwhile)
    is skipped inside a savepoint: the batch is stored, the event goes to the survivor, the visitor stays.
    """
    try:
        with session.begin_nested():
            merge_customers(session, actor=actor, survivor_id=survivor, merged_id=merged, automatic=True)
    except KokyakuError:
        return 0
    return 1


def _channel(event: EventIn) -> str:
    # Events without a channel: anonymous ids come from web and app trackers; the rest stay "other".
    return event.channel or ("web" if event.anonymous_id else "other")
