"""customer_metrics: one row per customer with order count, first and last purchase, total spend and average
order value over the customer's counted orders (status not void, currency the base currency).

A missing row reads as zeros. Order writes keep the row current in their own transaction: a new order is one
UPSERT, a change of amount one UPDATE, a void change one aggregate over that customer's orders (indexed). The
bulk recompute and the drift check are set-based SQL over all (or the given) customers.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from kokyaku.commerce.models import VOID_STATUSES, CustomerMetrics, Order
from kokyaku.commerce.schemas import MetricsOut
from kokyaku.config import get_settings
from kokyaku.db import UTCDateTime, utcnow

# Core DML on the table (not the ORM entity): the ORM's bulk DML path reports no row counts on PostgreSQL.
_METRICS: Table = CustomerMetrics.__table__  # type: ignore[assignment]
METRIC_FIELDS = ("order_count", "first_order_at", "last_order_at", "total_spend", "avg_order_value")
# ids per IN list: well under SQLite's 32766 bound parameters
ID_CHUNK = 5000


def base_currency() -> str:
    """The currency metrics are kept in (KOKYAKU_DEFAULT_CURRENCY, JPY unless set)."""
    return get_settings().default_currency


def counts(status: str, currency: str) -> bool:
    """Whether an order with this status and currency is part of its customer's metrics."""
    return status not in VOID_STATUSES and currency == base_currency()


def _counted() -> ColumnElement[bool]:
    return and_(Order.status.not_in(VOID_STATUSES), Order.currency == base_currency())


def chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), ID_CHUNK):
        yield list(ids[start : start + ID_CHUNK])


def _has_upsert(session: Session) -> bool:
    return session.get_bind().dialect.name in ("sqlite", "postgresql")


# ---------------------------------------------------------------- one order at a time


# Written as text because SQLAlchemy does not cache its dialect-specific INSERT ... ON CONFLICT constructs:
# compiling one per order cost more than running it. SQLite (3.24+) and PostgreSQL read the same SQL.
_ADD_ORDER = text(
    """
    INSERT INTO customer_metrics AS m
        (customer_id, order_count, first_order_at, last_order_at, total_spend, avg_order_value, updated_at)
    VALUES (:customer_id, 1, :at, :at, :total, :total, :now)
    ON CONFLICT (customer_id) DO UPDATE SET
        order_count = m.order_count + 1,
        first_order_at = CASE WHEN m.first_order_at IS NULL OR excluded.first_order_at < m.first_order_at
                              THEN excluded.first_order_at ELSE m.first_order_at END,
        last_order_at = CASE WHEN m.last_order_at IS NULL OR excluded.last_order_at > m.last_order_at
                             THEN excluded.last_order_at ELSE m.last_order_at END,
        total_spend = m.total_spend + excluded.total_spend,
        avg_order_value = (m.total_spend + excluded.total_spend) / (m.order_count + 1),
        updated_at = excluded.updated_at
    """
).bindparams(bindparam("at", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))


def add_order(session: Session, *, customer_id: int, at: datetime, total: int) -> None:
    """Count one new order: one UPSERT (ON CONFLICT on SQLite and PostgreSQL, else UPDATE-then-INSERT)."""
    if not _has_upsert(session):
        _add_order_fallback(session, customer_id=customer_id, at=at, total=total)
        return
    session.execute(_ADD_ORDER, {"customer_id": customer_id, "at": at, "total": total, "now": utcnow()})


def _add_order_fallback(session: Session, *, customer_id: int, at: datetime, total: int) -> None:
    """Portable form of add_order for databases without ON CONFLICT."""
    m = _METRICS.c
    at_ = literal(at, UTCDateTime())  # typed, so that it is stored as UTC like the column
    result = session.execute(
        update(_METRICS)
        .where(m.customer_id == customer_id)
        .values(
            order_count=m.order_count + 1,
            first_order_at=case(
                (or_(m.first_order_at.is_(None), m.first_order_at > at_), at_), else_=m.first_order_at
            ),
            last_order_at=case(
                (or_(m.last_order_at.is_(None), m.last_order_at < at_), at_), else_=m.last_order_at
            ),
            total_spend=m.total_spend + total,
            avg_order_value=(m.total_spend + total) // (m.order_count + 1),
            updated_at=utcnow(),
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(
            insert(_METRICS).values(
                customer_id=customer_id,
                order_count=1,
                first_order_at=at,
                last_order_at=at,
                total_spend=total,
                avg_order_value=total,
                updated_at=utcnow(),
            )  # fmt: skip
        )


def change_spend(session: Session, *, customer_id: int, delta: int) -> None:
    """A counted order's total changed by `delta` (partial return or refund): one UPDATE."""
    if delta == 0:
        return
    m = _METRICS.c
    result = session.execute(
        update(_METRICS)
        .where(m.customer_id == customer_id, m.order_count > 0)
        .values(
            total_spend=m.total_spend + delta,
            avg_order_value=(m.total_spend + delta) // m.order_count,
            updated_at=utcnow(),
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        # No row although the order counts: the row had drifted; rebuild it from the orders.
        recompute_metrics(session, [customer_id])


# ---------------------------------------------------------------- set-based recompute


def _aggregate(customer_ids: Sequence[int] | None) -> Select[Any]:
    spend = cast(func.sum(Order.total), BigInteger)
    stmt = select(
        Order.customer_id,
        func.count().label("order_count"),
        func.min(Order.ordered_at).label("first_order_at"),
        func.max(Order.ordered_at).label("last_order_at"),
        spend.label("total_spend"),
        (spend // func.count()).label("avg_order_value"),
    ).where(_counted())
    if customer_ids is not None:
        stmt = stmt.where(Order.customer_id.in_(customer_ids))
    return stmt.group_by(Order.customer_id)


def recompute_metrics(session: Session, customer_ids: Iterable[int] | None = None) -> int:
    """Rebuild metrics from the orders, for the given customers or all; set-based. Returns rows written.

    Other columns a later domain may add to customer_metrics are left alone (UPSERT, never delete)."""
    if customer_ids is None:
        return _recompute(session, None)
    ids = sorted(set(customer_ids))
    return sum(_recompute(session, chunk) for chunk in chunks(ids))


def _recompute(session: Session, ids: list[int] | None) -> int:
    m = _METRICS.c
    # Rows of customers with no counted order left go to zero (one statement, before the upsert).
    no_orders = ~select(Order.id).where(Order.customer_id == m.customer_id, _counted()).exists()
    zero = update(_METRICS).where(
        no_orders, or_(m.order_count != 0, m.total_spend != 0, m.last_order_at.is_not(None))
    )
    if ids is not None:
        zero = zero.where(m.customer_id.in_(ids))
    session.execute(
        zero.values(
            order_count=0,
            first_order_at=None,
            last_order_at=None,
            total_spend=0,
            avg_order_value=0,
            updated_at=utcnow(),
        )  # fmt: skip
    )
    if _has_upsert(session):
        return _write_upsert(session, ids)
    return _write_fallback(
        session, _aggregate(ids).add_columns(literal(utcnow(), UTCDateTime()).label("updated_at"))
    )


_COLUMNS = ("customer_id", *METRIC_FIELDS, "updated_at")


# As text for the same reason as _ADD_ORDER: a merge, a cancel or a bulk batch runs this for a few customers,
# and compiling SQLAlchemy's uncached ON CONFLICT construct each time would cost more than the query.
_UPSERT_AGGREGATE = """
    INSERT INTO customer_metrics AS m
        (customer_id, order_count, first_order_at, last_order_at, total_spend, avg_order_value, updated_at)
    SELECT customer_id, COUNT(*), MIN(ordered_at), MAX(ordered_at), CAST(SUM(total) AS BIGINT),
           CAST(SUM(total) AS BIGINT) / COUNT(*), :now
    FROM orders
    WHERE status NOT IN :void AND currency = :currency {only}
    GROUP BY customer_id
    ON CONFLICT (customer_id) DO UPDATE SET
        order_count = excluded.order_count, first_order_at = excluded.first_order_at,
        last_order_at = excluded.last_order_at, total_spend = excluded.total_spend,
        avg_order_value = excluded.avg_order_value, updated_at = excluded.updated_at
"""
_UPSERT_ALL = text(_UPSERT_AGGREGATE.format(only="")).bindparams(
    bindparam("now", type_=UTCDateTime()), bindparam("void", expanding=True)
)
_UPSERT_SOME = text(_UPSERT_AGGREGATE.format(only="AND customer_id IN :ids")).bindparams(
    bindparam("now", type_=UTCDateTime()), bindparam("void", expanding=True), bindparam("ids", expanding=True)
)


def _write_upsert(session: Session, ids: list[int] | None) -> int:
    """INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE: SQLite and PostgreSQL, one statement."""
    params: dict[str, Any] = {"now": utcnow(), "void": list(VOID_STATUSES), "currency": base_currency()}
    stmt = _UPSERT_ALL if ids is None else _UPSERT_SOME
    if ids is not None:
        params["ids"] = ids
    # SQLAlchemy keeps an INSERT's row count only when asked to
    result = session.execute(stmt.execution_options(preserve_rowcount=True), params)
    return max(int(result.rowcount or 0), 0)  # type: ignore[attr-defined]


def _write_fallback(session: Session, source: Select[Any]) -> int:
    """Portable form of _write_upsert: UPDATE from a correlated subquery, then INSERT the missing rows."""
    m = _METRICS.c
    src = source.subquery()
    values = {
        name: select(src.c[name]).where(src.c.customer_id == m.customer_id).scalar_subquery()
        for name in _COLUMNS[1:]
    }
    updated = session.execute(
        update(_METRICS).where(m.customer_id.in_(select(src.c.customer_id))).values(**values)
    ).rowcount  # type: ignore[attr-defined]
    missing = select(*[src.c[name] for name in _COLUMNS]).where(
        ~select(m.customer_id).where(m.customer_id == src.c.customer_id).exists()
    )
    add = insert(_METRICS).from_select(list(_COLUMNS), missing).execution_options(preserve_rowcount=True)
    inserted = session.execute(add).rowcount  # type: ignore[attr-defined]
    return int(updated or 0) + int(inserted or 0)


# ---------------------------------------------------------------- reading and checking


def metrics_of(session: Session, customer_id: int) -> MetricsOut:
    row = session.get(CustomerMetrics, customer_id)
    if row is None:
        return MetricsOut(
            customer_id=customer_id, order_count=0, first_order_at=None, last_order_at=None,
            total_spend=0, avg_order_value=0, currency=base_currency(),
        )  # fmt: skip
    return MetricsOut(
        customer_id=customer_id, order_count=row.order_count, first_order_at=row.first_order_at,
        last_order_at=row.last_order_at, total_spend=row.total_spend, avg_order_value=row.avg_order_value,
        currency=base_currency(),
    )  # fmt: skip


@dataclass
class Drift:
    """A customer whose stored metrics differ from the orders: field -> (stored, expected)."""

    customer_id: int
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{name} stored {old} expected {new}" for name, (old, new) in self.fields.items()]
        return f"customer {self.customer_id}: " + "; ".join(parts)


def check_metrics(session: Session, *, limit: int | None = None) -> list[Drift]:
    """Compare every metrics row with a recompute from the orders; returns the drifting customers (by id)."""
    agg = _aggregate(None).subquery()
    m = _METRICS.c
    expected = {
        "order_count": func.coalesce(agg.c.order_count, 0),
        "first_order_at": agg.c.first_order_at,
        "last_order_at": agg.c.last_order_at,
        "total_spend": func.coalesce(agg.c.total_spend, 0),
        "avg_order_value": func.coalesce(agg.c.avg_order_value, 0),
    }
    stored_vs_orders = (
        select(
            m.customer_id,
            *[m[f] for f in METRIC_FIELDS],
            *[expected[f].label("x_" + f) for f in METRIC_FIELDS],
        )
        .outerjoin(agg, agg.c.customer_id == m.customer_id)
        .where(or_(*[m[f].is_distinct_from(expected[f]) for f in METRIC_FIELDS]))
    )
    # customers with counted orders and no metrics row at all
    missing = (
        select(agg.c.customer_id, *[agg.c[f] for f in METRIC_FIELDS])
        .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == agg.c.customer_id)
        .where(m.customer_id.is_(None))
    )
    if limit is not None:
        stored_vs_orders = stored_vs_orders.order_by(m.customer_id).limit(limit)
        missing = missing.order_by(agg.c.customer_id).limit(limit)
    drifts: list[Drift] = []
    for row in session.execute(stored_vs_orders).mappings():
        diff = {f: (row[f], row["x_" + f]) for f in METRIC_FIELDS if row[f] != row["x_" + f]}
        drifts.append(Drift(row["customer_id"], diff))
    zeros = {
        "order_count": 0,
        "first_order_at": None,
        "last_order_at": None,
        "total_spend": 0,
        "avg_order_value": 0,
    }
    for row in session.execute(missing).mappings():
        drifts.append(
            Drift(row["customer_id"], {f: (zeros[f], row[f]) for f in METRIC_FIELDS if row[f] != zeros[f]})
        )
    drifts.sort(key=lambda d: d.customer_id)
    return drifts[:limit] if limit is not None else drifts
