"""The only place that changes customers, their identities, interests and custom fields."""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.auth.models import User
from kokyaku.customers import search_index
from kokyaku.customers.models import (
    COMPANY,
    PERSON,
    Customer,
    CustomFieldDef,
    Identity,
    Interest,
)
from kokyaku.customers.schemas import CustomerCreate, CustomerOut, CustomerUpdate, CustomFieldIn, ExternalId
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, NotFound, ValidationFailed
from kokyaku.kit.normalize import fold_width, ngrams, search_key
from kokyaku.kit.pagination import Page, decode_cursor, encode_cursor

ENTITY = {PERSON: "customer", COMPANY: "company"}
# Columns copied as they are from the validated input; identities, interests and custom are separate.
SCALAR_FIELDS = (
    "name",
    "name_kana",
    "birthday",
    "gender",
    "postal_code",
    "prefecture",
    "city",
    "street",
    "company_id",
    "job_title",
    "industry",
    "company_size",
    "website",
    "source",
    "channel",
    "owner_id",
    "locale",
    "note",
)


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    message = "Customer {id} does not exist."


class IdentityTaken(Conflict):
    code = "identity_taken"
    message = "{value} already belongs to another customer (#{other_id})."


class CustomerMerged(NotFound):
    code = "customer_merged"
    message = "Customer {id} was merged into customer {survivor_id}."


# ---------------------------------------------------------------- reading


def get_customer(session: Session, customer_id: int, *, kind: str | None = None) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None or (kind is not None and customer.kind != kind):
        raise CustomerNotFound(id=customer_id)
    if customer.merged_into_id is not None:
        raise CustomerMerged(id=customer_id, survivor_id=customer.merged_into_id)
    return customer


def to_out(session: Session, customer: Customer) -> CustomerOut:
    """The full API view of one customer: identities and interests included."""
    identities = session.scalars(
        select(Identity).where(Identity.customer_id == customer.id).order_by(Identity.id)
    ).all()
    tags = session.scalars(
        select(Interest.tag).where(Interest.customer_id == customer.id).order_by(Interest.tag)
    ).all()
    out = CustomerOut.model_validate(customer)
    out.emails = [i.value for i in identities if i.kind == "email"]
    out.phones = [i.value for i in identities if i.kind == "phone"]
    out.external_ids = [
        ExternalId(source=i.source or "", value=i.value) for i in identities if i.kind == "external"
    ]
    out.interests = list(tags)
    return out


@dataclass
class CustomerFilters:
    kind: str | None = None
    prefecture: str | None = None
    owner_id: int | None = None
    company_id: int | None = None
    gender: str | None = None
    tag: str | None = None
    q: str | None = None


def _filtered(stmt: Any, f: CustomerFilters) -> Any:
    # Customers merged into another stay as hidden rows (so a merge can be undone): never list them.
    stmt = stmt.where(Customer.merged_into_id.is_(None))
    if f.kind:
        stmt = stmt.where(Customer.kind == f.kind)
    if f.prefecture:
        stmt = stmt.where(Customer.prefecture == f.prefecture)
    if f.owner_id is not None:
        stmt = stmt.where(Customer.owner_id == f.owner_id)
    if f.company_id is not None:
        stmt = stmt.where(Customer.company_id == f.company_id)
    if f.gender:
        stmt = stmt.where(Customer.gender == f.gender)
    if f.tag:
        stmt = stmt.where(
            select(Interest.customer_id)
            .where(Interest.customer_id == Customer.id, Interest.tag == f.tag)
            .exists()
        )
    return stmt


def list_customers(
    session: Session, filters: CustomerFilters, *, cursor: str | None = None, limit: int = 50
) -> Page[Customer]:
    """Newest first, keyset-paginated on id; with `q`, a search over name, kana, email, phone and ids."""
    after = decode_cursor(cursor)
    before_id = int(after[0]) if after else None
    if filters.q and search_key(filters.q):
        ids = _search_ids(session, filters, before_id, limit + 1)
        rows = session.scalars(select(Customer).where(Customer.id.in_(ids))).all() if ids else []
        by_id = {c.id: c for c in rows}
        items = [by_id[i] for i in ids if i in by_id]
    else:
        stmt = _filtered(select(Customer), filters)
        if before_id is not None:
            stmt = stmt.where(Customer.id < before_id)
        items = list(session.scalars(stmt.order_by(Customer.id.desc()).limit(limit + 1)))
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_cursor([items[-1].id]) if more and items else None)


def _search_ids(session: Session, f: CustomerFilters, before_id: int | None, limit: int) -> list[int]:
    """Ids newest first from two sources, each narrowed by an index before the filters are applied:
    name and kana grams, and prefixes of emails, phones and external ids."""
    key = search_key(f.q)
    # A key of three or more characters is checked as a substring on the few rows its bigrams leave.
    substring = Customer.search_text.contains(key, autoescape=True) if len(key) > 2 else None
    found = set(_matching(session, f, lambda before, n: _gram_candidates(session, key, before, n),
                          before_id, limit, substring))  # fmt: skip
    for kind, prefix in _identity_prefixes(f.q or ""):
        found.update(
            _matching(
                session,
                f,
                partial(_identity_candidates, session, kind, prefix),
                before_id,
                limit,
                None,
            )  # fmt: skip
        )
    return sorted(found, reverse=True)[:limit]


def _matching(
    session: Session,
    f: CustomerFilters,
    candidates: Callable[[int | None, int], list[int]],
    before_id: int | None,
    limit: int,
    extra: Any,
) -> list[int]:
    """Pull candidate ids newest first in chunks and keep those that pass the filters."""
    kept: list[int] = []
    chunk = max(limit * 4, 100)
    while len(kept) < limit:
        ids = candidates(before_id, chunk)
        if not ids:
            break
        stmt = _filtered(select(Customer.id).where(Customer.id.in_(ids)), f)
        if extra is not None:
            stmt = stmt.where(extra)
        passing = set(session.scalars(stmt))
        kept += [i for i in ids if i in passing]
        if len(ids) < chunk:
            break
        before_id = ids[-1]
    return kept[:limit]


def _gram_candidates(session: Session, key: str, before_id: int | None, n: int) -> list[int]:
    # One- and two-character keys are grams themselves. A longer key needs a few of its bigrams, spread
    # over it; the substring check on search_text then drops the rows that have them elsewhere.
    grams = [key] if len(key) <= 2 else _spread([key[i : i + 2] for i in range(len(key) - 1)], 4)
    return search_index.candidates(session, grams, before_id, n)


def _spread(items: list[str], count: int) -> list[str]:
    """Up to `count` items evenly spread from first to last."""
    if len(items) <= count:
        return items
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def _identity_candidates(
    session: Session, kind: str, prefix: str, before_id: int | None, n: int
) -> list[int]:
    stmt = select(Identity.customer_id).where(
        Identity.kind == kind, Identity.value >= prefix, Identity.value < prefix + "\uffff"
    )
    if before_id is not None:
        stmt = stmt.where(Identity.customer_id < before_id)
    return list(session.scalars(stmt.order_by(Identity.customer_id.desc()).limit(n)))


def _identity_prefixes(q: str) -> list[tuple[str, str]]:
    text = fold_width(q).strip().lower()
    if len(text) < 3:
        return []
    prefixes = [("email", text), ("external", fold_width(q).strip())]
    digits = "".join(ch for ch in text if ch.isdigit())
    if digits and len(digits) >= 3 and all(ch.isdigit() or ch in "-+ ()" for ch in text):
        prefixes.append(("phone", "+81" + digits[1:] if digits.startswith("0") else "+" + digits))
    return prefixes


# ---------------------------------------------------------------- custom fields


def custom_field_defs(session: Session, applies_to: str | None = None) -> list[CustomFieldDef]:
    stmt = select(CustomFieldDef).order_by(CustomFieldDef.id)
    if applies_to:
        stmt = stmt.where(CustomFieldDef.applies_to == applies_to)
    return list(session.scalars(stmt))


def _validate_custom(
    session: Session, kind: str, values: dict[str, Any], *, partial: bool
) -> tuple[dict[str, Any], list[tuple[str, str, dict[str, Any]]]]:
    defs = {d.key: d for d in custom_field_defs(session, kind)}
    problems: list[tuple[str, str, dict[str, Any]]] = []
    clean: dict[str, Any] = {}
    for key, raw in values.items():
        field = f"custom.{key}"
        d = defs.get(key)
        if d is None:
            problems.append((field, "Unknown custom field.", {}))
            continue
        if raw is None or raw == "":
            clean[key] = None
            continue
        try:
            clean[key] = _coerce_custom(d, raw)
        except ValueError as exc:
            problems.append((field, str(exc), {}))
    if not partial:
        for key, d in defs.items():
            if d.required and clean.get(key) is None:
                problems.append((f"custom.{key}", "This field is required.", {}))
    return clean, problems


def _coerce_custom(d: CustomFieldDef, raw: Any) -> Any:
    if d.type == "number":
        if isinstance(raw, bool):
            raise ValueError("Must be a number.")
        try:
            number = float(fold_width(str(raw)).replace(",", ""))
        except ValueError as exc:
            raise ValueError("Must be a number.") from exc
        return int(number) if number.is_integer() else number
    if d.type == "date":
        try:
            return date.fromisoformat(fold_width(str(raw)).strip()).isoformat()
        except ValueError as exc:
            raise ValueError("Must be a date (YYYY-MM-DD).") from exc
    text = fold_width(str(raw)).strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError("Control characters are not allowed.")
    if len(text) > 500:
        raise ValueError("At most 500 characters.")
    if d.type == "choice" and text not in d.choices:
        raise ValueError("Must be one of the listed choices.")
    return text


def create_custom_field(session: Session, *, actor: Actor, data: CustomFieldIn) -> CustomFieldDef:
    if session.scalar(select(CustomFieldDef.id).where(CustomFieldDef.key == data.key)):
        raise Conflict("A custom field with this key already exists.", field="key")
    if data.type == "choice" and not data.choices:
        raise ValidationFailed([("choices", "A choice field needs at least one choice.", {})])
    d = CustomFieldDef(**data.model_dump())
    session.add(d)
    session.flush()
    audit.record(
        session,
        actor=actor,
        entity_type="custom_field",
        entity_id=d.id,
        action="create",
        changes=audit.diff({}, data.model_dump()),
    )
    return d


def delete_custom_field(session: Session, *, actor: Actor, field_id: int) -> None:
    d = session.get(CustomFieldDef, field_id)
    if d is None:
        raise NotFound("Custom field {id} does not exist.", id=field_id)
    audit.record(
        session,
        actor=actor,
        entity_type="custom_field",
        entity_id=d.id,
        action="delete",
        changes={"key": [d.key, None]},
    )
    session.delete(d)


# ---------------------------------------------------------------- writing


def _snapshot(session: Session, customer: Customer) -> dict[str, Any]:
    out = to_out(session, customer)
    data = out.model_dump(exclude={"id", "created_at", "updated_at", "email", "phone"})
    data["external_ids"] = [f"{e['source']}:{e['value']}" for e in data["external_ids"]]
    return {k: v for k, v in data.items() if v not in (None, [], {})}


def _check_references(session: Session, data: CustomerCreate | CustomerUpdate, kind: str) -> None:
    problems: list[tuple[str, str, dict[str, Any]]] = []
    fields = data.model_fields_set
    if "company_id" in fields and data.company_id is not None:
        company = session.get(Customer, data.company_id)
        if company is None or company.kind != COMPANY:
            problems.append(("company_id", "Company {id} does not exist.", {"id": data.company_id}))
        elif kind == COMPANY:
            problems.append(("company_id", "A company cannot belong to another company.", {}))
    if "owner_id" in fields and data.owner_id is not None and session.get(User, data.owner_id) is None:
        problems.append(("owner_id", "User {id} does not exist.", {"id": data.owner_id}))
    if problems:
        raise ValidationFailed(problems)


def _set_identities(session: Session, customer: Customer, kind: str, values: Sequence[Any]) -> None:
    wanted: list[tuple[str, str | None]] = [
        (v.value, v.source) if isinstance(v, ExternalId) else (v, None) for v in values
    ]
    for index, (value, _src) in enumerate(wanted):
        owner = session.scalar(
            select(Identity.customer_id).where(Identity.kind == kind, Identity.value == value)
        )
        if owner is not None and owner != customer.id:
            field = {"email": "emails", "phone": "phones", "external": "external_ids"}[kind]
            raise IdentityTaken(field=f"{field}.{index}", value=value, other_id=owner)
    existing = {
        i.value: i
        for i in session.scalars(
            select(Identity).where(Identity.customer_id == customer.id, Identity.kind == kind)
        )
    }
    keep = {v for v, _ in wanted}
    for value, identity in existing.items():
        if value not in keep:
            session.delete(identity)
    for value, src in wanted:
        if value not in existing:
            session.add(Identity(customer_id=customer.id, kind=kind, value=value, source=src))
    if kind == "email":
        customer.email = wanted[0][0] if wanted else None
    elif kind == "phone":
        customer.phone = wanted[0][0] if wanted else None


def _set_interests(session: Session, customer: Customer, tags: Iterable[str]) -> None:
    session.execute(delete(Interest).where(Interest.customer_id == customer.id))
    for tag in dict.fromkeys(t for t in tags if t):
        session.add(Interest(customer_id=customer.id, tag=tag))


def _reindex(session: Session, customer: Customer) -> None:
    old = search_index.grams_of_search_text(customer.search_text)
    customer.search_text = search_text_of(customer.name, customer.name_kana)
    grams = ngrams(search_key(customer.name)) | ngrams(search_key(customer.name_kana))
    search_index.replace(session, {customer.id: old}, {customer.id: grams})


def search_text_of(name: str | None, kana: str | None) -> str:
    # A separator that no query contains keeps a match from spanning name and kana.
    return f"{search_key(name)}\u0001{search_key(kana)}"


def _apply(
    session: Session, customer: Customer, data: CustomerCreate | CustomerUpdate, *, partial: bool
) -> None:
    fields = data.model_fields_set if partial else set(type(data).model_fields)
    problems: list[tuple[str, str, dict[str, Any]]] = []
    if "custom" in fields and data.custom is not None:
        clean, problems = _validate_custom(session, customer.kind, data.custom, partial=partial)
        merged = {**(customer.custom or {}), **clean} if partial else clean
        customer.custom = {k: v for k, v in merged.items() if v is not None}
    elif not partial:
        _clean, problems = _validate_custom(session, customer.kind, {}, partial=False)
    if problems:
        raise ValidationFailed(problems)
    for name in SCALAR_FIELDS:
        if name in fields:
            setattr(customer, name, getattr(data, name))
    session.flush()
    for kind, attr in (("email", "emails"), ("phone", "phones"), ("external", "external_ids")):
        if attr in fields and getattr(data, attr) is not None:
            _set_identities(session, customer, kind, getattr(data, attr))
    if "interests" in fields and data.interests is not None:
        _set_interests(session, customer, data.interests)
    if fields & {"name", "name_kana"}:
        _reindex(session, customer)


def create_customer(session: Session, *, actor: Actor, data: CustomerCreate) -> Customer:
    """Create a person or company with identities, interests and custom fields; audited."""
    _check_references(session, data, data.kind)
    customer = Customer(kind=data.kind, name=data.name, custom={})
    if data.owner_id is None and actor.user_id is not None:
        # The person who creates a customer owns it until someone assigns another owner.
        data = data.model_copy(update={"owner_id": actor.user_id})
    session.add(customer)
    _apply(session, customer, data, partial=False)
    _flush_identities(session)
    audit.record(
        session,
        actor=actor,
        entity_type=ENTITY[customer.kind],
        entity_id=customer.id,
        action="create",
        changes=audit.diff({}, _snapshot(session, customer)),
    )
    return customer


def update_customer(
    session: Session, *, actor: Actor, customer_id: int, data: CustomerUpdate, kind: str | None = None
) -> Customer:
    """Change the fields present in `data`; records old -> new per field."""
    customer = get_customer(session, customer_id, kind=kind)
    if "name" in data.model_fields_set and not data.name:
        raise ValidationFailed([("name", "This field is required.", {})])
    _check_references(session, data, customer.kind)
    before = _snapshot(session, customer)
    _apply(session, customer, data, partial=True)
    _flush_identities(session)
    changes = audit.diff(before, _snapshot(session, customer))
    if changes:
        customer.updated_at = utcnow()
        audit.record(
            session,
            actor=actor,
            entity_type=ENTITY[customer.kind],
            entity_id=customer.id,
            action="update",
            changes=changes,
        )
    return customer


def delete_customer(session: Session, *, actor: Actor, customer_id: int, kind: str | None = None) -> None:
    customer = get_customer(session, customer_id, kind=kind)
    before = _snapshot(session, customer)
    audit.record(
        session,
        actor=actor,
        entity_type=ENTITY[customer.kind],
        entity_id=customer.id,
        action="delete",
        changes=audit.diff(before, {}),
    )
    _delete_derived_rows(session, customer.id)
    session.delete(customer)
    session.flush()


def _delete_derived_rows(session: Session, customer_id: int) -> None:
    """Delete the rows of the customer, and of the customers merged into it (the database deletes them with
    it), from the tables whose customer_id has no foreign key to cascade (marked DERIVED_FROM_CUSTOMER), and
    from the search index, which removes its rows its own way (by their whole key, or FTS5 rowid)."""
    merged = select(Customer.id).where(Customer.id == customer_id).cte("merged", recursive=True)
    merged = merged.union_all(select(Customer.id).where(Customer.merged_into_id == merged.c.id))
    ids = list(session.scalars(select(merged.c.id)))
    for table in Customer.metadata.sorted_tables:
        for column in table.columns:
            if column.info.get("derived_from") == "customers.id" and "removed_by" not in column.info:
                session.execute(delete(table).where(column.in_(ids)))
    search_index.delete_customers(session, ids)


def _flush_identities(session: Session) -> None:
    # Two requests may race for the same identity; the unique index decides and we say so clearly.
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("An email, phone or external id is already used by another customer.") from exc


def contacts_of(session: Session, company_id: int, limit: int = 200) -> list[Customer]:
    stmt = select(Customer).where(Customer.company_id == company_id, Customer.merged_into_id.is_(None))
    stmt = stmt.order_by(Customer.name_kana, Customer.id)
    return list(session.scalars(stmt.limit(limit)))


def count_customers(session: Session, kind: str | None = None) -> int:
    stmt = select(func.count()).select_from(Customer).where(Customer.merged_into_id.is_(None))
    if kind:
        stmt = stmt.where(Customer.kind == kind)
    return int(session.scalar(stmt) or 0)
