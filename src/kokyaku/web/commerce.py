"""Order and product pages: the order list and order page (status, returns, refunds), a new-order form on the
customer page, the product catalogue, and the Orders section of the customer page."""

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.commerce import service
from kokyaku.commerce.models import ORDER_CHANNELS, ORDER_STATUSES, Order
from kokyaku.commerce.schemas import OrderCreate, ProductIn, ProductUpdate, RefundIn, ReturnIn
from kokyaku.customers.models import Customer
from kokyaku.customers.service import get_customer
from kokyaku.deps import DB, actor, check_csrf, page_permission
from kokyaku.errors import KokyakuError, ValidationFailed
from kokyaku.i18n import gettext
from kokyaku.kit.ids import MAX_ID, PathId
from kokyaku.kit.normalize import fold_width
from kokyaku.web.customers import Section, register_section
from kokyaku.web.forms import FieldErrors, errors_of, form_dict, parse
from kokyaku.web.render import locale_of, render, validation_problems

router = APIRouter(include_in_schema=False)
Reader = Annotated[User, Depends(page_permission(Perm.ORDERS_READ))]
Writer = Annotated[User, Depends(page_permission(Perm.ORDERS_WRITE))]
ProductAdmin = Annotated[User, Depends(page_permission(Perm.PRODUCTS_MANAGE))]
Csrf = Depends(check_csrf)
PAGE_SIZE = 50
Problems = list[tuple[str, str, dict[str, Any]]]
FORM_LINES = 5

# English msgids; templates pass them through _().
STATUS_LABELS = {
    "placed": "Placed", "paid": "Paid", "shipped": "Shipped", "returned": "Returned", "refunded": "Refunded",
    "cancelled": "Cancelled",
}  # fmt: skip
CHANNEL_LABELS = {
    "store": "Store", "online": "Online shop", "phone": "By phone", "marketplace": "Marketplace",
    "sns": "SNS", "event": "Event", "other": "Other",
}  # fmt: skip
LABELS = {"status": STATUS_LABELS, "channel": CHANNEL_LABELS}


def _tz(request: Request, user: User) -> str:
    return user.timezone or request.app.state.settings.timezone


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _money_fields(raw: dict[str, Any], *names: str) -> dict[str, Any]:
    """People type 1,200 or ¥1,200 or full-width digits; the schema wants 1200."""
    for name in names:
        if isinstance(raw.get(name), str):
            raw[name] = fold_width(raw[name]).replace(",", "").replace("¥", "").replace("円", "").strip()
    return raw


def _validate(model: type[BaseModel], data: dict[str, Any]) -> tuple[Any, Problems]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, validation_problems(exc.errors())


def _problems(exc: KokyakuError) -> Problems:
    if isinstance(exc, ValidationFailed):
        return exc.problems
    return [(exc.field or "__all__", exc.message, exc.params)]


def _at_rows(problems: Problems, keys: list[str], default: str, locale: str) -> FieldErrors:
    """Messages by form field: a problem at lines.<i>.<name> goes to keys[i] (the form row of line i)."""
    errors: FieldErrors = {}
    for field, message, params in problems:
        parts = field.split(".")
        if parts[0] == "lines" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(keys):
            name = parts[2] if len(parts) > 2 else default
            field = f"{name}.{keys[int(parts[1])]}"
        errors.setdefault(field, gettext(locale, message, **params))
    return errors


# ---------------------------------------------------------------- orders list


def _filters(request: Request, user: User) -> tuple[service.OrderFilters, dict[str, Any]]:
    p = request.query_params
    tz = ZoneInfo(_tz(request, user))
    start, end = _day(p.get("date_from")), _day(p.get("date_to"))
    customer = p.get("customer_id") or ""
    f = service.OrderFilters(
        customer_id=int(customer) if customer.isdigit() and int(customer) <= MAX_ID else None,
        status=p.get("status") if p.get("status") in ORDER_STATUSES else None,
        channel=p.get("channel") if p.get("channel") in ORDER_CHANNELS else None,
        ordered_from=datetime.combine(start, time(0), tz) if start else None,
        ordered_to=datetime.combine(end + timedelta(days=1), time(0), tz) if end else None,
    )
    shown = {
        "status": f.status,
        "channel": f.channel,
        "customer_id": f.customer_id,
        "date_from": start,
        "date_to": end,
    }
    return f, shown


@router.get("/orders", response_class=HTMLResponse)
def order_list(request: Request, db: DB, user: Reader) -> Response:
    filters, shown = _filters(request, user)
    page = service.list_orders(db, filters, cursor=request.query_params.get("cursor"), limit=PAGE_SIZE)
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    ctx = {
        "page": page,
        "names": service.customer_names(db, [o.customer_id for o in page.items]),
        "more_query": urlencode([*query, ("cursor", page.next_cursor or "")]),
        "filters": shown,
        "statuses": ORDER_STATUSES,
        "channels": ORDER_CHANNELS,
        "labels": LABELS,
    }
    partial = request.headers.get("hx-request") == "true"
    return render(request, "commerce/_order_rows.html" if partial else "commerce/orders.html", ctx)


# ---------------------------------------------------------------- one order


def _order_page(
    request: Request, db: Session, order: Order, *, errors: FieldErrors | None = None,
    form: str | None = None, status: int = 200,
) -> Response:  # fmt: skip
    view = service.to_out(db, [order])[0]
    ctx = {
        "o": view,
        "customer": db.get(Customer, order.customer_id),
        "next_statuses": service.TRANSITIONS[order.status],
        "returnable": order.status in service.RETURNABLE
        and any(line.returned_quantity < line.quantity for line in view.lines),
        "refundable": order.status in service.REFUNDABLE and order.total > 0,
        "history": service.order_history(db, order.id),
        "labels": LABELS,
        "errors": errors or {},
        "form": form,
    }
    return render(request, "commerce/order.html", ctx, status)


@router.get("/orders/{order_id}", response_class=HTMLResponse)
def order_detail(request: Request, db: DB, _user: Reader, order_id: PathId) -> Response:
    return _order_page(request, db, service.get_order(db, order_id))


def _failed(request: Request, db: Session, order_id: int, exc: KokyakuError, form: str) -> Response:
    db.rollback()  # nothing half-written; the page comes back with the message at the form
    locale = locale_of(request)
    for key in ("old", "new", "status"):  # status names in the message, in the reader's language
        if key in exc.params:
            exc.params[key] = gettext(locale, STATUS_LABELS.get(exc.params[key], exc.params[key]))
    errors = errors_of(exc, locale)
    return _order_page(
        request, db, service.get_order(db, order_id), errors=errors, form=form, status=exc.status
    )


@router.post("/orders/{order_id}/status", dependencies=[Csrf])
async def order_status(request: Request, db: DB, user: Writer, order_id: PathId) -> Response:
    form = await request.form()
    status = str(form.get("status") or "")
    try:
        service.change_status(db, actor=actor(user), order_id=order_id, status=status)
    except KokyakuError as exc:
        return _failed(request, db, order_id, exc, "status")
    return RedirectResponse(f"/orders/{order_id}", status_code=303)


@router.post("/orders/{order_id}/returns", dependencies=[Csrf])
async def order_returns(request: Request, db: DB, user: Writer, order_id: PathId) -> Response:
    form = await request.form()
    lines, keys = [], []
    for key, value in form.multi_items():
        if key.startswith("qty.") and isinstance(value, str) and value.strip() not in ("", "0"):
            lines.append({"line_id": key.removeprefix("qty."), "quantity": value.strip()})
            keys.append(key.removeprefix("qty."))
    reason = form.get("reason")
    data, problems = _validate(ReturnIn, {"lines": lines, "reason": reason or None})
    status = 422
    if not problems:
        try:
            service.return_lines(
                db, actor=actor(user), order_id=order_id, lines=data.lines, reason=data.reason
            )
            return RedirectResponse(f"/orders/{order_id}", status_code=303)
        except KokyakuError as exc:
            db.rollback()
            problems, status = _problems(exc), exc.status
    # errors of line i show at its quantity input: quantity.<line id>
    errors = _at_rows(problems, keys, "quantity", locale_of(request))
    if "lines" in errors:  # no quantity given at all
        errors["__all__"] = errors.pop("lines")
    order = service.get_order(db, order_id)
    return _order_page(request, db, order, errors=errors, form="returns", status=status)


@router.post("/orders/{order_id}/refunds", dependencies=[Csrf])
async def order_refunds(request: Request, db: DB, user: Writer, order_id: PathId) -> Response:
    raw = _money_fields(form_dict(await request.form()), "amount")
    data, errors = parse(RefundIn, raw, locale_of(request))
    if errors:
        return _order_page(
            request, db, service.get_order(db, order_id), errors=errors, form="refunds", status=422
        )
    try:
        service.refund(db, actor=actor(user), order_id=order_id, amount=data.amount, reason=data.reason)
    except KokyakuError as exc:
        return _failed(request, db, order_id, exc, "refunds")
    return RedirectResponse(f"/orders/{order_id}", status_code=303)


# ---------------------------------------------------------------- new order (from the customer page)


def _new_order_page(
    request: Request, customer: Customer, values: dict[str, Any], errors: FieldErrors, status: int = 200
) -> Response:
    ctx = {
        "customer": customer,
        "values": values,
        "errors": errors,
        "channels": ORDER_CHANNELS,
        "labels": LABELS,
        "rows": range(FORM_LINES),
    }
    return render(request, "commerce/new_order.html", ctx, status)


@router.get("/customers/{customer_id}/orders/new", response_class=HTMLResponse)
def new_order_form(request: Request, db: DB, _user: Writer, customer_id: PathId) -> Response:
    return _new_order_page(request, get_customer(db, customer_id), {"channel": "store"}, {})


def _order_input(raw: dict[str, Any], tz: str) -> tuple[dict[str, Any], list[int]]:
    """The form's flat fields as OrderCreate input (lines from sku.N / quantity.N / unit_price.N; empty rows
    skipped), and the form row of each line so that errors land on the right row."""
    lines, rows = [], []
    for i in range(FORM_LINES):
        sku, qty, price = raw.get(f"sku.{i}"), raw.get(f"quantity.{i}"), raw.get(f"unit_price.{i}")
        if sku or price:
            line: dict[str, Any] = {"sku": sku, "quantity": qty or 1}
            if price:
                line["unit_price"] = _money_fields({"p": price}, "p")["p"]
                line["name"] = sku or "-"
            lines.append(line)
            rows.append(i)
    data: dict[str, Any] = {
        "customer_id": raw.get("customer_id"),
        "channel": raw.get("channel"),
        "lines": lines,
    }
    if raw.get("ordered_at"):
        try:
            data["ordered_at"] = datetime.fromisoformat(str(raw["ordered_at"])).replace(tzinfo=ZoneInfo(tz))
        except ValueError:
            data["ordered_at"] = raw["ordered_at"]  # pydantic names the field
    if raw.get("status"):
        data["status"] = raw["status"]
    return data, rows


@router.post("/customers/{customer_id}/orders/new", response_class=HTMLResponse, dependencies=[Csrf])
async def new_order(request: Request, db: DB, user: Writer, customer_id: PathId) -> Response:
    customer = get_customer(db, customer_id)
    raw = form_dict(await request.form())
    raw["customer_id"] = customer_id
    order_input, rows = _order_input(raw, _tz(request, user))
    data, problems = _validate(OrderCreate, order_input)
    if not problems:
        try:
            placed = service.place_order(db, actor=actor(user), data=data)
            return RedirectResponse(f"/orders/{placed.order.id}", status_code=303)
        except KokyakuError as exc:
            db.rollback()
            problems = _problems(exc)
    # a problem of line i shows at its field in form row rows[i]: sku.2, quantity.2, unit_price.2
    errors = _at_rows(problems, [str(r) for r in rows], "sku", locale_of(request))
    return _new_order_page(request, customer, raw, errors, 422)


# ---------------------------------------------------------------- products


def _products_page(
    request: Request, db: Session, values: dict[str, Any], errors: FieldErrors, status: int = 200
) -> Response:
    p = request.query_params
    category, q = p.get("category") or None, (p.get("q") or "").strip()[:100] or None
    page = service.list_products(db, category=category, q=q, cursor=p.get("cursor"), limit=PAGE_SIZE)
    query = [(k, v) for k, v in p.multi_items() if k != "cursor"]
    ctx = {
        "page": page,
        "categories": service.product_categories(db),
        "category": category,
        "q": q or "",
        "more_query": urlencode([*query, ("cursor", page.next_cursor or "")]),
        "values": values,
        "errors": errors,
    }
    if request.headers.get("hx-request") == "true" and status == 200:
        return render(request, "commerce/_product_rows.html", ctx)
    return render(request, "commerce/products.html", ctx, status)


@router.get("/products", response_class=HTMLResponse)
def product_list(request: Request, db: DB, _user: Reader) -> Response:
    return _products_page(request, db, {}, {})


@router.post("/products", response_class=HTMLResponse, dependencies=[Csrf])
async def create_product(request: Request, db: DB, user: ProductAdmin) -> Response:
    raw = _money_fields(form_dict(await request.form()), "price")
    data, errors = parse(ProductIn, raw, locale_of(request))
    if not errors:
        try:
            service.create_product(db, actor=actor(user), data=data)
            return RedirectResponse("/products", status_code=303)
        except KokyakuError as exc:
            db.rollback()
            errors = errors_of(exc, locale_of(request))
    return _products_page(request, db, raw, errors, 422)


@router.get("/products/{product_id}/edit", response_class=HTMLResponse)
def edit_product_form(request: Request, db: DB, _user: ProductAdmin, product_id: PathId) -> Response:
    product = service.get_product(db, product_id)
    values = {k: getattr(product, k) for k in ("sku", "name", "category", "price", "currency")}
    return render(request, "commerce/product_form.html", {"product": product, "values": values, "errors": {}})


@router.post("/products/{product_id}/edit", response_class=HTMLResponse, dependencies=[Csrf])
async def edit_product(request: Request, db: DB, user: ProductAdmin, product_id: PathId) -> Response:
    product = service.get_product(db, product_id)
    raw = _money_fields(form_dict(await request.form()), "price")
    data, errors = parse(ProductUpdate, raw, locale_of(request))
    if not errors:
        try:
            service.update_product(db, actor=actor(user), product_id=product_id, data=data)
            return RedirectResponse("/products", status_code=303)
        except KokyakuError as exc:
            db.rollback()
            errors = errors_of(exc, locale_of(request))
    ctx = {"product": product, "values": raw, "errors": errors}
    return render(request, "commerce/product_form.html", ctx, 422)


@router.post("/products/{product_id}/delete", dependencies=[Csrf])
def delete_product(db: DB, user: ProductAdmin, product_id: PathId) -> Response:
    service.delete_product(db, actor=actor(user), product_id=product_id)
    return RedirectResponse("/products", status_code=303)


# ---------------------------------------------------------------- customer page section


def _section(db: Session, customer: Customer) -> dict[str, Any]:
    return {
        "orders": service.latest_orders(db, customer.id, limit=10),
        "metrics": service.metrics_of(db, customer.id),
        "labels": LABELS,
    }


register_section(
    Section(key="orders", title="Orders", template="commerce/section.html", load=_section, order=40)
)
