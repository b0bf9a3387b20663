"""Orders and customer metrics: every write keeps the metrics exact, and the drift check agrees."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from kokyaku.audit.models import AuditEntry
from kokyaku.commerce import metrics, service
from kokyaku.commerce.models import CustomerMetrics, Order, OrderLine
from kokyaku.commerce.schemas import OrderCreate, ReturnLineIn
from kokyaku.customers.merge import participants
from kokyaku.db import Database
from kokyaku.errors import Conflict, ValidationFailed
from kokyaku.timeline.models import TimelineEntry
from tests.commerce.factories import make_order, make_product
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def _metrics(db: Database, customer_id: int) -> tuple[int, datetime | None, datetime | None, int, int]:
    with db.session(write=False) as s:
        m = service.metrics_of(s, customer_id)
    return m.order_count, m.first_order_at, m.last_order_at, m.total_spend, m.avg_order_value


def _no_drift(db: Database) -> None:
    with db.session(write=False) as s:
        assert service.check_metrics(s) == []


def test_placing_orders_keeps_metrics_exact(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s)
        tea = make_product(s, price=1200)
        make_order(s, customer_id=c.id, at=T0, lines=[{"sku": "TEA-001", "quantity": 2}])
    assert _metrics(db, c.id) == (1, T0, T0, 2400, 2400)
    with db.session() as s:
        # placed later but ordered earlier: the first purchase moves back, the last stays
        make_order(s, customer_id=c.id, at=T0 - timedelta(days=30), price=1001)
        make_order(
            s, customer_id=c.id, at=T0 + timedelta(days=2), lines=[{"product_id": tea.id, "unit_price": 900}]
        )
    assert _metrics(db, c.id) == (3, T0 - timedelta(days=30), T0 + timedelta(days=2), 4301, 4301 // 3)
    _no_drift(db)


def test_order_lines_copy_the_product_and_total_is_computed(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s)
        make_product(s, sku="A", name="りんご", price=300)
        make_product(s, sku="B", name="みかん", price=120)
        order = make_order(
            s, customer_id=c.id, at=T0, lines=[{"sku": "A", "quantity": 3}, {"sku": "B"}], channel="store"
        )
        out = service.to_out(s, [order])[0]
    assert out.total == 1020 and out.currency == "JPY" and out.channel == "store" and out.status == "placed"
    assert [(line.sku, line.name, line.quantity, line.unit_price) for line in out.lines] == [
        ("A", "りんご", 3, 300), ("B", "みかん", 1, 120),
    ]  # fmt: skip


def test_every_order_write_is_audited_and_on_the_timeline(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s)
        order = make_order(s, customer_id=c.id, at=T0, price=5000, status="paid")
        service.refund(s, actor=TEST_ACTOR, order_id=order.id, amount=1000, reason="傷あり")
        service.change_status(s, actor=TEST_ACTOR, order_id=order.id, status="refunded")
    with db.session(write=False) as s:
        of_order = (AuditEntry.entity_type == "order", AuditEntry.entity_id == order.id)
        actions = s.scalars(select(AuditEntry.action).where(*of_order).order_by(AuditEntry.id)).all()
        kinds = s.scalars(
            select(TimelineEntry.kind).where(TimelineEntry.customer_id == c.id).order_by(TimelineEntry.id)
        ).all()
        refund_row = s.scalars(select(AuditEntry).where(AuditEntry.action == "refund")).one()
    assert actions == ["create", "refund", "status_change"]
    assert kinds == ["order_placed", "order_status_changed", "order_status_changed"]
    assert refund_row.changes["total"] == [5000, 4000] and refund_row.changes["reason"] == [None, "傷あり"]


def test_cancel_return_and_refund_adjust_totals_and_metrics(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s)
        first = make_order(s, customer_id=c.id, at=T0, price=1000, status="paid")
        mid = make_order(
            s, customer_id=c.id, at=T0 + timedelta(days=1), price=3000, quantity=2, status="shipped"
        )
        last = make_order(s, customer_id=c.id, at=T0 + timedelta(days=5), price=500)
    assert _metrics(db, c.id) == (3, T0, T0 + timedelta(days=5), 7500, 2500)

    with db.session() as s:  # cancelling the latest order moves the last purchase back
        service.change_status(s, actor=TEST_ACTOR, order_id=last.id, status="cancelled")
    assert _metrics(db, c.id) == (2, T0, T0 + timedelta(days=1), 7000, 3500)

    with db.session() as s:  # one of two units back: the order still counts, for 3000 less
        line = s.scalars(select(OrderLine).where(OrderLine.order_id == mid.id)).one()
        order = service.return_lines(
            s, actor=TEST_ACTOR, order_id=mid.id, lines=[ReturnLineIn(line_id=line.id, quantity=1)]
        )
        assert (order.total, order.status) == (3000, "shipped")
    assert _metrics(db, c.id) == (2, T0, T0 + timedelta(days=1), 4000, 2000)

    with db.session() as s:  # a partial refund lowers spend; refunding the rest makes the order void
        assert service.refund(s, actor=TEST_ACTOR, order_id=mid.id, amount=500).total == 2500
    assert _metrics(db, c.id) == (2, T0, T0 + timedelta(days=1), 3500, 1750)
    with db.session() as s:
        order = service.refund(s, actor=TEST_ACTOR, order_id=mid.id, amount=2500)
        assert (order.total, order.refunded, order.status) == (0, 3000, "refunded")
    assert _metrics(db, c.id) == (1, T0, T0, 1000, 1000)

    with db.session() as s:  # returning every unit makes the order returned; no counted order remains
        line = s.scalars(select(OrderLine).where(OrderLine.order_id == first.id)).one()
        order = service.return_lines(
            s, actor=TEST_ACTOR, order_id=first.id, lines=[ReturnLineIn(line_id=line.id, quantity=1)]
        )
        assert (order.total, order.status) == (0, "returned")
    assert _metrics(db, c.id) == (0, None, None, 0, 0)
    _no_drift(db)


def test_status_changes_follow_the_allowed_paths(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s)
        order = make_order(s, customer_id=c.id, at=T0, price=800)
        for status in ("paid", "shipped", "returned", "refunded"):
            service.change_status(s, actor=TEST_ACTOR, order_id=order.id, status=status)
        lines = s.scalars(select(OrderLine).where(OrderLine.order_id == order.id)).all()
        assert [(line.quantity, line.returned_quantity) for line in lines] == [(1, 1)]
    with pytest.raises(Conflict) as info, db.session() as s:
        service.change_status(s, actor=TEST_ACTOR, order_id=order.id, status="shipped")
    assert info.value.field == "status" and info.value.params == {"old": "refunded", "new": "shipped"}
    with (
        pytest.raises(Conflict),
        db.session() as s,
    ):  # a placed (unpaid) order cannot be refunded, only cancelled
        other = make_order(s, customer_id=c.id, at=T0, price=800)
        service.refund(s, actor=TEST_ACTOR, order_id=other.id, amount=100)


def test_bad_returns_and_refunds_name_the_field_and_change_nothing(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s)
        order = make_order(s, customer_id=c.id, at=T0, price=1000, quantity=2, status="paid")
        line_id = s.scalars(select(OrderLine.id).where(OrderLine.order_id == order.id)).one()
    with pytest.raises(ValidationFailed) as info, db.session() as s:
        service.return_lines(
            s, actor=TEST_ACTOR, order_id=order.id, lines=[ReturnLineIn(line_id=line_id, quantity=3)]
        )
    assert info.value.problems[0][:2] == ("lines.0.quantity", "At most {max} can be returned.")
    with pytest.raises(ValidationFailed) as info, db.session() as s:
        service.return_lines(
            s, actor=TEST_ACTOR, order_id=order.id, lines=[ReturnLineIn(line_id=line_id + 99, quantity=1)]
        )
    assert info.value.problems[0][0] == "lines.0.line_id"
    with pytest.raises(ValidationFailed) as info, db.session() as s:
        service.refund(s, actor=TEST_ACTOR, order_id=order.id, amount=2001)
    assert info.value.problems[0][0] == "amount"
    with db.session(write=False) as s:
        assert s.get(Order, order.id).total == 2000  # type: ignore[union-attr]
    assert _metrics(db, c.id)[3] == 2000


def test_unknown_customer_product_and_sku_are_named(db: Database) -> None:
    with db.session() as s:
        make_product(s, sku="X1", price=100)
    with pytest.raises(ValidationFailed) as info, db.session() as s:
        data = OrderCreate(customer_id=999, lines=[{"sku": "NOPE"}, {"product_id": 12345}, {"sku": "X1"}])  # type: ignore[list-item]
        service.place_order(s, actor=TEST_ACTOR, data=data)
    fields = [p[0] for p in info.value.problems]
    assert fields == ["customer_id", "lines.0.sku", "lines.1.product_id"]
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0


def test_external_id_makes_placing_idempotent(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s)
        other = make_customer(s, name="他人")
        data = OrderCreate(
            customer_id=c.id, ordered_at=T0, external_id="POS-1", lines=[{"name": "x", "unit_price": 700}]
        )  # type: ignore[list-item]
        first = service.place_order(s, actor=TEST_ACTOR, data=data)
    with db.session() as s:
        again = service.place_order(s, actor=TEST_ACTOR, data=data)
    assert first.created and not again.created and again.order.id == first.order.id
    assert _metrics(db, c.id)[:1] == (1,)
    with pytest.raises(Conflict) as info, db.session() as s:
        service.place_order(s, actor=TEST_ACTOR, data=data.model_copy(update={"customer_id": other.id}))
    assert info.value.field == "external_id"


def test_orders_in_another_currency_do_not_count(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s)
        make_order(s, customer_id=c.id, at=T0, price=1999, currency="USD")
        make_order(s, customer_id=c.id, at=T0 + timedelta(days=1), price=5000)
    assert _metrics(db, c.id) == (1, T0 + timedelta(days=1), T0 + timedelta(days=1), 5000, 5000)
    _no_drift(db)


def test_check_finds_corrupted_and_missing_rows_and_recompute_repairs(db: Database) -> None:
    with db.session() as s:
        a, b, c = make_customer(s, name="A"), make_customer(s, name="B"), make_customer(s, name="C")
        for i, cust in enumerate((a, b, c)):
            make_order(s, customer_id=cust.id, at=T0 + timedelta(hours=i), price=1000 * (i + 1))
            make_order(s, customer_id=cust.id, at=T0 + timedelta(days=3), price=100, status="paid")
        small = make_order(s, customer_id=a.id, at=T0, price=7)
        service.change_status(s, actor=TEST_ACTOR, order_id=small.id, status="cancelled")
    _no_drift(db)
    with db.session() as s:
        s.execute(update(CustomerMetrics).where(CustomerMetrics.customer_id == a.id).values(total_spend=1))
        s.execute(text("DELETE FROM customer_metrics WHERE customer_id = :id"), {"id": c.id})
    with db.session(write=False) as s:
        drifts = service.check_metrics(s)
    assert [d.customer_id for d in drifts] == [a.id, c.id]
    assert drifts[0].fields == {"total_spend": (1, 1100)}
    assert drifts[1].fields["order_count"] == (0, 2)
    with db.session() as s:
        service.recompute_metrics(s, [a.id, c.id])
    _no_drift(db)
    with db.session() as s:  # a whole recompute changes nothing when all is right
        service.recompute_metrics(s)
    assert _metrics(db, a.id) == (2, T0, T0 + timedelta(days=3), 1100, 550)
    _no_drift(db)


def test_portable_fallbacks_give_the_same_metrics(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s)
        make_order(s, customer_id=c.id, at=T0, price=1000)
    with db.session() as s:
        metrics._add_order_fallback(s, customer_id=c.id, at=T0 - timedelta(days=1), total=500)
        s.add(Order(customer_id=c.id, channel="store", status="placed", ordered_at=T0 - timedelta(days=1),
                    currency="JPY", total=500, refunded=0, properties={}))  # fmt: skip
        d = make_customer(s, name="新規")
        s.add(Order(customer_id=d.id, channel="store", status="placed", ordered_at=T0, currency="JPY",
                    total=10, refunded=0, properties={}))  # fmt: skip
    with db.session(
        write=False
    ) as s:  # the fallback kept c right; d (inserted behind the service) has no row
        assert [x.customer_id for x in service.check_metrics(s)] == [d.id]
    with db.session() as s:
        s.execute(update(CustomerMetrics).values(total_spend=0))
        source = metrics._aggregate(None).add_columns(
            metrics.literal(T0, metrics.UTCDateTime()).label("updated_at")
        )
        metrics._write_fallback(s, source)
    _no_drift(db)
    assert _metrics(db, c.id) == (2, T0 - timedelta(days=1), T0, 1500, 750)


def _orders_for(customer_id: int) -> list[dict]:
    base = [
        (T0, "store", "paid", [("A", 2, 300), ("B", 1, 120)]),
        (T0 + timedelta(days=10), "online", "shipped", [("B", 3, 120)]),
        (T0 + timedelta(days=40), "phone", "cancelled", [("A", 1, 300)]),
        (T0 - timedelta(days=5), "marketplace", "returned", [("A", 1, 300)]),
        (T0 + timedelta(days=50), "online", "placed", [("A", 1, 250), ("B", 2, 120)]),
    ]
    return [
        {"customer_id": customer_id, "ordered_at": at, "channel": ch, "status": st,
         "lines": [{"sku": sku, "name": sku, "quantity": q, "unit_price": p} for sku, q, p in lines]}
        for at, ch, st, lines in base
    ]  # fmt: skip


def test_bulk_path_equals_the_per_order_path(db: Database) -> None:
    with db.session() as s:
        make_product(s, sku="A", name="りんご", price=300)
        make_product(s, sku="B", name="みかん", price=120)
        one, bulk = make_customer(s, name="一件ずつ"), make_customer(s, name="まとめて")
        for o in _orders_for(one.id):
            service.place_order(s, actor=TEST_ACTOR, data=OrderCreate(**o))
    with db.session() as s:
        result = service.bulk_insert_orders(s, _orders_for(bulk.id), actor=TEST_ACTOR)
    assert len(result.order_ids) == 5
    assert _metrics(db, one.id) == _metrics(db, bulk.id) == (
        3, T0, T0 + timedelta(days=50), 1570, 523,
    )  # fmt: skip
    with db.session(write=False) as s:
        totals = [
            sorted(s.scalars(select(Order.total).where(Order.customer_id == cid)).all())
            for cid in (one.id, bulk.id)
        ]
        imported = s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "import"))
        placed = s.scalar(
            select(func.count())
            .select_from(TimelineEntry)
            .where(TimelineEntry.customer_id == bulk.id, TimelineEntry.kind == "order_placed")
        )
    assert totals[0] == totals[1] and imported == 5 and placed == 5
    _no_drift(db)


def test_bulk_is_idempotent_by_external_id_and_all_or_nothing(db: Database) -> None:
    with db.session() as s:
        make_product(s, sku="A", name="りんご", price=300)
        make_product(s, sku="B", name="みかん", price=120)
        c = make_customer(s)
    rows = [{**o, "external_id": f"SHOP-{i}"} for i, o in enumerate(_orders_for(c.id))]
    with db.session() as s:
        assert len(service.bulk_insert_orders(s, rows, actor=TEST_ACTOR).order_ids) == 5
    with db.session() as s:
        again = service.bulk_insert_orders(s, rows + [rows[0]], actor=TEST_ACTOR)
    assert again.order_ids == [] and len(again.skipped_external_ids) == 6
    bad = [{**rows[0], "external_id": "NEW-1"}, {**rows[1], "external_id": "NEW-2", "customer_id": 99999,
            "lines": [{"name": "x", "quantity": -1, "unit_price": 5}]}]  # fmt: skip
    with pytest.raises(ValidationFailed) as info, db.session() as s:
        service.bulk_insert_orders(s, bad, actor=TEST_ACTOR)
    assert [p[0] for p in info.value.problems] == ["orders.1.customer_id", "orders.1.lines.0.quantity"]
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 5


def test_merge_moves_orders_and_undo_moves_them_back(db: Database) -> None:
    hooks = {p.name: p for p in participants()}["commerce"]
    with db.session() as s:
        keep, gone = make_customer(s, name="残る"), make_customer(s, name="統合される")
        make_order(s, customer_id=keep.id, at=T0, price=1000)
        make_order(s, customer_id=gone.id, at=T0 - timedelta(days=9), price=3000)
        make_order(s, customer_id=gone.id, at=T0 + timedelta(days=9), price=2000)
    with db.session() as s:
        moved = hooks.move(s, gone.id, keep.id)
    assert len(moved["orders"]) == 2
    assert _metrics(db, keep.id) == (3, T0 - timedelta(days=9), T0 + timedelta(days=9), 6000, 2000)
    assert _metrics(db, gone.id) == (0, None, None, 0, 0)
    with db.session() as s:  # an order placed for the survivor after the merge stays with it on undo
        make_order(s, customer_id=keep.id, at=T0 + timedelta(days=20), price=10)
        hooks.move_back(s, gone.id, keep.id, moved)
    assert _metrics(db, gone.id) == (2, T0 - timedelta(days=9), T0 + timedelta(days=9), 5000, 2500)
    assert _metrics(db, keep.id) == (2, T0, T0 + timedelta(days=20), 1010, 505)
    _no_drift(db)


def test_a_mix_of_writes_leaves_no_drift(db: Database) -> None:
    import random

    rng = random.Random(3)
    with db.session() as s:
        customers = [make_customer(s, name=f"客{i}") for i in range(6)]
        make_product(s, sku="P", price=450)
        orders = []
        for _ in range(40):
            cust = rng.choice(customers)
            orders.append(make_order(
                s, customer_id=cust.id, at=T0 + timedelta(hours=rng.randint(-500, 500)),
                lines=[{"sku": "P", "quantity": rng.randint(1, 3)}, {"name": "袋", "unit_price": 5}],
                status=rng.choice(["placed", "paid", "shipped"]),
            ))  # fmt: skip
    for order in orders:
        with db.session() as s:
            action = rng.choice(["none", "cancel", "return", "refund", "ship"])
            current = s.get(Order, order.id)
            assert current is not None
            try:
                if action == "cancel":
                    service.change_status(s, actor=TEST_ACTOR, order_id=order.id, status="cancelled")
                elif action == "return":
                    line = s.scalars(select(OrderLine).where(OrderLine.order_id == order.id)).first()
                    assert line is not None
                    service.return_lines(
                        s,
                        actor=TEST_ACTOR,
                        order_id=order.id,
                        lines=[ReturnLineIn(line_id=line.id, quantity=1)],
                    )
                elif action == "refund" and current.total > 0:
                    service.refund(
                        s, actor=TEST_ACTOR, order_id=order.id, amount=rng.randint(1, current.total)
                    )
                elif action == "ship":
                    service.change_status(s, actor=TEST_ACTOR, order_id=order.id, status="shipped")
            except Conflict:
                s.rollback()  # not allowed in this status: nothing changes
    _no_drift(db)
    with db.session(write=False) as s:
        stored = {m.customer_id: (m.order_count, m.total_spend) for m in s.scalars(select(CustomerMetrics))}
    with db.session() as s:
        service.recompute_metrics(s)
    with db.session(write=False) as s:
        assert stored == {
            m.customer_id: (m.order_count, m.total_spend) for m in s.scalars(select(CustomerMetrics))
        }


def test_customer_merge_and_undo_carry_orders_and_metrics(db: Database) -> None:
    from kokyaku.customers.merge import merge_customers, undo_merge

    with db.session() as s:
        keep, gone = make_customer(s, name="山田 太郎"), make_customer(s, name="山田 太郎")
        make_order(s, customer_id=keep.id, at=T0, price=1000)
        make_order(s, customer_id=gone.id, at=T0 + timedelta(days=1), price=3000)
    with db.session() as s:
        merge_id = merge_customers(s, actor=TEST_ACTOR, survivor_id=keep.id, merged_id=gone.id).id
    assert _metrics(db, keep.id) == (2, T0, T0 + timedelta(days=1), 4000, 2000)
    assert _metrics(db, gone.id)[0] == 0
    with db.session(write=False) as s:
        assert set(s.scalars(select(Order.customer_id))) == {keep.id}
    with pytest.raises(ValidationFailed) as info, db.session() as s:  # the old id no longer takes orders
        make_order(s, customer_id=gone.id, at=T0, price=1)
    assert info.value.problems == [
        (
            "customer_id",
            "Customer {id} was merged into customer {survivor_id}.",
            {"id": gone.id, "survivor_id": keep.id},
        )
    ]
    with pytest.raises(ValidationFailed) as info, db.session() as s:
        service.bulk_insert_orders(s, _orders_for(gone.id), actor=None)
    assert info.value.problems[0][:2] == (
        "orders.0.customer_id",
        "Customer {id} was merged into customer {survivor_id}.",
    )
    with db.session() as s:
        undo_merge(s, actor=TEST_ACTOR, merge_id=merge_id)
    assert _metrics(db, keep.id) == (1, T0, T0, 1000, 1000)
    assert _metrics(db, gone.id) == (1, T0 + timedelta(days=1), T0 + timedelta(days=1), 3000, 3000)
    _no_drift(db)
