"""REST routes for products, orders (with returns and refunds) and per-customer purchase metrics."""

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.commerce import service
from kokyaku.commerce.schemas import (
    Channel,
    MetricsOut,
    OrderCreate,
    OrderOut,
    OrderPage,
    ProductIn,
    ProductOut,
    ProductPage,
    ProductUpdate,
    RefundIn,
    ReturnIn,
    Status,
    StatusChange,
)
from kokyaku.customers import service as customers
from kokyaku.deps import DB, SettingsDep, actor, api_permission
from kokyaku.kit.ids import PathId, QueryId

router = APIRouter(prefix="/api/v1")
Reader = Annotated[User, Depends(api_permission(Perm.ORDERS_READ))]
Writer = Annotated[User, Depends(api_permission(Perm.ORDERS_WRITE))]
ProductAdmin = Annotated[User, Depends(api_permission(Perm.PRODUCTS_MANAGE))]
Cursor = Annotated[str | None, Query(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=200)]


def day_start(day: date, tz: str) -> datetime:
    """Midnight at the start of `day` in the time zone `tz`, as an aware datetime."""
    return datetime.combine(day, time(0), ZoneInfo(tz))


# ---------------------------------------------------------------- products


@router.get("/products", response_model=ProductPage, tags=["products"])
def list_products(
    db: DB, _user: Reader, category: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=100, description="SKU prefix or part of the name")] = None,
    cursor: Cursor = None, limit: Limit = 50,
) -> ProductPage:  # fmt: skip
    page = service.list_products(db, category=category, q=q, cursor=cursor, limit=limit)
    return ProductPage(items=[ProductOut.model_validate(p) for p in page.items], next_cursor=page.next_cursor)


@router.post("/products", response_model=ProductOut, status_code=201, tags=["products"])
def create_product(db: DB, user: ProductAdmin, body: ProductIn) -> ProductOut:
    return ProductOut.model_validate(service.create_product(db, actor=actor(user), data=body))


@router.get("/products/{product_id}", response_model=ProductOut, tags=["products"])
def get_product(db: DB, _user: Reader, product_id: PathId) -> ProductOut:
    return ProductOut.model_validate(service.get_product(db, product_id))


@router.patch("/products/{product_id}", response_model=ProductOut, tags=["products"])
def update_product(db: DB, user: ProductAdmin, product_id: PathId, body: ProductUpdate) -> ProductOut:
    return ProductOut.model_validate(
        service.update_product(db, actor=actor(user), product_id=product_id, data=body)
    )


@router.delete("/products/{product_id}", status_code=204, tags=["products"])
def delete_product(db: DB, user: ProductAdmin, product_id: PathId) -> Response:
    service.delete_product(db, actor=actor(user), product_id=product_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- orders


@router.post(
    "/orders", response_model=OrderOut, status_code=201, tags=["orders"],
    responses={200: {"description": "The external_id exists already; that order is returned."}},
)  # fmt: skip
def create_order(db: DB, user: Writer, body: OrderCreate, response: Response) -> OrderOut:
    placed = service.place_order(db, actor=actor(user), data=body)
    if not placed.created:
        response.status_code = 200
    return service.to_out(db, [placed.order])[0]


@router.get("/orders", response_model=OrderPage, tags=["orders"])
def list_orders(
    db: DB, settings: SettingsDep, _user: Reader,
    customer_id: QueryId = None,
    status: Status | None = None,
    channel: Channel | None = None,
    date_from: Annotated[date | None, Query(description="first day, in the configured time zone")] = None,
    date_to: Annotated[date | None, Query(description="last day (inclusive)")] = None,
    cursor: Cursor = None, limit: Limit = 50,
) -> OrderPage:  # fmt: skip
    filters = service.OrderFilters(
        customer_id=customer_id, status=status, channel=channel,
        ordered_from=day_start(date_from, settings.timezone) if date_from else None,
        ordered_to=day_start(date_to + timedelta(days=1), settings.timezone) if date_to else None,
    )  # fmt: skip
    page = service.list_orders(db, filters, cursor=cursor, limit=limit)
    return OrderPage(items=service.to_out(db, page.items), next_cursor=page.next_cursor)


@router.get("/orders/{order_id}", response_model=OrderOut, tags=["orders"])
def get_order(db: DB, _user: Reader, order_id: PathId) -> OrderOut:
    return service.to_out(db, [service.get_order(db, order_id)])[0]


@router.patch("/orders/{order_id}", response_model=OrderOut, tags=["orders"])
def change_status(db: DB, user: Writer, order_id: PathId, body: StatusChange) -> OrderOut:
    order = service.change_status(db, actor=actor(user), order_id=order_id, status=body.status)
    return service.to_out(db, [order])[0]


@router.post("/orders/{order_id}/returns", response_model=OrderOut, tags=["orders"])
def return_lines(db: DB, user: Writer, order_id: PathId, body: ReturnIn) -> OrderOut:
    order = service.return_lines(
        db, actor=actor(user), order_id=order_id, lines=body.lines, reason=body.reason
    )
    return service.to_out(db, [order])[0]


@router.post("/orders/{order_id}/refunds", response_model=OrderOut, tags=["orders"])
def refund(db: DB, user: Writer, order_id: PathId, body: RefundIn) -> OrderOut:
    order = service.refund(db, actor=actor(user), order_id=order_id, amount=body.amount, reason=body.reason)
    return service.to_out(db, [order])[0]


@router.get("/customers/{customer_id}/orders", response_model=OrderPage, tags=["orders"])
def customer_orders(
    db: DB, _user: Reader, customer_id: PathId, cursor: Cursor = None, limit: Limit = 50
) -> OrderPage:
    customers.get_customer(db, customer_id)
    page = service.list_orders(db, service.OrderFilters(customer_id=customer_id), cursor=cursor, limit=limit)
    return OrderPage(items=service.to_out(db, page.items), next_cursor=page.next_cursor)


@router.get("/customers/{customer_id}/metrics", response_model=MetricsOut, tags=["orders"])
def customer_metrics(db: DB, _user: Reader, customer_id: PathId) -> MetricsOut:
    customers.get_customer(db, customer_id)
    return service.metrics_of(db, customer_id)
