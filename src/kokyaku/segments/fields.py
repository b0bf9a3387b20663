"""The built-in rule fields: demographic, psychographic and behavioural. Later issues add theirs the same way
(`register_join` for their per-customer table, then `register_field`)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select, true, union
from sqlalchemy.orm import aliased

from kokyaku.commerce.models import ORDER_CHANNELS, VOID_STATUSES, CustomerMetrics, Order, OrderLine, Product
from kokyaku.customers.models import COMPANY, COMPANY_SIZES, GENDERS, PERSON, Customer, Interest
from kokyaku.kit.prefectures import PREFECTURE_NAMES
from kokyaku.segments.lifecycle import STAGES
from kokyaku.segments.models import CustomerLifecycle, CustomerRfm
from kokyaku.segments.rfm import RFM_SEGMENTS
from kokyaku.segments.rules import (
    DATE,
    ENUM,
    NUMBER,
    TAGS,
    TEXT,
    Condition,
    Context,
    FieldSpec,
    age_condition,
    days_since,
    register_field,
    register_join,
)

try:  # touchpoints arrive with the timeline domain; channels used then include them
    from kokyaku.timeline.models import TOUCHPOINT_CHANNELS, Touchpoint
except ImportError:  # pragma: no cover - only before the timeline domain exists
    Touchpoint, TOUCHPOINT_CHANNELS = None, ()  # type: ignore[assignment,misc]

CHANNELS = tuple(dict.fromkeys((*ORDER_CHANNELS, *TOUCHPOINT_CHANNELS)))
Company = aliased(Customer, name="company")

register_join("metrics", CustomerMetrics, lambda: CustomerMetrics.customer_id == Customer.id)
register_join("rfm", CustomerRfm, lambda: CustomerRfm.customer_id == Customer.id)
register_join("lifecycle", CustomerLifecycle, lambda: CustomerLifecycle.customer_id == Customer.id)
register_join("company", Company, lambda: and_(Company.id == Customer.company_id, Company.kind == COMPANY))

SCORE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_empty", "is_not_empty")
METRIC_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between", "not_between")
SET_OPS = ("any_of", "none_of", "all_of")


def _live_purchase(days: int | None, ctx: Context) -> list[ColumnElement[bool]]:
    """Predicates of an order that counts as a purchase (not void), optionally within the last `days` days."""
    where: list[ColumnElement[bool]] = [Order.status.not_in(VOID_STATUSES)]
    if days:
        where.append(Order.ordered_at >= ctx.day_start(ctx.today - timedelta(days=days)))
    return where


IdQueries = Callable[[list[str]], list[Select[Any]]]


def _membership(cond: Condition, ctx: Context, queries: IdQueries) -> ColumnElement[bool]:
    """any_of / all_of / none_of over queries of customer ids. Counting a whole segment uses IN (subquery),
    which the database evaluates once; testing one customer (ctx.correlated) uses EXISTS per customer."""

    def has(values: list[str]) -> ColumnElement[bool]:
        parts = queries(values)
        if ctx.correlated:
            return or_(*[q.where(q.selected_columns[0] == Customer.id).exists() for q in parts])
        return Customer.id.in_(parts[0] if len(parts) == 1 else union(*parts))

    if cond.operator == "any_of":
        return has(cond.value)
    if cond.operator == "none_of":
        return not_(has(cond.value))
    return and_(true(), *[has([v]) for v in cond.value])


def _interests(cond: Condition, ctx: Context) -> ColumnElement[bool]:
    if cond.operator in ("is_empty", "is_not_empty"):
        anything = (
            select(Interest.customer_id).where(Interest.customer_id == Customer.id).exists()
            if ctx.correlated
            else Customer.id.in_(select(Interest.customer_id))
        )
        return not_(anything) if cond.operator == "is_empty" else anything
    return _membership(cond, ctx, lambda tags: [select(Interest.customer_id).where(Interest.tag.in_(tags))])


def _bought(by: str) -> Callable[[Condition, Context], ColumnElement[bool]]:
    """Bought (or not) any of the given products (SKUs) or categories, ever or within the last N days."""

    def build(cond: Condition, ctx: Context) -> ColumnElement[bool]:
        def queries(values: list[str]) -> list[Select[Any]]:
            column = Product.sku if by == "sku" else Product.category
            products = select(Product.id).where(column.in_(values))
            lines = (
                select(Order.customer_id)
                .join(OrderLine, OrderLine.order_id == Order.id)
                .where(OrderLine.product_id.in_(products), *_live_purchase(cond.days, ctx))
            )
            return [lines]

        return _membership(cond, ctx, queries)

    return build


def _channels(cond: Condition, ctx: Context) -> ColumnElement[bool]:
    """Channels used: orders on that channel (not void), and touchpoints when the timeline exists."""

    def queries(values: list[str]) -> list[Select[Any]]:
        orders = select(Order.customer_id).where(Order.channel.in_(values), *_live_purchase(cond.days, ctx))
        if Touchpoint is None:
            return [orders]
        tp = select(Touchpoint.customer_id).where(Touchpoint.channel.in_(values))
        if cond.days:
            tp = tp.where(Touchpoint.at >= ctx.day_start(ctx.today - timedelta(days=cond.days)))
        return [orders, tp]

    return _membership(cond, ctx, queries)


def _days_since_last(cond: Condition, ctx: Context) -> ColumnElement[bool]:
    return days_since(CustomerMetrics.last_order_at, cond, ctx)  # type: ignore[arg-type]


def _lifecycle(cond: Condition, _ctx: Context) -> ColumnElement[bool]:
    """No row means `lead`, so conditions that `lead` meets also take customers without a row."""
    col = CustomerLifecycle.stage
    values = cond.value if isinstance(cond.value, list) else [cond.value]
    positive = cond.operator in ("eq", "in")
    hit = col.in_(values)
    if positive:
        return or_(hit, col.is_(None)) if "lead" in values else hit
    return not_(or_(hit, col.is_(None))) if "lead" in values else or_(not_(hit), col.is_(None))


def _company_attr(name: str):  # type: ignore[no-untyped-def]
    """A person's company's industry or size; a company's own."""
    return lambda _ctx: func.coalesce(getattr(Company, name), getattr(Customer, name))


_FIELDS = [
    # demographic
    FieldSpec(key="age", label="Age", category="demographic", kind=NUMBER, build=age_condition,
              integer=True, minimum=0, maximum=150, unit="years"),
    FieldSpec(key="gender", label="Gender", category="demographic", kind=ENUM,
              column=lambda _c: Customer.gender, choices=lambda: GENDERS),
    FieldSpec(key="prefecture", label="Prefecture", category="demographic", kind=ENUM,
              column=lambda _c: Customer.prefecture, choices=lambda: PREFECTURE_NAMES,
              choice_message="Not a prefecture of Japan."),
    FieldSpec(key="city", label="City", category="demographic", kind=TEXT, column=lambda _c: Customer.city),
    FieldSpec(key="kind", label="Customer type", category="demographic", kind=ENUM,
              operators=("eq", "ne", "in", "not_in"),
              column=lambda _c: Customer.kind, choices=lambda: (PERSON, COMPANY)),
    FieldSpec(key="company_industry", label="Industry", category="demographic", kind=TEXT,
              column=_company_attr("industry"), joins=("company",)),
    FieldSpec(key="company_size", label="Company size", category="demographic", kind=ENUM,
              column=_company_attr("company_size"), joins=("company",), choices=lambda: COMPANY_SIZES),
    FieldSpec(key="created", label="Customer since", category="demographic", kind=DATE,
              column=lambda _c: Customer.created_at),
    # psychographic (custom fields are added per compilation as custom.<key>)
    FieldSpec(key="interests", label="Interests", category="psychographic", kind=TAGS, build=_interests),
    # behavioural
    FieldSpec(key="order_count", label="Number of orders", category="behavioural", kind=NUMBER,
              operators=METRIC_OPS, column=lambda _c: CustomerMetrics.order_count, joins=("metrics",),
              default=0, integer=True, minimum=0, maximum=10**9),
    FieldSpec(key="days_since_last_order", label="Days since last purchase", category="behavioural",
              kind=NUMBER, build=_days_since_last, joins=("metrics",), integer=True, minimum=0,
              maximum=36_500, unit="days"),
    FieldSpec(key="total_spend", label="Total spend", category="behavioural", kind=NUMBER,
              operators=METRIC_OPS, column=lambda _c: CustomerMetrics.total_spend, joins=("metrics",),
              default=0, integer=True, minimum=0, maximum=10**14, unit="money"),
    FieldSpec(key="avg_order_value", label="Average order value", category="behavioural", kind=NUMBER,
              operators=METRIC_OPS, column=lambda _c: CustomerMetrics.avg_order_value, joins=("metrics",),
              default=0, integer=True, minimum=0, maximum=10**14, unit="money"),
    FieldSpec(key="first_order_date", label="First purchase", category="behavioural", kind=DATE,
              column=lambda _c: CustomerMetrics.first_order_at, joins=("metrics",)),
    FieldSpec(key="last_order_date", label="Last purchase", category="behavioural", kind=DATE,
              column=lambda _c: CustomerMetrics.last_order_at, joins=("metrics",)),
    FieldSpec(key="channels", label="Channels used", category="behavioural", kind=TAGS, operators=SET_OPS,
              build=_channels, choices=lambda: CHANNELS, days=True),
    FieldSpec(key="bought_product", label="Bought product (SKU)", category="behavioural", kind=TAGS,
              operators=("any_of", "none_of", "all_of"), build=_bought("sku"), days=True),
    FieldSpec(key="bought_category", label="Bought category", category="behavioural", kind=TAGS,
              operators=("any_of", "none_of", "all_of"), build=_bought("category"), days=True),
    FieldSpec(key="rfm_r", label="RFM recency score", category="behavioural", kind=NUMBER,
              operators=SCORE_OPS, column=lambda _c: CustomerRfm.r, joins=("rfm",), integer=True, minimum=1,
              maximum=5),
    FieldSpec(key="rfm_f", label="RFM frequency score", category="behavioural", kind=NUMBER,
              operators=SCORE_OPS, column=lambda _c: CustomerRfm.f, joins=("rfm",), integer=True, minimum=1,
              maximum=5),
    FieldSpec(key="rfm_m", label="RFM monetary score", category="behavioural", kind=NUMBER,
              operators=SCORE_OPS, column=lambda _c: CustomerRfm.m, joins=("rfm",), integer=True, minimum=1,
              maximum=5),
    FieldSpec(key="rfm_segment", label="RFM segment", category="behavioural", kind=ENUM,
              column=lambda _c: CustomerRfm.segment, joins=("rfm",), choices=lambda: RFM_SEGMENTS),
    FieldSpec(key="lifecycle_stage", label="Lifecycle stage", category="behavioural", kind=ENUM,
              operators=("in", "not_in", "eq", "ne"), build=_lifecycle, joins=("lifecycle",),
              choices=lambda: STAGES),
]  # fmt: skip

for _spec in _FIELDS:
    register_field(_spec)
