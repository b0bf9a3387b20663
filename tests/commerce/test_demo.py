"""Demo orders: a repeat-buying process with one-time, loyal and lapsed buyers, seasonal peaks, a few voids;
written through the bulk path with exact metrics."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import func, select

from kokyaku.commerce import service
from kokyaku.commerce.models import CustomerMetrics, Order, OrderLine, Product
from kokyaku.customers.models import Customer
from kokyaku.db import Database
from kokyaku.demo.generate import generate
from kokyaku.demo.orders import catalogue_rows, generate_orders
from kokyaku.timeline.models import TimelineEntry

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def test_catalogue_has_about_two_hundred_products_with_yen_prices() -> None:
    rows = catalogue_rows()
    assert len(rows) == 200 and len({r["sku"] for r in rows}) == 200
    assert len({r["category"] for r in rows}) >= 10
    assert all(isinstance(r["price"], int) and 100 <= r["price"] <= 30_000 for r in rows)


def test_demo_orders_look_like_a_real_shop(db: Database) -> None:
    generate(db, customers=1200, seed=3, orders_per_customer=0, touchpoints_per_customer=0)
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0
        customer_ids = np.array(s.scalars(select(Customer.id)).all())
    written = generate_orders(db, customer_ids=customer_ids, orders_per_customer=8.0, seed=3, now=NOW)
    with db.session(write=False) as s:
        assert service.check_metrics(s) == []
        counts = [m.order_count for m in s.scalars(select(CustomerMetrics))]
        orders = s.execute(select(Order.ordered_at, Order.status, Order.channel)).all()
        lines_per_order = Counter(
            s.scalars(select(func.count()).select_from(OrderLine).group_by(OrderLine.order_id))
        )
        timeline = s.scalar(
            select(func.count()).select_from(TimelineEntry).where(TimelineEntry.kind == "order_placed")
        )
        products = s.scalar(select(func.count()).select_from(Product))
    assert written == len(orders) == timeline and products == 200
    assert 6.0 < written / 1200 < 10.0  # about the asked mean
    buyers = [c for c in counts if c > 0]
    assert 0.8 < len(buyers) / 1200 < 0.95  # some prospects never buy
    assert 0.15 < sum(c == 1 for c in buyers) / len(buyers) < 0.5  # many one-time buyers
    assert max(buyers) >= 40  # and a few loyal heavy buyers
    assert all(NOW - timedelta(days=3 * 365 + 1) <= at <= NOW for at, _s, _c in orders)
    assert set(lines_per_order) <= {1, 2, 3, 4} and lines_per_order[1] > lines_per_order[4]
    statuses = Counter(st for _a, st, _c in orders)
    assert (
        statuses["cancelled"] > 0
        and statuses["returned"] > 0
        and statuses["shipped"] > statuses["cancelled"] * 10
    )
    assert len({ch for _a, _s, ch in orders}) >= 5
    # December (oseibo, year end) sells more per day than November of the same year
    local = [(at + timedelta(hours=9)) for at, _s, _c in orders]
    dec = sum(1 for d in local if (d.year, d.month) == (2025, 12)) / 31
    nov = sum(1 for d in local if (d.year, d.month) == (2025, 11)) / 30
    assert dec > 1.2 * nov
