"""Batched writes of customers and identities for high-volume paths (event ingestion): set-based inserts and
updates instead of one service call per customer, with the same audit rows the service would write."""

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from kokyaku.audit.models import AuditEntry
from kokyaku.audit.service import Actor
from kokyaku.customers.models import PERSON, Customer, Identity
from kokyaku.customers.service import search_text_of
from kokyaku.db import utcnow
from kokyaku.kit.bulk import db_formats, insert_tuples, reserve_ids

# (kind, normalised value, source): kind is one of IDENTITY_KINDS
IdentityKey = tuple[str, str, str | None]
CUSTOMERS = cast(Table, Customer.__table__)
IDENTITIES = cast(Table, Identity.__table__)
AUDIT = cast(Table, AuditEntry.__table__)


@dataclass
class Prospect:
    """A customer known only by the keys an event carried."""

    name: str
    identities: list[IdentityKey]
    source: str = "events"
    channel: str | None = None


def _audit_rows(actor: Actor, action: str, changes: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "at": now,
            "actor_id": actor.user_id,
            "actor_label": actor.label,
            "entity_type": "customer",
            "entity_id": cid,
            "action": action,
            "changes": diff,
        }
        for cid, diff in changes.items()
    ]


def _first(identities: list[IdentityKey], kind: str) -> str | None:
    return next((value for k, value, _src in identities if k == kind), None)


def create_prospects(session: Session, *, actor: Actor, prospects: list[Prospect]) -> list[int]:
    """Create person customers with their identities and one audit row each; returns ids in input order.

    Ids are reserved up front and rows written as plain tuples (executemany on SQLite, COPY on PostgreSQL):
    an INSERT ... RETURNING would make SQLite run one row at a time to keep the ids in order. Prospects get
    no name grams: their names are emails, phones or a placeholder, which the identity prefix search already
    finds, and thousands of "Anonymous visitor" grams would only slow the index.
    """
    if not prospects:
        return []
    ids = _reserve(session, CUSTOMERS, len(prospects))
    when, _as_json = db_formats(session)
    now = when(utcnow())
    customers, identities, audits = [], [], []
    for cid, p in zip(ids, prospects, strict=True):
        customers.append(
            (cid, PERSON, p.name, _first(p.identities, "email"), _first(p.identities, "phone"), p.source,
             p.channel, "{}", _prospect_search_text(p.name, None), now, now)
        )  # fmt: skip
        identities += [(cid, kind, value, src, now) for kind, value, src in p.identities]
        changes = {
            "name": [None, p.name],
            "source": [None, p.source],
            "identities": [None, [f"{kind}:{value}" for kind, value, _src in p.identities]],
        }
        audits.append((now, actor.user_id, actor.label, "customer", cid, "create", json.dumps(changes)))
    insert_tuples(session, CUSTOMERS, _PROSPECT_COLUMNS, customers)
    insert_tuples(session, IDENTITIES, ("customer_id", "kind", "value", "source", "created_at"), identities)
    insert_tuples(session, AUDIT, _AUDIT_COLUMNS, audits)
    return ids


_PROSPECT_COLUMNS = (
    "id", "kind", "name", "email", "phone", "source", "channel", "custom", "search_text", "created_at",
    "updated_at",
)  # fmt: skip
_AUDIT_COLUMNS = ("at", "actor_id", "actor_label", "entity_type", "entity_id", "action", "changes")
# prospects are named after a key or "Anonymous visitor": the same few names recur
_prospect_search_text = lru_cache(maxsize=4096)(search_text_of)


def attach_identities(
    session: Session, *, actor: Actor, keys: dict[int, list[IdentityKey]], placeholder_name: str | None = None
) -> None:
    """Add identities to existing customers (the caller has checked that no one else owns them).

    A customer without a primary email or phone gets the first one attached; a prospect still named
    `placeholder_name` ("Anonymous visitor") is renamed after its new email or phone.
    """
    keys = {cid: ks for cid, ks in keys.items() if ks}
    if not keys:
        return
    now = utcnow()
    session.execute(
        insert(IDENTITIES),
        [
            {"customer_id": cid, "kind": kind, "value": value, "source": src, "created_at": now}
            for cid, ks in keys.items()
            for kind, value, src in ks
        ],
    )
    current = {
        row.id: row
        for row in session.execute(
            select(Customer.id, Customer.name, Customer.email, Customer.phone, Customer.source).where(
                Customer.id.in_(list(keys))
            )
        )
    }
    updates: list[dict[str, Any]] = []
    changes: dict[int, dict[str, Any]] = {}
    for cid, ks in keys.items():
        row = current.get(cid)
        if row is None:
            continue
        email = row.email or _first(ks, "email")
        phone = row.phone or _first(ks, "phone")
        name = row.name
        if placeholder_name and row.name == placeholder_name and row.source == "events" and (email or phone):
            name = email or phone or row.name
        diff: dict[str, Any] = {"identities": [None, [f"{kind}:{value}" for kind, value, _src in ks]]}
        if name != row.name:
            diff["name"] = [row.name, name]
        if (email, phone, name) != (row.email, row.phone, row.name):
            updates.append(
                {
                    "b_id": cid,
                    "email": email,
                    "phone": phone,
                    "name": name,
                    "search_text": search_text_of(name, None),
                }
            )
        changes[cid] = diff
    if updates:
        stmt = (
            update(CUSTOMERS)
            .where(CUSTOMERS.c.id == bindparam("b_id"))
            .values(email=bindparam("email"), phone=bindparam("phone"), name=bindparam("name"),
                    search_text=bindparam("search_text"), updated_at=now)
        )  # fmt: skip
        session.connection().execute(stmt, updates)
    session.execute(insert(AUDIT), _audit_rows(actor, "update", changes))


# ================================================================ CSV import: upsert (imports helper)
# Customers and companies from import files, a batch at a time: set-based lookups of the identities and of
# the current rows, then batched inserts and updates and one audit row per created or changed customer, the
# same rows the service writes. Matching: Kokyaku ID, else external id, else email, else phone (companies
# also by exact name). Empty cells change nothing, identities are only ever added, an interests cell
# replaces the list; a row that changes nothing writes nothing (no audit row either).

import json as _json  # noqa: E402
from collections.abc import Callable as _Callable  # noqa: E402
from dataclasses import field as _field  # noqa: E402
from datetime import date, datetime  # noqa: E402
from functools import lru_cache as _lru_cache  # noqa: E402
from json import encoder as _json_encoder  # noqa: E402

from sqlalchemy import delete as _delete  # noqa: E402
from sqlalchemy import func as _func  # noqa: E402

from kokyaku.audit.service import diff as _diff  # noqa: E402
from kokyaku.auth.models import User  # noqa: E402
from kokyaku.customers import search_index  # noqa: E402
from kokyaku.customers.models import COMPANY, CustomFieldDef, Interest  # noqa: E402
from kokyaku.customers.service import ENTITY, SCALAR_FIELDS, _coerce_custom  # noqa: E402
from kokyaku.kit.normalize import ngrams, search_key  # noqa: E402

_CHUNK = 1000
# (identity kind, normalised value); kind "company_name" matches companies by their exact name
Key = tuple[str, str]
_ROW_FIELD = {"email": "email", "phone": "phone", "external": "external_id"}


@dataclass
class UpsertRow:
    """One validated import row; only the fields it sets are present (an empty cell changes nothing)."""

    row: int
    kind: str
    fields: dict[str, Any] = _field(default_factory=dict)
    emails: list[str] = _field(default_factory=list)
    phones: list[str] = _field(default_factory=list)
    external_ids: list[tuple[str, str]] = _field(default_factory=list)  # (source, value)
    interests: list[str] | None = None
    custom: dict[str, Any] = _field(default_factory=dict)
    customer_id: int | None = None  # the Kokyaku ID column
    company_name: str | None = None  # a person's company, by exact name


@dataclass
class UpsertOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # (row, field, msgid, params)
    errors: list[tuple[int, str, str, dict[str, Any]]] = _field(default_factory=list)
    # identity -> customer after this batch, for a check-only run to carry into the next batch; a negative
    # number is a customer that row -n would create
    keys: dict[Key, int] = _field(default_factory=dict)


def custom_value(definition: CustomFieldDef, raw: Any) -> Any:
    """A custom field's value checked and converted as the service does (raises ValueError(msgid))."""
    return _coerce_custom(definition, raw)


def _row_keys(r: UpsertRow) -> list[Key]:
    keys = [("external", v) for _s, v in r.external_ids]
    keys += [("email", e) for e in r.emails] + [("phone", p) for p in r.phones]
    return list(dict.fromkeys(keys))


def _in_chunks(values: list[Any]) -> Any:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


# one statement, compiled once, for every chunk of values (building one with 1,000 literal values each time
# cost as much as running it)
_OWNERS = select(Identity.value, Identity.customer_id).where(
    Identity.kind == bindparam("kind"), Identity.value.in_(bindparam("values", expanding=True))
)


def _lookup_identities(session: Session, keys: set[Key]) -> dict[Key, int]:
    found: dict[Key, int] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in keys:
        if kind in ("email", "phone", "external"):
            by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        for chunk in _in_chunks(sorted(values)):
            found.update(
                {(kind, v): cid for v, cid in session.execute(_OWNERS, {"kind": kind, "values": chunk})}
            )
    names = sorted(v for k, v in keys if k == "company_name")
    for chunk in _in_chunks(names):
        stmt = (
            select(Customer.name, _func.min(Customer.id))
            .where(Customer.kind == COMPANY, Customer.merged_into_id.is_(None), Customer.name.in_(chunk))
            .group_by(Customer.name)
        )
        found.update({("company_name", n): cid for n, cid in session.execute(stmt)})
    return found


def _survivors(session: Session, ids: set[int]) -> dict[int, tuple[int, str]]:
    """Kokyaku ID -> (the customer it now is, following merges, and its kind)."""
    out: dict[int, tuple[int, str]] = {}
    pending = {i: i for i in ids}
    for _hop in range(10):
        if not pending:
            break
        rows = {}
        for chunk in _in_chunks(sorted(set(pending.values()))):
            stmt = select(Customer.id, Customer.kind, Customer.merged_into_id).where(Customer.id.in_(chunk))
            rows.update({cid: (kind, into) for cid, kind, into in session.execute(stmt)})
        nxt = {}
        for asked, current in pending.items():
            if current not in rows:
                continue
            kind, into = rows[current]
            if into is None:
                out[asked] = (current, kind)
            else:
                nxt[asked] = into
        pending = nxt
    return out


def _states(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    """The current state of customers in the shape of the service's audit snapshot."""
    states: dict[int, dict[str, Any]] = {}
    table = Customer.__table__
    cols = [table.c.id, table.c.kind, table.c.custom, *(table.c[f] for f in SCALAR_FIELDS)]
    for chunk in _in_chunks(ids):
        for row in session.execute(select(*cols).where(table.c.id.in_(chunk))).mappings():
            state = {f: row[f] for f in ("kind", *SCALAR_FIELDS)}
            state["custom"] = dict(row["custom"] or {})
            states[row["id"]] = state
        idents = select(Identity.customer_id, Identity.kind, Identity.value, Identity.source).where(
            Identity.customer_id.in_(chunk)
        )
        for cid, kind, value, source in session.execute(idents.order_by(Identity.id)):
            if kind == "email":
                states[cid].setdefault("emails", []).append(value)
            elif kind == "phone":
                states[cid].setdefault("phones", []).append(value)
            elif kind == "external":
                states[cid].setdefault("external_ids", []).append(f"{source or ''}:{value}")
        tags = select(Interest.customer_id, Interest.tag).where(Interest.customer_id.in_(chunk))
        for cid, tag in session.execute(tags.order_by(Interest.tag)):
            states[cid].setdefault("interests", []).append(tag)
    return {cid: _pruned(s) for cid, s in states.items()}


def _pruned(state: dict[str, Any]) -> dict[str, Any]:
    """The state without None, [] and {} (asked in this order because nearly every value is truthy)."""
    return {k: v for k, v in state.items() if v or not (v is None or isinstance(v, list | dict))}


def _applied(state: dict[str, Any], r: UpsertRow) -> dict[str, Any]:
    new = dict(state)
    new.update(r.fields)
    for attr, values in (("emails", r.emails), ("phones", r.phones)):
        if values:
            current = list(new.get(attr, []))
            current += [v for v in values if v not in current]
            new[attr] = current
    if r.external_ids:
        current = list(new.get("external_ids", []))
        have = {x.split(":", 1)[1] for x in current}
        current += [f"{s}:{v}" for s, v in r.external_ids if v not in have]
        new["external_ids"] = current
    if r.interests:
        new["interests"] = sorted(set(r.interests))
    if r.custom:
        new["custom"] = {**new.get("custom", {}), **r.custom}
    return _pruned(new)


def _new_state(r: UpsertRow, default_owner: dict[str, Any]) -> dict[str, Any]:
    """_applied({"kind": r.kind, **default_owner}, r), built directly for a customer the row creates."""
    new = {"kind": r.kind, **default_owner, **r.fields}
    if r.emails:
        new["emails"] = list(r.emails)
    if r.phones:
        new["phones"] = list(r.phones)
    if r.external_ids:
        new["external_ids"] = [f"{s}:{v}" for s, v in r.external_ids]
    if r.interests:
        new["interests"] = sorted(set(r.interests))
    if r.custom:
        new["custom"] = dict(r.custom)
    return _pruned(new)


def upsert_customers(
    session: Session,
    *,
    actor: Actor,
    rows: list[UpsertRow],
    write: bool = True,
    known: _Callable[[set[Key]], dict[Key, int]] | None = None,
    audit_rows: bool = True,
) -> UpsertOutcome:
    """Create or update the customers of a batch of import rows; with write=False only check and count.

    `known` gives the keys earlier batches of a check-only run would have written. Rows that cannot be
    applied (an unknown Kokyaku ID, an identity owned by another customer, a missing name or required custom
    field on create) are reported in `errors` and skipped; the caller decides if that aborts the import."""
    out = UpsertOutcome()
    row_keys = [_row_keys(r) for r in rows]
    all_keys = {k for keys in row_keys for k in keys}
    all_keys |= {
        ("company_name", r.fields["name"]) for r in rows if r.kind == COMPANY and r.fields.get("name")
    }
    all_keys |= {("company_name", r.company_name) for r in rows if r.company_name}
    owner: dict[Key, int] = known(all_keys) if known else {}
    owner.update(_lookup_identities(session, all_keys - set(owner)))
    survivors = _survivors(session, {r.customer_id for r in rows if r.customer_id})
    required = {d.key for d in custom_field_defs_for(session, rows) if d.required}
    # owners were matched to users when the file was read; one may have been deleted since (and on SQLite
    # the import writes without foreign-key checks: imports.service._bulk_connection)
    owners = {r.fields["owner_id"] for r in rows if r.fields.get("owner_id")}
    if owners:
        owners -= set(session.scalars(select(User.id).where(User.id.in_(sorted(owners)))))
    company_of_row: dict[int, int] = {}
    plan: list[tuple[UpsertRow, int]] = []
    creator: dict[int, int] = {}  # pending ref -> the row that creates it
    for r, keys in zip(rows, row_keys, strict=True):
        problems: list[tuple[str, str, dict[str, Any]]] = []
        target: int | None = None
        if r.customer_id is not None:
            found = survivors.get(r.customer_id)
            if found is None or found[1] != r.kind:
                problems.append(("kokyaku_id", "Customer {id} does not exist.", {"id": r.customer_id}))
            else:
                target = found[0]
        if target is None and not problems:
            target = next((owner[k] for k in keys if k in owner), None)
            if target is None and r.kind == COMPANY and r.fields.get("name"):
                target = owner.get(("company_name", r.fields["name"]))
        for k in keys:
            other = owner.get(k)
            if other is not None and target is not None and other != target:
                field = _ROW_FIELD[k[0]]
                if other < 0:
                    problems.append((field, "{value} is in row {other_row} too, for another customer.",
                                     {"value": k[1], "other_row": creator.get(other, -other)}))  # fmt: skip
                else:
                    problems.append((field, "{value} already belongs to another customer (#{other_id}).",
                                     {"value": k[1], "other_id": other}))  # fmt: skip
        if owners and r.fields.get("owner_id") in owners:
            problems.append(("owner", "No user has this email or name.", {}))
        if r.company_name:
            company = owner.get(("company_name", r.company_name))
            if company is None or company < 0:
                problems.append(("company", "Company {name} does not exist.", {"name": r.company_name}))
            else:
                company_of_row[r.row] = company
        if target is None and not problems:
            if not r.fields.get("name"):
                problems.append(("name", "This field is required.", {}))
            problems += [
                (f"custom.{k}", "This field is required.", {}) for k in sorted(required - set(r.custom))
            ]
        if problems:
            out.errors += [(r.row, f, m, p) for f, m, p in problems]
            continue
        if target is None:
            target = -r.row
            creator[target] = r.row
        for k in keys:
            owner[k] = target
            out.keys[k] = target
        if r.kind == COMPANY and r.fields.get("name"):
            company_key = ("company_name", r.fields["name"])
            owner.setdefault(company_key, target)
            out.keys[company_key] = target
        plan.append((r, target))
    before = _states(session, sorted({t for _r, t in plan if t > 0}))
    states: dict[int, dict[str, Any]] = dict(before)
    default_owner = {"owner_id": actor.user_id} if actor.user_id is not None else {}
    for r, target in plan:
        if r.row in company_of_row:
            r.fields["company_id"] = company_of_row[r.row]
        if target in creator and target not in states:
            states[target] = _new_state(r, default_owner)
            out.created += 1
            continue
        if target not in states:  # created by an earlier batch of a check-only run
            out.updated += 1
            continue
        new = _applied(states[target], r)
        if new == states[target]:
            out.unchanged += 1
        else:
            out.updated += 1
            states[target] = new
    if write:
        _write(session, actor, before, states, audit_rows)
    return out


def custom_field_defs_for(session: Session, rows: list[UpsertRow]) -> list[CustomFieldDef]:
    kinds = {r.kind for r in rows}
    if not kinds:
        return []
    return list(session.scalars(select(CustomFieldDef).where(CustomFieldDef.applies_to.in_(kinds))))


@_lru_cache(maxsize=200_000)
def _grams_of(text: str | None) -> frozenset[str]:
    # names repeat (佐藤, やまだ たろう): the search key and its grams are worth keeping
    return frozenset(ngrams(search_key(text)))


_search_text = _lru_cache(maxsize=200_000)(search_text_of)


@_lru_cache(maxsize=200_000)
def _grams_of_pair(name: str | None, kana: str | None) -> frozenset[str]:
    # the same frozenset for the same pair: the search index keeps the text it makes of it
    return _grams_of(name) | _grams_of(kana)


def _state_grams(state: dict[str, Any]) -> frozenset[str]:
    get = state.get
    return _grams_of_pair(get("name"), get("name_kana"))


def _identity_rows(cid: int, state: dict[str, Any], old: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(customer_id, kind, value, source) of the identities `state` has and `old` had not."""
    rows = []
    for attr, kind in (("emails", "email"), ("phones", "phone")):
        values = state.get(attr)
        if values:
            have = old.get(attr, ())
            rows += [(cid, kind, v, None) for v in values if v not in have]
    items = state.get("external_ids")
    if items:
        have = old.get("external_ids", ())
        for item in items:
            if item not in have:
                source, value = item.split(":", 1)
                rows.append((cid, "external", value, source or None))
    return rows


_COLUMN_NAMES = [*SCALAR_FIELDS, "kind", "custom", "email", "phone", "search_text"]
_NEW_ROW_TAIL = ("kind", "custom", "email", "phone", "search_text", "created_at", "updated_at")


def _column_values(state: dict[str, Any]) -> tuple[Any, ...]:
    """The customers row of a state, in the order of _COLUMN_NAMES."""
    get = state.get
    return (
        *[get(f) for f in SCALAR_FIELDS], state["kind"], get("custom", {}), (get("emails") or [None])[0],
        (get("phones") or [None])[0], _search_text(get("name"), get("name_kana")),
    )  # fmt: skip


def _columns(state: dict[str, Any]) -> dict[str, Any]:
    return dict(zip(_COLUMN_NAMES, _column_values(state), strict=True))


_quote = _json_encoder.encode_basestring_ascii  # the C function json.dumps itself uses


def _json_value(value: Any) -> str:
    """json.dumps(value), with shortcuts for the common shapes."""
    kind = type(value)
    if kind is dict and not value:
        return "{}"
    if kind is str:
        return _quote(value)  # type: ignore[no-any-return]
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is list and all(type(v) is str for v in value):
        return "[" + ", ".join(map(_quote, value)) + "]"
    return _json.dumps(value)


def _created_json(state: dict[str, Any]) -> str:
    """The JSON text of audit.diff({}, state) (what json.dumps writes, byte for byte), built directly: a
    third of json.dumps's time for this flat shape."""
    parts = []
    for k in sorted(state):
        v = state[k]
        head = _CREATED_HEAD.get(k) or _CREATED_HEAD.setdefault(k, f"{_quote(k)}: [null, ")
        parts.append(f"{head}{_quote(v.isoformat()) if type(v) is date else _json_value(v)}]")
    return "{" + ", ".join(parts) + "}"


_CREATED_HEAD: dict[str, str] = {}  # field -> '"field": [null, ' (the fields of a customer: a few dozen)


def _write(
    session: Session, actor: Actor, before: dict[int, dict[str, Any]], states: dict[int, dict[str, Any]],
    audit_rows: bool,
) -> None:  # fmt: skip
    now = utcnow()
    table = CUSTOMERS
    new_refs = [ref for ref in states if ref < 0]
    new_refs.sort(reverse=True)  # -2, -5, ... : file order
    ids = dict(zip(new_refs, _reserve(session, table, len(new_refs)), strict=True))
    if new_refs:
        # Only the columns some row of the batch sets (the others have no default: NULL either way): an
        # import file has a handful of the ~25 columns, and each costs binding and conversion per row.
        present: set[str] = set()
        for ref in new_refs:
            present.update(states[ref])
        scalars = [f for f in SCALAR_FIELDS if f in present]
        rows = []
        for ref in new_refs:
            state = states[ref]
            get = state.get
            rows.append((
                ids[ref], *[get(f) for f in scalars], state["kind"], _json_value(get("custom", {})),
                (get("emails") or [None])[0], (get("phones") or [None])[0],
                _search_text(get("name"), get("name_kana")), now, now,
            ))  # fmt: skip
        columns = ["id", *scalars, *_NEW_ROW_TAIL]
        insert_rows(session, table, rows, columns, ready=("custom",))
    changed = [cid for cid in before if states[cid] != before[cid]]
    identities: list[tuple[Any, ...]] = []
    interests: list[tuple[int, str]] = []
    grams: dict[int, frozenset[str]] = {}
    # (entity_type, entity_id, action, changes as JSON text)
    audits: list[tuple[str, int, str, str]] = []
    for ref, cid in ids.items():
        state = states[ref]
        identities += _identity_rows(cid, state, {})
        tags = state.get("interests")
        if tags:
            interests += [(cid, t) for t in tags]
        grams[cid] = _state_grams(state)
        if audit_rows:
            audits.append((ENTITY[state["kind"]], cid, "create", _created_json(state)))
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    regram: dict[int, frozenset[str]] = {}  # the old grams of customers whose name or kana changed
    retag: list[int] = []
    for cid in changed:
        old, new = before[cid], states[cid]
        old_cols, new_cols = _columns(old), _columns(new)
        values = {k: v for k, v in new_cols.items() if v != old_cols[k]}
        # the primary email and phone stay what they were unless there was none
        for primary in ("email", "phone"):
            if old_cols[primary]:
                values.pop(primary, None)
        values["updated_at"] = now
        updates.setdefault(tuple(sorted(values)), []).append({"b_id": cid, **values})
        identities += _identity_rows(cid, new, old)
        if old.get("interests") != new.get("interests"):
            retag.append(cid)
            interests += [(cid, t) for t in new.get("interests", ())]
        if "search_text" in values:
            regram[cid] = _state_grams(old)
            grams[cid] = _state_grams(new)
        if audit_rows:
            audits.append((ENTITY[new["kind"]], cid, "update", _json.dumps(_diff(old, new))))
    for names, params in updates.items():
        stmt = update(table).where(table.c.id == bindparam("b_id")).values({n: bindparam(n) for n in names})
        session.connection().execute(stmt, params)
    for chunk in _in_chunks(retag):
        session.execute(_delete(Interest).where(Interest.customer_id.in_(chunk)))
    search_index.remove(session, regram)
    # Rows in the order of each table's busiest index, so that the B-tree takes them page by page instead of
    # jumping about: identities by (kind, value) (the search index orders its own rows).
    identities.sort(key=_kind_value)
    insert_rows(session, Identity.__table__, [(*r, now) for r in identities],
                ["customer_id", "kind", "value", "source", "created_at"])  # fmt: skip
    insert_rows(session, Interest.__table__, interests, ["customer_id", "tag"])
    search_index.write(session, grams)
    if audits:
        head = (now, actor.user_id, actor.label)
        insert_rows(session, AuditEntry.__table__, [(*head, *a) for a in audits],
                    ["at", "actor_id", "actor_label", "entity_type", "entity_id", "action", "changes"],
                    ready=("changes",))  # fmt: skip


def _kind_value(row: tuple[Any, ...]) -> tuple[str, str]:
    return row[1], row[2]


def _reserve(session: Session, table: Any, n: int) -> list[int]:
    """n new primary keys for `table`, taken before the insert so that batched inserts need no RETURNING
    (SQLite answers RETURNING with file order only one row per statement)."""
    ids = reserve_ids(session, table, n)
    if ids is None:
        raise NotImplementedError("bulk customer writes need SQLite or PostgreSQL")
    return ids


def insert_rows(
    session: Session,
    table: Any,
    rows: list[dict[str, Any]] | list[tuple[Any, ...]],
    names: list[str] | None = None,
    *,
    ready: tuple[str, ...] = (),
) -> None:
    """Insert plain rows (dicts with the same keys, or tuples in the order of `names`) with
    kit.bulk.insert_tuples, their values converted by the columns' own bind processors as SQLAlchemy would
    (except in the columns named in `ready`, whose values are already in database form, such as JSON
    text)."""
    if not rows:
        return
    dialect = session.connection().dialect
    if names is None:
        names = list(rows[0])
        rows = [tuple(r[n] for n in names) for r in rows]  # type: ignore[call-overload]
    procs = [
        (i, p)
        for i, n in enumerate(names)
        if n not in ready and (p := table.c[n].type._cached_bind_processor(dialect))
    ]
    data: list[Any] = rows
    if procs:
        data = []
        last: dict[int, tuple[Any, Any]] = {}  # the batch's one timestamp is converted once, not per row
        for row in rows:
            values = list(row)
            for i, p in procs:
                v = values[i]
                seen = last.get(i)
                if seen is not None and seen[0] is v:
                    values[i] = seen[1]
                else:
                    values[i] = p(v)
                    if isinstance(v, datetime):
                        last[i] = (v, values[i])
            data.append(values)
    insert_tuples(session, table, names, data)


def lookup_keys(session: Session, keys: set[Key]) -> dict[Key, int]:
    """The customers that own these identities (and companies with these exact names)."""
    return _lookup_identities(session, keys)


def current_customers(session: Session, ids: set[int]) -> dict[int, tuple[int, str]]:
    """Customer id -> (the customer it is now, following merges, and its kind); missing ids are left out."""
    return _survivors(session, ids)
