"""What keeping customer_metrics current costs an order insert.

The same orders are placed through `commerce.service.place_order` (order, lines, audit row, timeline entry
and the metrics UPSERT) and through `commerce.service.insert_order` (everything but the metrics), in
alternating rounds in the same run, one transaction per order as the API does. The difference is the cost of
metrics maintenance; the UPSERT is also timed on its own. Also measured: a void change (cancel, which
re-aggregates the customer), and the set-based recompute and drift check over the whole database.

    python bench/orders_bench.py [--customers 5000] [--orders 4000] [--rounds 8]
    python bench/orders_bench.py --pg postgresql+psycopg://user:pw@127.0.0.1:5432/kokyaku_bench
    python bench/orders_bench.py --existing sqlite:///big.db   # recompute/check on a demo database only
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from kokyaku.audit.service import Actor  # noqa: E402
from kokyaku.commerce import metrics, service  # noqa: E402
from kokyaku.commerce.models import Order  # noqa: E402
from kokyaku.commerce.schemas import OrderCreate, ProductIn  # noqa: E402
from kokyaku.customers.models import Customer  # noqa: E402
from kokyaku.db import Database  # noqa: E402
from kokyaku.demo.generate import generate  # noqa: E402
from kokyaku.migrate import upgrade  # noqa: E402

BENCH = Actor.system("bench")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _fresh_pg(url: str) -> str:
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    return url


def _setup(url: str, customers: int) -> tuple[Database, list[int]]:
    upgrade(url)
    db = Database(url)
    generate(db, customers=customers, seed=11, orders_per_customer=3.0, touchpoints_per_customer=0)
    with db.session() as s:
        for i in range(20):
            service.create_product(
                s, actor=BENCH, data=ProductIn(sku=f"B-{i:02d}", name=f"商品{i}", price=300 + 50 * i)
            )
        ids = list(s.scalars(select(Customer.id)))
    return db, ids


def _orders(rng: random.Random, ids: list[int], n: int) -> list[OrderCreate]:
    return [
        OrderCreate(
            customer_id=rng.choice(ids),
            channel=rng.choice(["store", "online"]),
            status="paid",
            ordered_at=T0 + timedelta(minutes=rng.randint(0, 500_000)),
            lines=[
                {"sku": f"B-{rng.randint(0, 19):02d}", "quantity": rng.randint(1, 3)}
                for _ in range(rng.randint(1, 3))
            ],  # type: ignore[misc]
        )
        for _ in range(n)
    ]


def _run(
    db: Database, orders: list[OrderCreate], with_metrics: bool, upserts: list[tuple[float, float]]
) -> tuple[float, float]:
    """(wall, CPU) seconds per order, one transaction per order. CPU time is this process's: on SQLite that
    includes the database engine; on a machine shared with other work it is the steadier figure."""
    wall, cpu = time.perf_counter(), time.process_time()
    for data in orders:
        with db.session() as s:
            order = service.insert_order(s, actor=BENCH, data=data)
            if with_metrics:  # exactly what place_order adds
                w, c = time.perf_counter(), time.process_time()
                metrics.add_order(s, customer_id=order.customer_id, at=order.ordered_at, total=order.total)
                upserts.append((time.perf_counter() - w, time.process_time() - c))
    n = len(orders)
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def _place_matches_parts(db: Database, data: OrderCreate) -> None:
    """The timed 'with metrics' variant is exactly what place_order does; check it once."""
    with db.session() as s:
        placed = service.place_order(s, actor=BENCH, data=data)
        assert placed.created


def _timed(fn):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _scale(db: Database) -> dict[str, float]:
    """Whole-database check and recompute (wall and CPU seconds), and the drift left after the recompute."""
    with db.session(write=False) as s:
        customers = s.scalar(select(func.count()).select_from(Customer)) or 0
        orders = s.scalar(select(func.count()).select_from(Order)) or 0

    def check() -> int:
        with db.session(write=False) as s:
            return len(service.check_metrics(s))

    def recompute() -> int:
        with db.session() as s:
            return service.recompute_metrics(s)

    drifts, check_wall, check_cpu = _timed(check)
    rows, re_wall, re_cpu = _timed(recompute)
    return {
        "customers": customers, "orders": orders, "drifts": drifts, "rows": rows, "drifts_after": check(),
        "check_wall": check_wall, "check_cpu": check_cpu, "recompute_wall": re_wall, "recompute_cpu": re_cpu,
    }  # fmt: skip


def _print_scale(scale: dict[str, float], note: str = "") -> None:
    check, recompute = (
        (scale["check_wall"], scale["check_cpu"]),
        (scale["recompute_wall"], scale["recompute_cpu"]),
    )
    print(f"check_metrics over all:     {check[0]:8.2f} s wall {check[1]:8.2f} s CPU, "
          f"{scale['drifts']} drifting customers{note}")  # fmt: skip
    print(f"recompute_metrics over all: {recompute[0]:8.2f} s wall {recompute[1]:8.2f} s CPU, "
          f"{scale['rows']:,} rows; drift afterwards: {scale['drifts_after']}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--orders", type=int, default=4000, help="orders per variant")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--pg", help="PostgreSQL URL of a scratch database (dropped and recreated)")
    p.add_argument("--existing", help="only time check and recompute on this database")
    args = p.parse_args()

    if args.existing:
        db = Database(args.existing)
        scale = _scale(db)
        print(f"database: {args.existing}, customers {scale['customers']:,}, orders {scale['orders']:,}")
        _print_scale(scale)
        return
    url = _fresh_pg(args.pg) if args.pg else f"sqlite:///{tempfile.mkdtemp()}/orders_bench.db"
    name = "PostgreSQL" if args.pg else "SQLite"
    db, ids = _setup(url, args.customers)
    rng = random.Random(5)
    batch = args.orders // args.rounds
    with_m: list[tuple[float, float]] = []
    without: list[tuple[float, float]] = []
    upserts: list[tuple[float, float]] = []
    _place_matches_parts(db, _orders(rng, ids, 1)[0])
    for _ in range(5):  # warm up both paths
        _run(db, _orders(rng, ids, 20), True, [])
        _run(db, _orders(rng, ids, 20), False, [])
    for r in range(args.rounds):
        a, b = _orders(rng, ids, batch), _orders(rng, ids, batch)
        # alternate which goes first, so that changes in machine load hit both alike
        if r % 2:
            without.append(_run(db, b, False, []))
            with_m.append(_run(db, a, True, upserts))
        else:
            with_m.append(_run(db, a, True, upserts))
            without.append(_run(db, b, False, []))
    with db.session(write=False) as s:
        cancel_ids = list(s.scalars(select(Order.id).where(Order.status == "paid").limit(300)))
    wall, cpu = time.perf_counter(), time.process_time()
    for oid in cancel_ids:
        with db.session() as s:
            service.change_status(s, actor=BENCH, order_id=oid, status="cancelled")
    cancel = ((time.perf_counter() - wall) / len(cancel_ids), (time.process_time() - cpu) / len(cancel_ids))
    scale = _scale(db)

    def med(xs: list[tuple[float, float]], k: int) -> float:
        return statistics.median(x[k] for x in xs) * 1000

    print(f"database: {name}, customers {scale['customers']:,}, orders {scale['orders']:,}")
    print(f"{args.rounds} alternating rounds of {batch} orders per variant, one transaction per order")
    print(f"{'ms per order':34s} {'wall':>8s} {'CPU':>8s}")
    rows = [
        ("place_order (with metrics)", med(with_m, 0), med(with_m, 1)),
        ("same insert without metrics", med(without, 0), med(without, 1)),
        ("metrics maintenance adds", med(with_m, 0) - med(without, 0), med(with_m, 1) - med(without, 1)),
        ("the metrics UPSERT alone (median)", med(upserts, 0), med(upserts, 1)),
        ("cancel (re-aggregates 1 customer)", cancel[0] * 1000, cancel[1] * 1000),
    ]
    for label, w, c in rows:
        print(f"{label:34s} {w:8.3f} {c:8.3f}")
    print(f"ratio with/without metrics (CPU)   {med(with_m, 1) / med(without, 1):8.3f}")
    _print_scale(scale, " (the orders inserted without maintenance, on purpose)")


if __name__ == "__main__":
    main()
