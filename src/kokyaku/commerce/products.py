"""Products: the catalogue orders draw SKU, name and price from (SKU unique, price in minor units)."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.commerce.models import Product
from kokyaku.commerce.schemas import ProductIn, ProductUpdate
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, NotFound, ValidationFailed
from kokyaku.kit.pagination import Page, decode_cursor, encode_cursor


class ProductNotFound(NotFound):
    code = "product_not_found"
    message = "Product {id} does not exist."


def get_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise ProductNotFound(id=product_id)
    return product


def _product_state(p: Product) -> dict[str, Any]:
    return {"sku": p.sku, "name": p.name, "category": p.category, "price": p.price, "currency": p.currency}


def _sku_free(session: Session, sku: str, product_id: int | None = None) -> None:
    other = session.scalar(select(Product.id).where(Product.sku == sku))
    if other is not None and other != product_id:
        raise Conflict("SKU {sku} is already used by another product.", field="sku", sku=sku)


def _flush_product(session: Session, sku: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent writer took the SKU between our check and the insert
        raise Conflict("SKU {sku} is already used by another product.", field="sku", sku=sku) from exc


def create_product(session: Session, *, actor: Actor, data: ProductIn) -> Product:
    """Add a product; the SKU must be new."""
    _sku_free(session, data.sku)
    product = Product(**data.model_dump(), created_at=utcnow())
    session.add(product)
    _flush_product(session, data.sku)
    audit.record(
        session, actor=actor, entity_type="product", entity_id=product.id, action="create",
        changes=audit.diff({}, _product_state(product)),
    )  # fmt: skip
    return product


def update_product(session: Session, *, actor: Actor, product_id: int, data: ProductUpdate) -> Product:
    """Change the fields present in `data`; past order lines keep the SKU, name and price they had."""
    product = get_product(session, product_id)
    fields = data.model_fields_set
    for name in ("sku", "name", "price", "currency"):
        if name in fields and getattr(data, name) is None:
            raise ValidationFailed([(name, "This field is required.", {})])
    if "sku" in fields and data.sku != product.sku:
        _sku_free(session, data.sku or "", product.id)
    before = _product_state(product)
    for name in fields:
        setattr(product, name, getattr(data, name))
    _flush_product(session, product.sku)
    changes = audit.diff(before, _product_state(product))
    if changes:
        audit.record(
            session,
            actor=actor,
            entity_type="product",
            entity_id=product.id,
            action="update",
            changes=changes,
        )
    return product


def delete_product(session: Session, *, actor: Actor, product_id: int) -> None:
    """Remove a product; order lines keep their copy of its SKU and name."""
    product = get_product(session, product_id)
    audit.record(
        session, actor=actor, entity_type="product", entity_id=product.id, action="delete",
        changes=audit.diff(_product_state(product), {}),
    )  # fmt: skip
    session.delete(product)
    session.flush()


def list_products(
    session: Session, *, category: str | None = None, q: str | None = None, cursor: str | None = None,
    limit: int = 50,
) -> Page[Product]:  # fmt: skip
    """Products by SKU, keyset-paginated; `q` matches the start of the SKU or any part of the name."""
    stmt = select(Product)
    if category:
        stmt = stmt.where(Product.category == category)
    if q:
        stmt = stmt.where(
            Product.sku.startswith(q, autoescape=True) | Product.name.contains(q, autoescape=True)
        )
    after = decode_cursor(cursor)
    if after:
        stmt = stmt.where(Product.sku > str(after[0]))
    items = list(session.scalars(stmt.order_by(Product.sku).limit(limit + 1)))
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_cursor([items[-1].sku]) if more and items else None)


def product_categories(session: Session) -> list[str]:
    stmt = select(Product.category).where(Product.category.is_not(None)).distinct().order_by(Product.category)
    return [c for c in session.scalars(stmt) if c]
