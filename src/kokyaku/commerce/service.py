"""Orders and their lines, and the one module other domains call for commerce (products.py, bulk.py and
metrics.py are re-exported here). Every order write keeps the customer's metrics current and writes an audit
row and a timeline entry in the same transaction.

Amounts: an order's `total` = value of its lines - value of returned units - `refunded` (money refunded
beyond returned goods), never below zero. Idempotency: an order whose `external_id` exists already is not
created again; `place_order` returns the existing order (`created=False`) if it belongs to the same
customer and raises `Conflict` on the field `external_id` otherwise.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.models import AuditEntry
from kokyaku.audit.service import Actor
from kokyaku.commerce import metrics
from kokyaku.commerce.bulk import BulkResult, bulk_insert_orders, settle
from kokyaku.commerce.metrics import check_metrics, metrics_of, recompute_metrics
from kokyaku.commerce.models import ORDER_STATUSES, Order, OrderLine, Product
from kokyaku.commerce.products import (
    ProductNotFound,
    create_product,
    delete_product,
    get_product,
    list_products,
    product_categories,
    update_product,
)
from kokyaku.commerce.schemas import (
    MAX_AMOUNT,
    OrderCreate,
    OrderLineOut,
    OrderOut,
    ReturnLineIn,
)
from kokyaku.customers.merge import (
    move_rows_many,
    register_merge_participant,
    register_merge_participant_batch,
)
from kokyaku.customers.models import Customer
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, NotFound, ValidationFailed
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor
from kokyaku.timeline import entries

# re-exported: other domains and the routes call commerce.service only
__all__ = [
    "BulkResult", "ProductNotFound", "bulk_insert_orders", "check_metrics", "create_product",
    "delete_product", "get_product", "list_products", "metrics_of", "product_categories",
    "recompute_metrics", "update_product",
]  # fmt: skip

# Which status may follow which. Returned and refunded orders can still be marked refunded (money sent back
# after the goods arrived); cancelled and refunded are final.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "placed": ("paid", "shipped", "cancelled"),
    "paid": ("shipped", "returned", "refunded", "cancelled"),
    "shipped": ("returned", "refunded"),
    "returned": ("refunded",),
    "refunded": (),
    "cancelled": (),
}
RETURNABLE = ("paid", "shipped")
REFUNDABLE = ("paid", "shipped")

Problems = list[tuple[str, str, dict[str, Any]]]


class OrderNotFound(NotFound):
    code = "order_not_found"
    message = "Order {id} does not exist."


class BadTransition(Conflict):
    code = "bad_transition"
    message = "An order cannot go from {old} to {new}."


class OrderState(Conflict):
    code = "order_state"
    message = "This is not possible for an order that is {status}."


# ---------------------------------------------------------------- reading orders


def get_order(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound(id=order_id)
    return order


def lines_of(session: Session, order_ids: Sequence[int]) -> dict[int, list[OrderLine]]:
    """The lines of several orders in one query, by order id."""
    out: dict[int, list[OrderLine]] = {i: [] for i in order_ids}
    if order_ids:
        stmt = select(OrderLine).where(OrderLine.order_id.in_(list(order_ids))).order_by(OrderLine.id)
        for line in session.scalars(stmt):
            out[line.order_id].append(line)
    return out


def to_out(session: Session, orders: Sequence[Order]) -> list[OrderOut]:
    """API views of orders with their lines (one query for all lines)."""
    lines = lines_of(session, [o.id for o in orders])
    result = []
    for order in orders:
        out = OrderOut.model_validate(order)
        out.lines = [OrderLineOut.model_validate(line) for line in lines[order.id]]
        result.append(out)
    return result


@dataclass
class OrderFilters:
    customer_id: int | None = None
    status: str | None = None
    channel: str | None = None
    ordered_from: datetime | None = None  # inclusive
    ordered_to: datetime | None = None  # exclusive


def list_orders(
    session: Session, filters: OrderFilters, *, cursor: str | None = None, limit: int = 50
) -> Page[Order]:
    """Newest first, keyset-paginated on (ordered_at, id); per customer it uses the (customer, time) index."""
    stmt = select(Order)
    if filters.customer_id is not None:
        stmt = stmt.where(Order.customer_id == filters.customer_id)
    if filters.status:
        stmt = stmt.where(Order.status == filters.status)
    if filters.channel:
        stmt = stmt.where(Order.channel == filters.channel)
    if filters.ordered_from:
        stmt = stmt.where(Order.ordered_at >= filters.ordered_from)
    if filters.ordered_to:
        stmt = stmt.where(Order.ordered_at < filters.ordered_to)
    after = decode_cursor(cursor)
    if after:
        try:
            at, last_id = datetime.fromisoformat(str(after[0])), int(after[1])
        except (ValueError, IndexError, TypeError) as exc:
            raise BadCursor(field="cursor") from exc
        if at.tzinfo is None:
            raise BadCursor(field="cursor")
        # `at <= x` gives the index a range; the OR breaks ties within one timestamp
        stmt = stmt.where(Order.ordered_at <= at, (Order.ordered_at < at) | (Order.id < last_id))
    stmt = stmt.order_by(Order.ordered_at.desc(), Order.id.desc()).limit(limit + 1)
    items = list(session.scalars(stmt))
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor([items[-1].ordered_at.isoformat(), items[-1].id]) if more and items else None
    return Page(items, next_cursor)


def order_history(session: Session, order_id: int, limit: int = 50) -> list[AuditEntry]:
    return audit.history(session, entity_type="order", entity_id=order_id, limit=limit)


# ---------------------------------------------------------------- placing orders


@dataclass
class Placed:
    order: Order
    created: bool


def _customer_problem(session: Session, customer_id: int) -> tuple[str, str, dict[str, Any]] | None:
    """Why an order cannot go to this customer: unknown, or merged into another (its orders live there)."""
    row = session.execute(select(Customer.merged_into_id).where(Customer.id == customer_id)).first()
    if row is None:
        return ("customer_id", "Customer {id} does not exist.", {"id": customer_id})
    if row[0] is not None:
        params = {"id": customer_id, "survivor_id": row[0]}
        return ("customer_id", "Customer {id} was merged into customer {survivor_id}.", params)
    return None


def _resolve_lines(session: Session, data: OrderCreate) -> tuple[list[dict[str, Any]], Problems]:
    ids = {line.product_id for line in data.lines if line.product_id is not None}
    skus = {line.sku for line in data.lines if line.sku is not None and line.product_id is None}
    by_id = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))} if ids else {}
    by_sku = {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(skus)))} if skus else {}
    rows: list[dict[str, Any]] = []
    problems: Problems = []
    for i, line in enumerate(data.lines):
        product: Product | None = None
        if line.product_id is not None:
            product = by_id.get(line.product_id)
            if product is None:
                problems.append(
                    (f"lines.{i}.product_id", "Product {id} does not exist.", {"id": line.product_id})
                )
                continue
            if line.sku is not None and line.sku != product.sku:
                problems.append(
                    (f"lines.{i}.sku", "Product {id} has SKU {sku}.", {"id": product.id, "sku": product.sku})
                )
                continue
        elif line.sku is not None:
            product = by_sku.get(line.sku)
            if product is None:
                problems.append((f"lines.{i}.sku", "No product has SKU {sku}.", {"sku": line.sku}))
                continue
        price = line.unit_price
        if price is None and product is not None:
            if product.currency != data.currency:
                problems.append((
                    f"lines.{i}.unit_price",
                    "Product {sku} is priced in {currency}; give a unit price in {order_currency}.",
                    {"sku": product.sku, "currency": product.currency, "order_currency": data.currency},
                ))  # fmt: skip
                continue
            price = product.price
        rows.append({
            "product_id": product.id if product else None,
            "sku": product.sku if product else line.sku,
            "name": line.name or (product.name if product else ""),
            "quantity": line.quantity,
            "unit_price": price,
            "returned_quantity": 0,
        })  # fmt: skip
    return rows, problems


def place_order(session: Session, *, actor: Actor, data: OrderCreate) -> Placed:
    """Create an order with its lines; its customer's metrics, an audit row and a timeline entry follow."""
    if data.external_id:
        existing = session.scalar(select(Order).where(Order.external_id == data.external_id))
        if existing is not None:
            if existing.customer_id != data.customer_id:
                raise Conflict(
                    "Order {external_id} exists already for another customer.",
                    field="external_id", external_id=data.external_id,
                )  # fmt: skip
            return Placed(existing, created=False)
    order = insert_order(session, actor=actor, data=data)
    if metrics.counts(order.status, order.currency):
        metrics.add_order(session, customer_id=order.customer_id, at=order.ordered_at, total=order.total)
    return Placed(order, created=True)


def insert_order(session: Session, *, actor: Actor, data: OrderCreate) -> Order:
    """Validate and write the order, its lines, audit row and timeline entry, without touching metrics.

    Only place_order (and the benchmark that measures what metrics maintenance costs) calls this."""
    customer_problem = _customer_problem(session, data.customer_id)
    problems: Problems = [customer_problem] if customer_problem else []
    lines, line_problems = _resolve_lines(session, data)
    problems += line_problems
    if problems:
        raise ValidationFailed(problems)
    if sum(line["quantity"] * line["unit_price"] for line in lines) > MAX_AMOUNT:
        raise ValidationFailed([("lines", "The order total is too large.", {})])
    total, refunded = settle(data.status, lines, 0)
    now = utcnow()
    order = Order(
        customer_id=data.customer_id, external_id=data.external_id, channel=data.channel, status=data.status,
        ordered_at=(data.ordered_at or now).astimezone(UTC), currency=data.currency, total=total,
        refunded=refunded, properties=data.properties, created_at=now,
    )  # fmt: skip
    session.add(order)
    try:
        session.flush()
    except IntegrityError as exc:  # the same external id sent twice at the same moment
        raise Conflict("This order exists already.", field="external_id") from exc
    session.execute(insert(OrderLine), [{**line, "order_id": order.id} for line in lines])
    audit.record(
        session, actor=actor, entity_type="order", entity_id=order.id, action="create",
        changes=audit.diff({}, {
            "customer_id": order.customer_id, "channel": order.channel, "status": order.status,
            "ordered_at": order.ordered_at, "total": order.total, "currency": order.currency,
            "external_id": order.external_id, "lines": len(lines),
        }),
    )  # fmt: skip
    entries.order_placed(
        session, customer_id=order.customer_id, order_id=order.id, at=order.ordered_at, channel=order.channel,
        total=order.total, currency=order.currency,
    )  # fmt: skip
    return order


# ---------------------------------------------------------------- changing orders


def _after_change(session: Session, order: Order, old_status: str, old_total: int) -> None:
    """Bring the customer's metrics in line with one changed order."""
    was = metrics.counts(old_status, order.currency)
    now = metrics.counts(order.status, order.currency)
    if was and now:
        metrics.change_spend(session, customer_id=order.customer_id, delta=order.total - old_total)
    elif was != now:
        # The order left (or joined) the counted set: first/last purchase may move, so re-aggregate this one
        # customer (a few rows through the customer index).
        recompute_metrics(session, [order.customer_id])


def _locked_order(session: Session, order_id: int) -> Order:
    # FOR UPDATE on PostgreSQL so that two clerks refunding at once cannot both pass the amount check;
    # SQLite writers are serialised by BEGIN IMMEDIATE already.
    order = session.scalar(select(Order).where(Order.id == order_id).with_for_update())
    if order is None:
        raise OrderNotFound(id=order_id)
    return order


def change_status(session: Session, *, actor: Actor, order_id: int, status: str) -> Order:
    """Move an order along placed -> paid -> shipped, or to cancelled, returned or refunded."""
    if status not in ORDER_STATUSES:
        raise ValidationFailed([("status", "Not one of the allowed values.", {})])
    order = _locked_order(session, order_id)
    old_status, old_total, old_refunded = order.status, order.total, order.refunded
    if status == old_status:
        return order
    if status not in TRANSITIONS[old_status]:
        raise BadTransition(field="status", old=old_status, new=status)
    if status == "returned":
        session.execute(
            update(OrderLine)
            .where(OrderLine.order_id == order.id)
            .values(returned_quantity=OrderLine.quantity)
        )
        order.total = 0
    elif status == "refunded":
        order.refunded += order.total
        order.total = 0
    order.status = status
    session.flush()
    _after_change(session, order, old_status, old_total)
    audit.record(
        session, actor=actor, entity_type="order", entity_id=order.id, action="status_change",
        changes=audit.diff(
            {"status": old_status, "total": old_total, "refunded": old_refunded},
            {"status": order.status, "total": order.total, "refunded": order.refunded},
        ),
    )  # fmt: skip
    entries.order_status_changed(
        session, customer_id=order.customer_id, order_id=order.id, at=utcnow(), status=order.status,
        total=order.total, currency=order.currency,
    )  # fmt: skip
    return order


def return_lines(
    session: Session, *, actor: Actor, order_id: int, lines: Sequence[ReturnLineIn], reason: str | None = None
) -> Order:
    """Take back some units: the total drops by their value; with every unit back the order is returned."""
    order = _locked_order(session, order_id)
    if order.status not in RETURNABLE:
        raise OrderState("Only paid or shipped orders can take returns.", field="status", status=order.status)
    current = {line.id: line for line in lines_of(session, [order.id])[order.id]}
    problems: Problems = []
    wanted: dict[int, int] = {}
    for i, item in enumerate(lines):
        line = current.get(item.line_id)
        if line is None:
            problems.append(
                (f"lines.{i}.line_id", "Line {id} is not part of this order.", {"id": item.line_id})
            )
            continue
        left = line.quantity - line.returned_quantity - wanted.get(line.id, 0)
        if item.quantity > left:
            problems.append((f"lines.{i}.quantity", "At most {max} can be returned.", {"max": left}))
            continue
        wanted[line.id] = wanted.get(line.id, 0) + item.quantity
    if problems:
        raise ValidationFailed(problems)
    old_status, old_total = order.status, order.total
    # what came back, readable in the history: "TEA-001 ×1, 湯呑み ×2"
    changes: dict[str, Any] = {
        "returned": [None, ", ".join(f"{current[i].sku or current[i].name} ×{q}" for i, q in wanted.items())]
    }
    for line_id, qty in wanted.items():
        current[line_id].returned_quantity += qty
    gross = sum(line.quantity * line.unit_price for line in current.values())
    back = sum(line.returned_quantity * line.unit_price for line in current.values())
    order.total = max(gross - back - order.refunded, 0)
    if all(line.returned_quantity == line.quantity for line in current.values()):
        order.status = "returned"
    session.flush()
    _after_change(session, order, old_status, old_total)
    changes.update(
        audit.diff({"status": old_status, "total": old_total}, {"status": order.status, "total": order.total})
    )
    if reason:
        changes["reason"] = [None, reason]
    audit.record(
        session, actor=actor, entity_type="order", entity_id=order.id, action="return", changes=changes
    )
    entries.order_status_changed(
        session, customer_id=order.customer_id, order_id=order.id, at=utcnow(), status="returned",
        total=order.total, currency=order.currency,
    )  # fmt: skip
    return order


def refund(session: Session, *, actor: Actor, order_id: int, amount: int, reason: str | None = None) -> Order:
    """Pay back part or all of an order's total; at zero the order is refunded."""
    order = _locked_order(session, order_id)
    if order.status not in REFUNDABLE:
        raise OrderState("Only paid or shipped orders can be refunded.", field="status", status=order.status)
    if amount < 1 or amount > order.total:
        raise ValidationFailed([("amount", "Between 1 and {max}.", {"max": order.total})])
    old_status, old_total, old_refunded = order.status, order.total, order.refunded
    order.refunded += amount
    order.total -= amount
    if order.total == 0:
        order.status = "refunded"
    session.flush()
    _after_change(session, order, old_status, old_total)
    changes = audit.diff(
        {"status": old_status, "total": old_total, "refunded": old_refunded},
        {"status": order.status, "total": order.total, "refunded": order.refunded},
    )
    if reason:
        changes["reason"] = [None, reason]
    audit.record(
        session, actor=actor, entity_type="order", entity_id=order.id, action="refund", changes=changes
    )
    entries.order_status_changed(
        session, customer_id=order.customer_id, order_id=order.id, at=utcnow(), status="refunded",
        total=order.total, currency=order.currency,
    )  # fmt: skip
    return order


# ---------------------------------------------------------------- merge participant


def _move_orders(session: Session, from_id: int, to_id: int) -> dict[str, list[int]]:
    """Merge: the merged customer's orders go to the survivor; both customers' metrics are rebuilt."""
    ids = list(session.scalars(select(Order.id).where(Order.customer_id == from_id).order_by(Order.id)))
    if ids:
        session.execute(update(Order).where(Order.customer_id == from_id).values(customer_id=to_id))
    recompute_metrics(session, [from_id, to_id])
    return {"orders": ids}


def _move_orders_back(session: Session, from_id: int, to_id: int, moved: dict[str, list[int]]) -> None:
    """Undo of a merge: exactly the orders that moved go back to the customer they came from."""
    for chunk in metrics.chunks(moved.get("orders", [])):
        session.execute(
            update(Order).where(Order.id.in_(chunk), Order.customer_id == to_id).values(customer_id=from_id)
        )
    recompute_metrics(session, [from_id, to_id])


def _move_orders_many(session: Session, pairs: list[tuple[int, int]]) -> list[dict[str, list[int]]]:
    """_move_orders for many pairs at once (ingestion's stitching), as if run one pair after another."""
    moved = move_rows_many(session, (Order,), pairs)
    recompute_metrics(session, sorted({i for pair in pairs for i in pair}))
    return moved


register_merge_participant("commerce", _move_orders, _move_orders_back)
register_merge_participant_batch("commerce", _move_orders_many)


# ---------------------------------------------------------------- small reads for pages


def latest_orders(session: Session, customer_id: int, limit: int = 10) -> list[Order]:
    return list_orders(session, OrderFilters(customer_id=customer_id), limit=limit).items


def count_orders(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Order)) or 0)


def customer_names(session: Session, ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(
        session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(set(ids)))).tuples().all()
    )
