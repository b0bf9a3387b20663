"""Plain keyword-only factories for products and orders."""

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from kokyaku.commerce import service
from kokyaku.commerce.models import Order, Product
from kokyaku.commerce.schemas import OrderCreate, ProductIn
from tests.conftest import TEST_ACTOR


def make_product(session: Session, *, sku: str = "TEA-001", name: str = "煎茶 100g", price: int = 1200,
                 category: str | None = "飲料", currency: str = "JPY") -> Product:  # fmt: skip
    return service.create_product(
        session,
        actor=TEST_ACTOR,
        data=ProductIn(sku=sku, name=name, price=price, category=category, currency=currency),
    )


def make_order(session: Session, *, customer_id: int, at: datetime, lines: list[dict[str, Any]] | None = None,
               price: int = 1000, quantity: int = 1, **fields: Any) -> Order:  # fmt: skip
    """An order; without `lines`, one free line of `quantity` x `price`."""
    lines = lines or [{"name": "商品", "unit_price": price, "quantity": quantity}]
    data = OrderCreate(customer_id=customer_id, ordered_at=at, lines=lines, **fields)  # type: ignore[arg-type]
    return service.place_order(session, actor=TEST_ACTOR, data=data).order
