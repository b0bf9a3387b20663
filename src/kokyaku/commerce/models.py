"""Products, orders and lines, and customer_metrics: one row per customer kept current in the same
transaction as every order write, so lists, segments and analytics never scan orders."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kokyaku.db import Base, UTCDateTime, utcnow

ORDER_STATUSES = ("placed", "paid", "shipped", "returned", "refunded", "cancelled")
# Statuses whose orders no longer count as purchases in the metrics.
VOID_STATUSES = ("returned", "refunded", "cancelled")
ORDER_CHANNELS = ("store", "online", "phone", "marketplace", "sns", "event", "other")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    price: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(String(3), default="JPY")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_ordered", "customer_id", "ordered_at"),
        Index("ix_orders_ordered_at", "ordered_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    # id in the shop / POS system: makes imports idempotent
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="placed")
    ordered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    currency: Mapped[str] = mapped_column(String(3), default="JPY")
    total: Mapped[int] = mapped_column(BigInteger)  # after returns and refunds, minor units
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"), index=True)
    sku: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    returned_quantity: Mapped[int] = mapped_column(Integer, default=0)


class CustomerMetrics(Base):
    """Purchase aggregates per customer (money in minor units of the default currency)."""

    __tablename__ = "customer_metrics"
    __table_args__ = (
        Index("ix_customer_metrics_last_order_at", "last_order_at"),
        Index("ix_customer_metrics_total_spend", "total_spend"),
    )

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    first_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    total_spend: Mapped[int] = mapped_column(BigInteger, default=0)
    avg_order_value: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
