"""Orders, one row per order line: the lines of an order (same order id, on consecutive rows) are grouped,
checked with commerce.schemas.OrderCreate / OrderLineIn (the API's rules) and created through
commerce.service.bulk_insert_orders, which skips order ids that exist already: a re-import adds nothing."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.commerce import service as commerce
from kokyaku.commerce.models import Order, Product
from kokyaku.commerce.schemas import OrderCreate, OrderLineIn
from kokyaku.customers import bulk
from kokyaku.errors import ValidationFailed
from kokyaku.imports import values as v
from kokyaku.imports.fastnorm import fast_email, fast_phone
from kokyaku.imports.kinds import (
    NO_CUSTOMER,
    Cells,
    Importer,
    Key,
    KnownKeys,
    Outcome,
    Problem,
    first,
    pydantic_problems,
)
from kokyaku.imports.kinds.products import minor_digits
from kokyaku.kit.normalize import NormalizationError, normalize_external_id

CHANNELS = {
    "店舗": "store", "店頭": "store", "実店舗": "store", "store": "store", "shop": "store", "pos": "store",
    "オンライン": "online", "ec": "online", "ネット": "online", "ネットショップ": "online", "通販": "online",
    "online": "online", "web": "online", "電話": "phone", "phone": "phone", "tel": "phone",
    "モール": "marketplace", "マーケットプレイス": "marketplace", "楽天": "marketplace",
    "amazon": "marketplace",
    "marketplace": "marketplace", "sns": "sns", "イベント": "event", "event": "event", "その他": "other",
    "other": "other",
}  # fmt: skip
STATUSES = {
    "注文済": "placed", "注文済み": "placed", "受付": "placed", "受注": "placed", "新規": "placed",
    "placed": "placed", "入金済": "paid", "入金済み": "paid", "支払済": "paid", "支払済み": "paid",
    "決済済": "paid", "paid": "paid", "発送済": "shipped", "発送済み": "shipped", "出荷済": "shipped",
    "出荷済み": "shipped", "shipped": "shipped", "返品": "returned", "返品済": "returned",
    "returned": "returned", "返金": "refunded", "返金済": "refunded", "refunded": "refunded",
    "キャンセル": "cancelled", "取消": "cancelled", "cancelled": "cancelled", "canceled": "cancelled",
}  # fmt: skip
_SPLIT_ORDER = "Order {id} is also in row {other_row}: put the lines of an order on consecutive rows."
_CUSTOMER_FIELDS = {"id": "customer_id", "external": "customer_external_id", "email": "customer_email",
                    "phone": "customer_phone"}  # fmt: skip


@dataclass
class LineRow:
    row: int
    order_id: str
    ordered_at: datetime
    customer: list[Key]  # ("id", "12"), ("external", ...), ("email", ...), ("phone", ...)
    channel: str | None
    status: str | None
    currency: str
    line: dict[str, Any] = field(default_factory=dict)


def _choice(table: dict[str, str], text: str) -> str | None:
    return table.get(text.strip().lower())


class OrderImporter(Importer):
    kind = "orders"
    grows = ("orders",)
    run_keys = True  # order ids already seen in this run, to catch an order split over distant rows

    def parse(self, row: int, cells: Cells) -> tuple[Any | None, list[Problem]]:
        problems: list[Problem] = []

        def bad(fld: str, message: str, **params: Any) -> None:
            problems.append((row, fld, message, params))

        order_id = first(cells, "order_id")
        if not order_id:
            bad("order_id", "This field is required.")
        elif len(order_id) > 100:
            bad("order_id", "At most {max_length} characters.", max_length=100)
        when = first(cells, "ordered_at")
        ordered_at = None
        if not when:
            bad("ordered_at", "This field is required.")
        else:
            try:
                ordered_at = v.parse_datetime(when, self.context.timezone)
            except ValueError as exc:
                bad("ordered_at", str(exc))
        customer = self._customer(cells, bad)
        channel = status = None
        if text := first(cells, "channel"):
            channel = _choice(CHANNELS, text)
            if channel is None:
                bad("channel", v.BAD_CHOICE)
        if text := first(cells, "status"):
            status = _choice(STATUSES, text)
            if status is None:
                bad("status", v.BAD_CHOICE)
        currency = (first(cells, "currency") or self.context.currency).upper()
        line: dict[str, Any] = {"sku": first(cells, "sku"), "name": first(cells, "product_name")}
        try:
            line["quantity"] = v.parse_int(first(cells, "quantity") or "1")
        except ValueError as exc:
            bad("quantity", str(exc))
        if text := first(cells, "unit_price"):
            try:
                line["unit_price"] = v.parse_amount(text, minor_digits(currency))
            except ValueError as exc:
                bad("unit_price", str(exc))
        if not problems:
            try:
                checked = OrderLineIn.model_validate({k: val for k, val in line.items() if val is not None})
            except ValidationError as exc:
                # a line without product and price is a whole-line error: it belongs at the SKU
                rename = {"name": "product_name", "body": "sku"}
                return None, pydantic_problems(row, exc, rename)
            line = checked.model_dump(exclude_none=True)
        if problems:
            return None, problems
        assert order_id is not None and ordered_at is not None
        return LineRow(row, order_id, ordered_at, customer, channel, status, currency, line), []

    def _customer(self, cells: Cells, bad: Any) -> list[Key]:
        keys: list[Key] = []
        for kind, fld in _CUSTOMER_FIELDS.items():
            text = first(cells, fld)
            if not text:
                continue
            try:
                if kind == "id":
                    keys.append(("id", str(v.parse_int(text))))
                elif kind == "external":
                    keys.append(("external", normalize_external_id(text)))
                elif kind == "email":
                    keys.append(("email", fast_email(text)))
                else:
                    keys.append(("phone", fast_phone(text)))
            except (ValueError, NormalizationError) as exc:
                bad(fld, str(exc))
        if not keys:
            bad("customer_email", "Give the customer's Kokyaku ID, customer ID, email or phone.")
        return keys

    def group(self, record: Any) -> str | None:
        return str(record.order_id)

    def apply(
        self, session: Session, *, actor: Actor, records: list[Any], write: bool, known: KnownKeys | None
    ) -> Outcome:
        out = Outcome()
        orders: dict[str, list[LineRow]] = {}
        for r in records:
            orders.setdefault(r.order_id, []).append(r)
        ids = sorted(orders)
        existing = set(session.scalars(select(Order.external_id).where(Order.external_id.in_(ids))))
        earlier = known({("order", i) for i in ids}) if known else {}
        customers = self._customers(session, records)
        skus = sorted({line.line["sku"] for line in records if line.line.get("sku")})
        products = {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(skus)))}
        ready: list[tuple[list[LineRow], dict[str, Any]]] = []
        for order_id, lines in orders.items():
            head = lines[0]
            if ("order", order_id) in earlier:
                params = {"id": order_id, "other_row": -earlier[("order", order_id)]}
                out.errors += [(r.row, "order_id", _SPLIT_ORDER, params) for r in lines]
                continue
            out.keys[("order", order_id)] = -head.row
            if order_id in existing:
                out.unchanged += len(lines)
                continue
            problems = self._order_problems(lines, customers, products)
            if problems:
                out.errors += problems
                continue
            data = {
                "customer_id": customers[head.customer[0]], "external_id": order_id,
                "ordered_at": head.ordered_at, "currency": head.currency,
                "lines": [self._line(r.line, products) for r in lines],
                **({"channel": head.channel} if head.channel else {}),
                **({"status": head.status} if head.status else {}),
            }  # fmt: skip
            try:
                checked = OrderCreate.model_validate(data)
            except ValidationError as exc:
                found = pydantic_problems(head.row, exc)
                out.errors += [(r.row, f, m, p) for _row, f, m, p in found for r in lines]
                continue
            ready.append((lines, {**checked.model_dump(), "lines": data["lines"]}))
        if write and ready:
            try:
                commerce.bulk_insert_orders(session, [o for _l, o in ready], actor=actor)
            except ValidationFailed as exc:  # only if the database changed since the checks above
                out.errors += [(lines[0].row, f, m, p) for lines, _o in ready for f, m, p in exc.problems[:1]]
                return out
        out.created += sum(len(lines) for lines, _o in ready)
        return out

    def _customers(self, session: Session, records: list[LineRow]) -> dict[Key, int]:
        keys = {k for r in records for k in r.customer if k[0] != "id"}
        found: dict[Key, int] = dict(bulk.lookup_keys(session, keys))
        ids = {int(k[1]) for r in records for k in r.customer if k[0] == "id"}
        for asked, (cid, _kind) in bulk.current_customers(session, ids).items():
            found[("id", str(asked))] = cid
        return found

    def _order_problems(
        self, lines: list[LineRow], customers: dict[Key, int], products: dict[str, Product]
    ) -> list[Problem]:
        head = lines[0]
        problems: list[Problem] = []
        key = head.customer[0]
        if key not in customers:
            problems.append((head.row, _CUSTOMER_FIELDS[key[0]], NO_CUSTOMER[key[0]], {"id": key[1]}))
        for r in lines:
            sku = r.line.get("sku")
            if sku and sku not in products and ("name" not in r.line or "unit_price" not in r.line):
                problems.append((r.row, "sku", "Product {sku} does not exist.", {"sku": sku}))
        if problems:
            bad_rows = {p[0] for p in problems}
            other = "Another line of order {id} is not valid."
            params = {"id": head.order_id}
            problems += [(r.row, "order_id", other, params) for r in lines if r.row not in bad_rows]
        return problems

    @staticmethod
    def _line(line: dict[str, Any], products: dict[str, Product]) -> dict[str, Any]:
        product = products.get(line.get("sku") or "")
        out = dict(line)
        if product is not None:
            out["product_id"] = product.id
            out.setdefault("name", product.name)
            out.setdefault("unit_price", product.price)
        return out
