"""Event ingestion: a batch of up to 1,000 events resolved to customers and stored in one transaction.

The batch is validated event by event (a bad event is reported, the others are stored), de-duplicated by
event id against `touchpoints.source_event_id`, and resolved with a handful of set-based queries:

1. every identifying key of the batch (email, phone, external id, anonymous id) is looked up at once;
2. each event goes to the customer owning one of its keys, or to a new prospect;
3. keys not yet owned are attached to that customer; when one event shows that an anonymous-only customer
   (a visitor known by an anonymous id alone) is the same person as another customer, the two are
   stitched: prospects made in this batch are simply folded, existing ones are merged through
   `kokyaku.customers.merge` (automatic, undoable);
4. prospects, identities, touchpoints and timeline entries are written with batched inserts; touchpoints
   get reserved ids and go with timeline entries through the database's fast path (executemany of plain
   tuples on SQLite, COPY on PostgreSQL), and all stitching merges of a batch go through one
   `merge_many` (still one undoable merge record per visitor).

The whole batch goes through one list validation; an event it refuses is validated again on its own, so that
each bad event gets its errors exactly as a lone validation reports them.

Two customers who each own a real key (email, phone, external id) are never merged here: that is a
decision for a person on the duplicates page. The event goes to the owner of its strongest key.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

from psycopg import IntegrityError as PgIntegrityError
from pydantic import TypeAdapter, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from sqlalchemy import Connection, Table, bindparam, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.customers import bulk as customers_bulk
from kokyaku.customers.merge import merge_many
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, KokyakuError
from kokyaku.kit.bulk import db_formats, insert_tuples, reserve_ids
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


def _select_in(conn: Connection, sql: str, values: Sequence[Any], *params: Any) -> list[Any]:
    """Rows of `sql` (which ends in a column) with that column in `values`: `IN (?, ...)` on SQLite, one
    array parameter on PostgreSQL, an expanding IN elsewhere. `params` fill `:p0`, `:p1` in `sql`."""
    if not values:
        return []
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        mark = "?" if dialect == "sqlite" else "%s"
        for i in range(len(params)):
            sql = sql.replace(f":p{i}", mark)
        if dialect == "sqlite":
            sql, args = f"{sql} IN ({','.join('?' * len(values))})", (*params, *values)
        else:
            sql, args = f"{sql} = ANY(%s)", (*params, list(values))
        # the driver's own cursor, in the session's transaction: thousands of plain values need no result
        # processing, and SQLAlchemy's costs about a microsecond a row
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, args)
            return list(cursor.fetchall())
        finally:
            cursor.close()
    stmt = text(f"{sql} IN :values").bindparams(bindparam("values", expanding=True))
    return list(conn.execute(stmt, {**{f"p{i}": p for i, p in enumerate(params)}, "values": list(values)}))


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


def _lookup(conn: Connection, keys: Iterable[Key]) -> dict[Key, int]:
    """Owners of the batch's keys: one indexed query per key kind (kind, value, customer_id index)."""
    owner: dict[Key, int] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in keys:
        by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        sql = "SELECT value, customer_id FROM customer_identities WHERE kind = :p0 AND value"
        for value, cid in _select_in(conn, sql, values, kind):
            owner[(kind, value)] = cid
    return owner


def _with_real_keys(conn: Connection, ids: set[int]) -> set[int]:
    sql = "SELECT DISTINCT customer_id FROM customer_identities WHERE kind != 'anonymous' AND customer_id"
    return {cid for (cid,) in _select_in(conn, sql, sorted(ids))}


def _prospect_name(keys: list[Key], placeholder: str) -> str:
    values = dict(reversed(keys))
    return values.get("email") or values.get("phone") or values.get("external") or placeholder


def _identity_rows(keys: list[Key], source: dict[Key, str | None]) -> list[customers_bulk.IdentityKey]:
    return [(kind, value, source.get((kind, value))) for kind, value in keys]


# ---------------------------------------------------------------- the batch


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> EventIn | None:
    try:
        return cast(EventIn, handler(value))
    except ValidationError:
        return None


# One pass over the batch; a bad event becomes None instead of failing the list.
_EVENTS = TypeAdapter(list[Annotated[EventIn, WrapValidator(_or_none)]])
_SUMMARY_MAX = 500
TOUCHPOINT_COLUMNS = (
    "id", "customer_id", "channel", "type", "at", "summary", "properties", "source_event_id", "created_at",
)  # fmt: skip


@dataclass
class Checked:
    """A batch after validation: its size, the errors of each invalid event, the valid events by index."""

    size: int
    errors: dict[int, list[EventError]]
    valid: list[tuple[int, EventIn]]


def validate(events: list[Any]) -> Checked:
    """Check every event on its own; needs no database, so it runs before the write transaction begins.

    One list validation covers the batch; an event it refuses is validated again on its own, which names
    its errors exactly as before.
    """
    if len(events) > MAX_BATCH:
        raise BatchTooLarge(field="events", limit=MAX_BATCH, count=len(events))
    errors: dict[int, list[EventError]] = {}
    valid: list[tuple[int, EventIn]] = []
    for i, event in enumerate(_EVENTS.validate_python(events)):
        if event is not None:
            valid.append((i, event))
            continue
        checked = _validate(events[i])  # a bad event (rare): its errors as a lone validation gives them
        if isinstance(checked, EventIn):
            valid.append((i, checked))
        else:
            errors[i] = checked
    latest = utcnow() + FUTURE_SLACK
    future = [i for i, e in valid if e.at > latest]
    if future:
        for i in future:
            errors[i] = [EventError(field="at", message="The time lies in the future.")]
        valid = [(i, e) for i, e in valid if i not in errors]
    return Checked(len(events), errors, valid)


@dataclass
class Outcome:
    """What happened to each event of a batch (by index), and the counts."""

    status: list[str]
    customer_id: list[int | None]
    errors: dict[int, list[EventError]]
    counts: IngestCounts

    def result(self) -> IngestResult:
        return IngestResult(
            results=[
                EventResult(index=i, status=st, customer_id=cid, errors=self.errors.get(i, []))  # type: ignore[arg-type]
                for i, (st, cid) in enumerate(zip(self.status, self.customer_id, strict=True))
            ],
            counts=self.counts,
        )

    def json(self) -> bytes:
        """The response body, the same JSON as `result().model_dump_json()` without building 1,000 models."""
        parts = []
        for i, (st, cid) in enumerate(zip(self.status, self.customer_id, strict=True)):
            errs = self.errors.get(i)
            if errs:
                shown = json.dumps([e.model_dump() for e in errs], ensure_ascii=False, separators=(",", ":"))
            else:
                shown = "[]"
            parts.append(f'{{"index":{i},"status":"{st}","customer_id":{"null" if cid is None else cid},'
                         f'"errors":{shown}}}')  # fmt: skip
        return f'{{"results":[{",".join(parts)}],"counts":{self.counts.model_dump_json()}}}'.encode()


def ingest(session: Session, *, actor: Actor, events: list[Any], placeholder_name: str) -> IngestResult:
    """Validate, de-duplicate, resolve and store one batch; returns one result per event, in order."""
    return store(session, actor=actor, checked=validate(events), placeholder_name=placeholder_name).result()


def store(session: Session, *, actor: Actor, checked: Checked, placeholder_name: str) -> Outcome:
    """De-duplicate, resolve and store the valid events of a checked batch in the caller's transaction."""
    _lock_ingestion(session)
    conn = session.connection()
    out = Outcome(["invalid"] * checked.size, [None] * checked.size, checked.errors, IngestCounts())

    # Idempotency: event ids seen before, or earlier in this batch, store nothing new (one query on the
    # unique index of touchpoints.source_event_id).
    ids = list({e.event_id for _i, e in checked.valid})
    sql = "SELECT source_event_id, customer_id FROM touchpoints WHERE source_event_id"
    seen: dict[str, int] = dict(_select_in(conn, sql, ids))
    fresh: list[tuple[int, EventIn]] = []
    first_of: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []  # (index, index of the first event with that id)
    for i, event in checked.valid:
        if event.event_id in seen:
            out.status[i] = "duplicate"
            out.customer_id[i] = seen[event.event_id]
        elif event.event_id in first_of:
            out.status[i] = "duplicate"
            repeats.append((i, first_of[event.event_id]))
        else:
            first_of[event.event_id] = i
            fresh.append((i, event))
    try:
        _store(session, conn, actor, fresh, out, placeholder_name)
    except (IntegrityError, PgIntegrityError) as exc:
        # Only a concurrent writer outside ingestion can get here; the transaction rolls back whole.
        raise IngestConflict() from exc
    for i, first in repeats:
        out.customer_id[i] = out.customer_id[first]
    out.counts.duplicate = out.status.count("duplicate")
    out.counts.invalid = len(checked.errors)
    return out


def _store(
    session: Session,
    conn: Connection,
    actor: Actor,
    fresh: list[tuple[int, EventIn]],
    out: Outcome,
    placeholder: str,
) -> None:
    if not fresh:
        return
    counts = out.counts
    event_keys = {i: _keys(e) for i, e in fresh}
    source: dict[Key, str | None] = {}
    for _i, e in fresh:
        if e.external_id:
            source.setdefault(("external", e.external_id), e.source or "events")
    owner = _lookup(conn, {k for ks in event_keys.values() for k in ks})
    # Owners found through an email, phone or external id have a real key; owners found only through an
    # anonymous id are checked in one query.
    real_owners = {cid for (kind, _v), cid in owner.items() if kind != "anonymous"}
    anonymous_owners = {cid for (kind, _v), cid in owner.items() if kind == "anonymous"} - real_owners
    r = _Resolver(owner=owner, has_real_key=real_owners | _with_real_keys(conn, anonymous_owners))
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

    # Stitching: every anonymous visitor this batch tied to another customer, in one batched merge; a merge
    # the customers domain refuses (a record merged meanwhile, a company) is skipped, the visitor stays.
    merged = merge_many(
        session, actor=actor, pairs=[(customer_of(s), m) for m, s in r.merges], automatic=True
    )
    counts.customers_merged = sum(not isinstance(m, KokyakuError) for m in merged)
    attach = {
        h: _identity_rows(keys, source) for h, keys in r.added.items() if h > 0 and r.find(h) == h and keys
    }
    customers_bulk.attach_identities(session, actor=actor, keys=attach, placeholder_name=placeholder)

    when, as_json = db_formats(session)
    created = when(utcnow())
    touchpoint_ids = reserve_ids(session, cast(Table, Touchpoint.__table__), len(fresh))
    assert touchpoint_ids is not None, "ingestion runs on SQLite or PostgreSQL"
    rows = []
    timeline = []
    for (i, e), tid in zip(fresh, touchpoint_ids, strict=True):
        cid = customer_of(handle_of[i])
        out.status[i] = "created"
        out.customer_id[i] = cid
        channel = e.channel or ("web" if e.anonymous_id else "other")
        # the summary is at most 500 characters before width folding, which can lengthen it
        summary = (e.summary or "")[:_SUMMARY_MAX]
        rows.append(
            (tid, cid, channel, e.type, when(e.at), summary, as_json(e.properties), e.event_id, created)
        )
        timeline.append((cid, e.at, channel, summary, tid, e.type))
    insert_tuples(session, cast(Table, Touchpoint.__table__), TOUCHPOINT_COLUMNS, rows)
    entries.touchpoints_recorded(session, timeline)
    counts.created = len(rows)


def _channel(event: EventIn) -> str:
    # Events without a channel: anonymous ids come from web and app trackers; the rest stay "other".
    return event.channel or ("web" if event.anonymous_id else "other")
