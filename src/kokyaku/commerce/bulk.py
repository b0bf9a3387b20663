"""The bulk order path (imports, the demo): validate a batch, reserve ids, write orders and lines with the
database's fast path, add timeline entries, then rebuild the batch's customers' metrics set-based.

Writing millions of rows through SQLAlchemy's per-row parameter processing costs more than the database
does, so orders and lines go through kokyaku.kit.bulk: ids reserved up front (so lines can point at their
orders without a RETURNING round trip per row), then the driver's executemany with values already in
SQLAlchemy's storage format on SQLite, COPY on PostgreSQL, the portable core insert elsewhere.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from kokyaku.audit.models import AuditEntry
from kokyaku.audit.service import Actor
from kokyaku.commerce import metrics
from kokyaku.commerce.models import ORDER_CHANNELS, ORDER_STATUSES, VOID_STATUSES, Order, OrderLine, Product
from kokyaku.commerce.schemas import MAX_AMOUNT
from kokyaku.customers.models import Customer
from kokyaku.db import utcnow
from kokyaku.errors import ValidationFailed
from kokyaku.kit.bulk import db_formats, insert_tuples, reserve_ids
from kokyaku.kit.ids import MAX_ID
from kokyaku.timeline import entries

CHUNK = 5000  # orders per write
ORDERS: Table = Order.__table__  # type: ignore[assignment]
LINES: Table = OrderLine.__table__  # type: ignore[assignment]
Problems = list[tuple[str, str, dict[str, Any]]]
ORDER_COLUMNS = (
    "id", "customer_id", "external_id", "channel", "status", "ordered_at", "currency", "total", "refunded",
    "properties", "created_at",
)  # fmt: skip
LINE_COLUMNS = ("order_id", "product_id", "sku", "name", "quantity", "unit_price", "returned_quantity")


def settle(status: str, lines: list[dict[str, Any]], refunded: int) -> tuple[int, int]:
    """(total, refunded) of a new order in `status`: a returned order has every unit back, a refunded one
    has the rest of its value refunded. Marks the lines of a returned order as returned."""
    gross = sum(line["quantity"] * line["unit_price"] for line in lines)
    if status == "returned":
        for line in lines:
            line["returned_quantity"] = line["quantity"]
    back = sum(line.get("returned_quantity", 0) * line["unit_price"] for line in lines)
    if status == "refunded":
        refunded = max(gross - back, 0)
    return max(gross - back - refunded, 0), refunded


@dataclass
class BulkResult:
    order_ids: list[int]
    skipped_external_ids: list[str]


def _db_int(value: Any) -> bool:
    """An id the database driver can bind (anything else cannot name an existing row)."""
    return type(value) is int and 1 <= value <= MAX_ID


def _resolve(
    session: Session, orders: Sequence[Mapping[str, Any]]
) -> tuple[list[list[dict[str, Any]]], Problems]:
    """Check every order and resolve its lines like place_order does (product by id or SKU, name and price
    from the product unless given); returns the line rows per order and the problems of all rows."""
    problems: Problems = []
    customer_ids = sorted({o["customer_id"] for o in orders if _db_int(o.get("customer_id"))})
    known: dict[int, int | None] = {}  # id -> the customer it was merged into, if any
    for chunk in metrics.chunks(customer_ids):
        stmt = select(Customer.id, Customer.merged_into_id).where(Customer.id.in_(chunk))
        known.update(session.execute(stmt).tuples().all())
    all_lines = [line for o in orders for line in o.get("lines") or ()]
    ids = {line["product_id"] for line in all_lines if _db_int(line.get("product_id"))}
    skus = {line["sku"] for line in all_lines if line.get("product_id") is None and line.get("sku")}
    by_id = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))} if ids else {}
    by_sku = {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(skus)))} if skus else {}
    resolved: list[list[dict[str, Any]]] = []
    for i, o in enumerate(orders):
        at = f"orders.{i}"
        cid = o.get("customer_id")
        if cid not in known:
            problems.append((f"{at}.customer_id", "Customer {id} does not exist.", {"id": cid}))
        elif known[cid] is not None:
            merged = {"id": cid, "survivor_id": known[cid]}
            problems.append(
                (f"{at}.customer_id", "Customer {id} was merged into customer {survivor_id}.", merged)
            )
        if o.get("channel") not in ORDER_CHANNELS:
            problems.append((f"{at}.channel", "Not one of the allowed values.", {}))
        if o.get("status", "placed") not in ORDER_STATUSES:
            problems.append((f"{at}.status", "Not one of the allowed values.", {}))
        currency = o.get("currency", "JPY")
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            problems.append((f"{at}.currency", "A currency is a three-letter code such as JPY.", {}))
        when = o.get("ordered_at")
        if not isinstance(when, datetime) or when.tzinfo is None:
            problems.append((f"{at}.ordered_at", "Give the time with its time zone.", {}))
        refunded = o.get("refunded", 0)
        if not isinstance(refunded, int) or refunded < 0:
            problems.append((f"{at}.refunded", "Must be at least {ge}.", {"ge": 0}))
        lines = o.get("lines") or []
        if not lines:
            problems.append((f"{at}.lines", "An order needs at least one line.", {}))
        rows = []
        for j, line in enumerate(lines):
            product: Product | None = None
            pid = line.get("product_id")
            if pid is not None:
                product = by_id.get(pid)
                if product is None:
                    problems.append(
                        (f"{at}.lines.{j}.product_id", "Product {id} does not exist.", {"id": pid})
                    )
            elif line.get("sku"):
                product = by_sku.get(line["sku"])
                if product is None:
                    problems.append(
                        (f"{at}.lines.{j}.sku", "No product has SKU {sku}.", {"sku": line["sku"]})
                    )
            q, back, price = line.get("quantity", 1), line.get("returned_quantity", 0), line.get("unit_price")
            if price is None and product is not None:
                price = product.price
            name = line.get("name") or (product.name if product else None)
            # exact type checks: a bool is an int to isinstance, and this loop runs for millions of lines
            if not (
                type(q) is int and type(back) is int and type(price) is int and 0 <= back <= q and q >= 1
                and 0 <= price <= MAX_AMOUNT and name
            ):  # fmt: skip
                problems += _line_problems(f"{at}.lines.{j}", q, back, price, name)
            rows.append({
                "product_id": product.id if product else None,
                "sku": product.sku if product else line.get("sku"),
                "name": name, "quantity": q, "unit_price": price, "returned_quantity": back,
            })  # fmt: skip
        resolved.append(rows)
    return resolved, problems


def _line_problems(where: str, q: Any, back: Any, price: Any, name: Any) -> Problems:
    problems: Problems = []
    if type(q) is not int or q < 1:
        problems.append((f"{where}.quantity", "Must be at least {ge}.", {"ge": 1}))
    elif type(back) is not int or not 0 <= back <= q:
        problems.append((f"{where}.returned_quantity", "Between 0 and {max}.", {"max": q}))
    if type(price) is not int or not 0 <= price <= MAX_AMOUNT:
        problems.append((f"{where}.unit_price", "Must be at least {ge}.", {"ge": 0}))
    if not name:
        problems.append((f"{where}.name", "This field is required.", {}))
    return problems


def bulk_insert_orders(
    session: Session, orders: Sequence[Mapping[str, Any]], *, actor: Actor | None, timeline: bool = True
) -> BulkResult:
    """Insert many orders with batched writes, then one set-based metrics recompute for their customers.

    Each order: customer_id, channel, ordered_at (aware), lines [{product_id?, sku?, name?, quantity,
    unit_price?, returned_quantity?}], and optionally status, currency, external_id, refunded, properties.
    Orders whose external_id exists already (or repeats within the call) are skipped, so a re-import changes
    nothing. Bad rows raise ValidationFailed naming every bad field (orders.<i>.<field>); nothing is written.
    With an actor, each order gets an audit row (action "import"); the demo passes None."""
    resolved, problems = _resolve(session, orders)
    if problems:
        raise ValidationFailed(problems)
    external = [o["external_id"] for o in orders if o.get("external_id")]
    seen: set[str] = set()
    for chunk in metrics.chunks(external):  # type: ignore[arg-type]
        seen.update(session.scalars(select(Order.external_id).where(Order.external_id.in_(chunk))))  # type: ignore[arg-type]
    skipped: list[str] = []
    now = utcnow()
    order_rows: list[dict[str, Any]] = []
    line_sets: list[list[dict[str, Any]]] = []
    for o, lines in zip(orders, resolved, strict=True):
        ext = o.get("external_id") or None
        if ext is not None:
            if ext in seen:
                skipped.append(ext)
                continue
            seen.add(ext)
        status = o.get("status", "placed")
        total, refunded = settle(status, lines, int(o.get("refunded", 0)))
        order_rows.append({
            "customer_id": o["customer_id"], "external_id": ext, "channel": o["channel"], "status": status,
            "ordered_at": o["ordered_at"].astimezone(UTC), "currency": o.get("currency", "JPY"),
            "total": total, "refunded": refunded, "properties": o.get("properties") or {}, "created_at": now,
        })  # fmt: skip
        line_sets.append(lines)
    ids: list[int] = []
    for start in range(0, len(order_rows), CHUNK):
        ids += _insert_chunk(session, order_rows[start : start + CHUNK], line_sets[start : start + CHUNK])
    if actor is not None and ids:
        # one audit row per imported order, through a batched core insert
        session.execute(insert(AuditEntry), [
            {"at": now, "actor_id": actor.user_id, "actor_label": actor.label, "entity_type": "order",
             "entity_id": oid, "action": "import", "changes": {"total": [None, row["total"]]}}
            for oid, row in zip(ids, order_rows, strict=True)
        ])  # fmt: skip
    if timeline and ids:
        entries.bulk_add(session, _timeline_rows(ids, order_rows))
    metrics.recompute_metrics(session, {row["customer_id"] for row in order_rows})
    return BulkResult(ids, skipped)


def _insert_chunk(
    session: Session, rows: list[dict[str, Any]], line_sets: list[list[dict[str, Any]]]
) -> list[int]:
    ids = reserve_ids(session, ORDERS, len(rows))
    if ids is None:  # no fast path: the database hands out ids one row at a time
        result = session.execute(insert(ORDERS).returning(ORDERS.c.id, sort_by_parameter_order=True), rows)
        ids = [int(i) for i in result.scalars()]
        flat = [
            {**line, "order_id": oid} for oid, lines in zip(ids, line_sets, strict=True) for line in lines
        ]
        session.execute(insert(LINES), flat)
        return ids
    when, as_json = db_formats(session)
    created = when(rows[0]["created_at"])
    order_rows = [
        (oid, r["customer_id"], r["external_id"], r["channel"], r["status"], when(r["ordered_at"]),
         r["currency"], r["total"], r["refunded"], as_json(r["properties"]), created)
        for oid, r in zip(ids, rows, strict=True)
    ]  # fmt: skip
    insert_tuples(session, ORDERS, ORDER_COLUMNS, order_rows)
    line_rows = [
        (oid, line["product_id"], line["sku"], line["name"], line["quantity"], line["unit_price"],
         line["returned_quantity"])
        for oid, lines in zip(ids, line_sets, strict=True) for line in lines
    ]  # fmt: skip
    insert_tuples(session, LINES, LINE_COLUMNS, line_rows)
    return ids


def _timeline_rows(ids: list[int], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for oid, row in zip(ids, rows, strict=True):
        props = {"order_id": oid, "total": row["total"], "currency": row["currency"]}
        base = {
            "customer_id": row["customer_id"],
            "at": row["ordered_at"],
            "ref_type": "order",
            "ref_id": oid,
        }
        out.append({**base, "kind": "order_placed", "channel": row["channel"], "properties": props})
        if row["status"] in VOID_STATUSES:
            # When it was cancelled or returned is not known to an import; the order's own time stands in.
            out.append({**base, "kind": "order_status_changed", "channel": None,
                        "properties": {**props, "status": row["status"]}})  # fmt: skip
    return out
