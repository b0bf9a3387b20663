"""Pydantic shapes of products, orders, returns, refunds and customer metrics, in and out."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from kokyaku.commerce.models import ORDER_CHANNELS, ORDER_STATUSES
from kokyaku.kit.ids import BodyId
from kokyaku.kit.normalize import clean_text

MAX_AMOUNT = 10**13  # minor units; far above any real order, far below BIGINT


def _required_text(value: str) -> str:
    value = clean_text(value) or ""
    if not value:
        raise ValueError("This field is required.")
    return value


def _currency(value: str) -> str:
    value = (clean_text(value) or "").upper()
    if len(value) != 3 or not value.isalpha() or not value.isascii():
        raise ValueError("A currency is a three-letter code such as JPY.")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("Give the time with its time zone, like 2025-04-01T10:00:00+09:00.")
    if value.year < 1970 or value > datetime.now(UTC) + timedelta(days=366):
        raise ValueError("The order time is out of range.")
    return value


Sku = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_required_text)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_required_text)]
Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_currency)]
Price = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
Channel = Literal[ORDER_CHANNELS]  # type: ignore[valid-type]
Status = Literal[ORDER_STATUSES]  # type: ignore[valid-type]


# ---------------------------------------------------------------- products


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    category: Annotated[str | None, Field(max_length=100), AfterValidator(clean_text)] = None
    price: Price
    currency: Currency = "JPY"


class ProductUpdate(BaseModel):
    """Partial update: only the fields present change."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku | None = None
    name: Name | None = None
    category: Annotated[str | None, Field(max_length=100), AfterValidator(clean_text)] = None
    price: Price | None = None
    currency: Currency | None = None


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    name: str
    category: str | None
    price: int
    currency: str
    created_at: datetime


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None


# ---------------------------------------------------------------- orders


class OrderLineIn(BaseModel):
    """A product by id or SKU (unit price defaults to the product's), or a free line with name and price."""

    model_config = ConfigDict(extra="forbid")

    product_id: BodyId | None = None
    sku: Annotated[str | None, Field(max_length=64), AfterValidator(clean_text)] = None
    name: Annotated[str | None, Field(max_length=200), AfterValidator(clean_text)] = None
    quantity: Annotated[int, Field(ge=1, le=100_000)] = 1
    unit_price: Price | None = None

    @model_validator(mode="after")
    def _identified(self) -> "OrderLineIn":
        if self.product_id is None and self.sku is None and (self.name is None or self.unit_price is None):
            raise ValueError(
                "Give a product_id or sku, or a name and unit_price for a line without a product."
            )
        return self


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: BodyId
    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=500)]
    channel: Channel = "online"
    status: Status = "placed"
    ordered_at: Annotated[datetime | None, AfterValidator(lambda v: _aware(v) if v else v)] = None
    currency: Currency = "JPY"
    # the order's id in the shop or POS system: sending the same order twice creates it once
    external_id: Annotated[str | None, Field(max_length=100), AfterValidator(clean_text)] = None
    properties: dict[str, Any] = {}

    @field_validator("properties")
    @classmethod
    def _small_properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(str(value)) > 4000:
            raise ValueError("At most 4000 characters of properties.")
        return value


class OrderLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    product_id: int | None
    sku: str | None
    name: str
    quantity: int
    unit_price: int
    returned_quantity: int


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    external_id: str | None
    channel: str
    status: str
    ordered_at: datetime
    currency: str
    total: int
    refunded: int
    properties: dict[str, Any]
    created_at: datetime
    lines: list[OrderLineOut] = []


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status


class ReturnLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_id: BodyId
    quantity: Annotated[int, Field(ge=1, le=100_000)]


class ReturnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: Annotated[list[ReturnLineIn], Field(min_length=1, max_length=500)]
    reason: Annotated[str | None, Field(max_length=500), AfterValidator(clean_text)] = None


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT)]
    reason: Annotated[str | None, Field(max_length=500), AfterValidator(clean_text)] = None


class MetricsOut(BaseModel):
    """Purchase aggregates over the customer's non-void orders in the base currency."""

    customer_id: int
    order_count: int
    first_order_at: datetime | None
    last_order_at: datetime | None
    total_spend: int
    avg_order_value: int
    currency: str
