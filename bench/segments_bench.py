"""Segments benchmark: segment counts, RFM + lifecycle recomputation, and the customer page with its
"Segments & lifecycle" section, on generated customers and orders.

    .venv/bin/python bench/segments_bench.py [--customers 1000000] [--orders 10000000] [--reuse]
        [--db sqlite:///bench/out/segments.db | postgresql+psycopg://...] [--out bench/RESULTS_segments.md]

The data comes from the demo generator (customers, their orders from a repeat-buying process, touchpoints).
Should the database hold fewer orders than asked (a demo generator without orders), the bench adds its own:
one line each, 200 products in 20 categories, written with raw batched inserts (SQLite) or COPY (PostgreSQL),
customer_metrics computed in numpy. `--reuse` keeps the data of an earlier run with the same database.
Each figure is printed with a reference measured in the same run (the demographic half of the segment through
the index that existed before; the customer page without sections), so that ratios carry across machines, and
with the CPU time of this process (on SQLite the database runs in-process), which a shared machine's other
load does not inflate the way it inflates wall time.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kokyaku.audit.service import Actor  # noqa: E402
from kokyaku.commerce.models import ORDER_CHANNELS, CustomerMetrics, Order, Product  # noqa: E402
from kokyaku.customers.models import Customer  # noqa: E402
from kokyaku.db import Database  # noqa: E402
from kokyaku.segments import service as seg  # noqa: E402
from kokyaku.segments.lifecycle import LifecycleRules  # noqa: E402
from kokyaku.segments.recompute import recompute_all  # noqa: E402

TZ = "Asia/Tokyo"
DAY = 86_400
FOUR_CONDITIONS = {
    "op": "and",
    "conditions": [
        {"field": "prefecture", "operator": "in", "value": ["東京都", "神奈川県"]},
        {"field": "age", "operator": "between", "value": [30, 49]},
        {"field": "order_count", "operator": "gte", "value": 5},
        {"field": "days_since_last_order", "operator": "lte", "value": 180},
    ],
}
OTHER_SEGMENTS = {
    "gender + age + total spend + recency": {
        "op": "and",
        "conditions": [
            {"field": "gender", "operator": "eq", "value": "female"},
            {"field": "age", "operator": "between", "value": [25, 34]},
            {"field": "total_spend", "operator": "gte", "value": 100_000},
            {"field": "days_since_last_order", "operator": "lte", "value": 90},
        ],
    },
    "nested OR + RFM segment + lifecycle": {
        "op": "and",
        "conditions": [
            {
                "op": "or",
                "conditions": [
                    {"field": "prefecture", "operator": "in", "value": ["大阪府"]},
                    {"field": "interests", "operator": "any_of", "value": ["ワイン", "wine"]},
                ],
            },
            {"field": "rfm_segment", "operator": "in", "value": ["champions", "loyal"]},
            {"field": "lifecycle_stage", "operator": "in", "value": ["loyal", "repeat"]},
        ],
    },
    "bought category within 90 days": {
        "op": "and",
        # the category is filled in from the data (the first of the catalogue)
        "conditions": [{"field": "bought_category", "operator": "any_of", "value": ["?"], "days": 90}],
    },
    "channels used (orders + touchpoints)": {
        "op": "and",
        "conditions": [{"field": "channels", "operator": "any_of", "value": ["sns"]}],
    },
}


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


# ---------------------------------------------------------------- data


def generate(db: Database, customers: int, orders: int, seed: int) -> None:
    from kokyaku.demo.generate import generate as demo

    with db.session() as s:
        have = s.scalar(select(func.count()).select_from(Customer)) or 0
    if have < customers:
        log(f"demo customers: {customers - have} to generate")
        demo(db, customers=customers - have, seed=seed)
    with db.session() as s:
        have_orders = s.scalar(select(func.count()).select_from(Order)) or 0
        ids = np.array(
            s.scalars(select(Customer.id).where(Customer.kind == "person").order_by(Customer.id)).all()
        )
    if have_orders >= orders * 0.99:
        log(f"{have_orders} orders exist")
        return
    log(f"orders: generating {orders} for {len(ids)} people")
    rng = np.random.default_rng(seed)
    now = int(datetime.now(UTC).timestamp())
    buyers = ids[rng.random(len(ids)) < 0.8]
    # orders per buyer: 1 + negative binomial, scaled so that the total is `orders`
    weight = rng.gamma(0.6, 1.0, len(buyers)) + 0.05
    counts = 1 + rng.poisson(weight / weight.sum() * max(orders - len(buyers), 0))
    counts = counts.astype(np.int64)
    n = int(counts.sum())
    first = now - rng.integers(0, 5 * 365 * DAY, len(buyers))
    lifetime = rng.exponential(2.5 * 365 * DAY, len(buyers)).astype(np.int64) + DAY
    span = np.minimum(now - first, lifetime)
    owner = np.repeat(np.arange(len(buyers)), counts)
    at = first[owner] + (rng.random(n) * span[owner]).astype(np.int64)
    at[np.r_[0, np.cumsum(counts)[:-1]]] = first  # each buyer's first order is at `first`
    customer = buyers[owner]
    channel = rng.choice(len(ORDER_CHANNELS), n, p=[0.3, 0.4, 0.05, 0.1, 0.08, 0.04, 0.03])
    status = np.where(rng.random(n) < 0.05, "cancelled", "paid")
    product = rng.integers(1, 201, n)
    qty = rng.integers(1, 4, n)
    price = (np.exp(rng.normal(7.8, 0.7, 200)) // 10 * 10).astype(np.int64)
    total = price[product - 1] * qty
    _write_orders(db, customer, at, channel, status, product, qty, price, total)
    _write_metrics(db, customer, at, status, total)


def _ts(seconds: np.ndarray) -> list[str]:
    text_ = np.datetime_as_string(seconds.astype("datetime64[s]").astype("datetime64[us]"), unit="us")
    return [t.replace("T", " ") for t in text_.tolist()]


def _bulk(db: Database, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    with db.session() as s:
        if db.is_sqlite:
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            s.connection().exec_driver_sql(sql, rows)
        else:
            raw = s.connection().connection.driver_connection
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[union-attr]
                for row in rows:
                    copy.write_row(row)


def _write_orders(db: Database, customer, at, channel, status, product, qty, price, total) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        s.execute(text("DELETE FROM order_lines"))
        s.execute(text("DELETE FROM orders"))
        s.execute(text("DELETE FROM products"))
    stamp = _ts(np.array([int(time.time())]))[0]
    products = [
        (i, f"SKU-{i:04d}", f"商品 {i}", f"cat-{(i - 1) % 20:02d}", int(price[i - 1]), "JPY", stamp)
        for i in range(1, 201)
    ]
    _bulk(db, "products", ["id", "sku", "name", "category", "price", "currency", "created_at"], products)
    chunk = 500_000
    names = np.array(ORDER_CHANNELS)
    for start in range(0, len(customer), chunk):
        end = min(start + chunk, len(customer))
        ids = range(start + 1, end + 1)
        when = _ts(at[start:end])
        rows = list(
            zip(
                ids,
                customer[start:end].tolist(),
                names[channel[start:end]].tolist(),
                status[start:end].tolist(),
                when,
                ["JPY"] * (end - start),
                total[start:end].tolist(),
                [0] * (end - start),
                ["{}"] * (end - start),
                when,
                strict=True,
            )
        )
        _bulk(
            db,
            "orders",
            [
                "id",
                "customer_id",
                "channel",
                "status",
                "ordered_at",
                "currency",
                "total",
                "refunded",
                "properties",
                "created_at",
            ],
            rows,
        )
        lines = list(
            zip(
                ids,
                ids,
                product[start:end].tolist(),
                [f"SKU-{p:04d}" for p in product[start:end].tolist()],
                [f"商品 {p}" for p in product[start:end].tolist()],
                qty[start:end].tolist(),
                price[product[start:end] - 1].tolist(),
                [0] * (end - start),
                strict=True,
            )
        )
        _bulk(
            db,
            "order_lines",
            ["id", "order_id", "product_id", "sku", "name", "quantity", "unit_price", "returned_quantity"],
            lines,
        )
        log(f"orders {end}/{len(customer)}")


def _write_metrics(db: Database, customer, at, status, total) -> None:  # type: ignore[no-untyped-def]
    live = status != "cancelled"
    c, t, v = customer[live], at[live], total[live]
    order = np.lexsort((t, c))
    c, t, v = c[order], t[order], v[order]
    starts = np.r_[0, np.flatnonzero(np.diff(c)) + 1]
    ids = c[starts]
    count = np.diff(np.r_[starts, len(c)])
    spend = np.add.reduceat(v, starts)
    first = t[starts]
    last = np.maximum.reduceat(t, starts)
    stamp = _ts(np.array([int(time.time())]))[0]
    rows = list(
        zip(
            ids.tolist(),
            count.tolist(),
            _ts(first),
            _ts(last),
            spend.tolist(),
            (spend // count).tolist(),
            [stamp] * len(ids),
            strict=True,
        )
    )
    with db.session() as s:
        s.execute(text("DELETE FROM customer_metrics"))
    _bulk(
        db,
        "customer_metrics",
        [
            "customer_id",
            "order_count",
            "first_order_at",
            "last_order_at",
            "total_spend",
            "avg_order_value",
            "updated_at",
        ],
        rows,
    )
    log(f"metrics for {len(ids)} buyers")


def analyze(db: Database) -> None:
    """Planner statistics (and, on PostgreSQL, the visibility map that index-only scans need)."""
    if db.is_sqlite:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    else:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")


# ---------------------------------------------------------------- measuring


CPU: dict[int, list[float]] = {}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Wall times of `repeat` runs (and in CPU[id(list)] this process's CPU time of each: on SQLite the query
    runs in-process, so CPU time shows the cost without the other load of a shared machine)."""
    out: list[float] = []
    cpu: list[float] = []
    result = None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        out.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU[id(out)] = cpu
    return out, result


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def bench_counts(db: Database, repeat: int) -> list[str]:
    lines = []
    with db.session(write=False) as s:
        category = s.scalar(select(func.min(Product.category)))
        OTHER_SEGMENTS["bought category within 90 days"]["conditions"][0]["value"] = [category]
        # reference: the demographic half alone through the index that existed before (prefecture, id)
        tokyo = (
            select(func.count()).select_from(Customer).where(Customer.prefecture.in_(["東京都", "神奈川県"]))
        )
        ref, total = timed(lambda: s.scalar(tokyo), repeat)
        times, n = timed(lambda: seg.count_rules(s, FOUR_CONDITIONS, TZ), repeat)
        ratio = p95(times) / p95(ref)
        cpu = CPU[id(times)]
        log(
            f"four-condition count = {n}: p95 {p95(times) * 1000:.1f} ms wall, {p95(cpu) * 1000:.1f} ms CPU "
            f"(reference: {total} customers in Tokyo or Kanagawa counted, p95 {p95(ref) * 1000:.1f} ms; "
            f"ratio {ratio:.2f})"
        )
        lines.append(
            f"| four conditions (prefecture, age, order count, days since last order) | {n} | "
            f"{statistics.median(times) * 1000:.1f} | **{p95(times) * 1000:.1f}** | {p95(cpu) * 1000:.1f} | "
            f"{ratio:.2f} |"
        )
        for name, rules in OTHER_SEGMENTS.items():
            t, k = timed(lambda r=rules: seg.count_rules(s, r, TZ), max(3, repeat // 5))
            log(f"{name} = {k}: p95 {p95(t) * 1000:.1f} ms wall, {p95(CPU[id(t)]) * 1000:.1f} ms CPU")
            lines.append(
                f"| {name} | {k} | {statistics.median(t) * 1000:.1f} | {p95(t) * 1000:.1f} | "
                f"{p95(CPU[id(t)]) * 1000:.1f} | {p95(t) / p95(ref):.2f} |"
            )
        lines.append(
            "| reference: `count(*) WHERE prefecture IN (Tokyo, Kanagawa)` (existing prefecture index) | "
            f"{total} | "
            f"{statistics.median(ref) * 1000:.1f} | {p95(ref) * 1000:.1f} | {p95(CPU[id(ref)]) * 1000:.1f} | "
            f"1.00 |"
        )
        plan = (
            s.execute(
                text(
                    "EXPLAIN QUERY PLAN "
                    + str(
                        seg.compile_rules(s, FOUR_CONDITIONS, TZ)
                        .select_from(func.count())
                        .compile(compile_kwargs={"literal_binds": True})
                    )
                )
            ).all()
            if db.is_sqlite
            else []
        )
        for row in plan:
            log(f"  plan: {row[-1]}")
    return lines


def bench_recompute(db: Database) -> list[str]:
    # Empty as before the first run ever: TRUNCATE on PostgreSQL, where a DELETE would leave every dead row
    # for the first run's writes to step over.
    clear = "DELETE FROM {}" if db.is_sqlite else "TRUNCATE {}"
    with db.session() as s:
        for table in ("lifecycle_changes", "customer_lifecycle", "customer_rfm", "segment_recompute_runs"):
            s.execute(text(clear.format(table)))
    with db.session(write=False) as s:
        start = time.perf_counter()
        ref_rows = s.execute(select(CustomerMetrics.customer_id, CustomerMetrics.total_spend)).all()
        ref = time.perf_counter() - start
    lines = []
    # The daily job's run is the one a day after the previous: recency grows, some customers cross a quintile
    # or a lifecycle threshold, and only they are written.
    today = datetime.now(UTC)
    runs = (
        ("first run (every buyer written)", today),
        ("second run (only changes written)", today),
        ("next day's run (only changes written)", today + timedelta(days=1)),
        ("a week later (only changes written)", today + timedelta(days=8)),
    )
    for label, now in runs:
        start, start_cpu = time.perf_counter(), time.process_time()
        with db.session() as s:
            run = recompute_all(s, rules=LifecycleRules(), tz=TZ, now=now, trigger="bench")
            stats = (run.active, run.rfm_written, run.stage_changes)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        log(
            f"recompute {label}: {wall:.2f} s wall, {cpu:.2f} s CPU for {stats[0]} buyers "
            f"(rfm written {stats[1]}, stage changes {stats[2]}); "
            f"reference: reading 2 columns of customer_metrics {ref:.2f} s"
        )
        lines.append(
            f"| {label} | {stats[0]} | {stats[1]} | {stats[2]} | **{wall:.2f}** | {cpu:.2f} | "
            f"{wall / ref:.1f} |"
        )
    lines.append(
        f"| reference: `SELECT customer_id, total_spend FROM customer_metrics` | {len(ref_rows)} | | | "
        f"{ref:.2f} | | 1.0 |"
    )
    return lines


def bench_page(db: Database, url: str, repeat: int) -> list[str]:
    from fastapi.testclient import TestClient

    from kokyaku.app import create_app
    from kokyaku.auth import service as auth
    from kokyaku.auth.models import User
    from kokyaku.auth.schemas import UserCreate
    from kokyaku.config import Settings
    from kokyaku.segments.models import Segment
    from kokyaku.web import customers as web_customers

    settings = Settings(
        environment="test",
        database_url=url,
        secret_key="bench",
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        run_worker_in_process=False,
    )
    password = "bench-password-123"
    with db.session() as s:
        user = s.scalar(select(User).where(User.email == "bench@example.com"))
        if user is None:
            auth.create_user(
                s,
                settings,
                actor=Actor.system("bench"),
                data=UserCreate(email="bench@example.com", name="bench", role="admin", password=password),
            )  # type: ignore[arg-type]
        if not s.scalar(select(func.count()).select_from(Segment)):
            for i, rules in enumerate([FOUR_CONDITIONS, *OTHER_SEGMENTS.values()]):
                s.add(Segment(name=f"bench {i}", kind="dynamic", rules=rules))
    app = create_app(settings, db)
    client = TestClient(app)
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"email": "bench@example.com", "password": password, "csrf_token": token})
    with db.session(write=False) as s:
        ids = s.scalars(select(CustomerMetrics.customer_id).order_by(func.random()).limit(repeat)).all()

    cpu_of: dict[int, list[float]] = {}

    def run() -> list[float]:
        out, cpu = [], []
        for cid in ids:
            start, start_cpu = time.perf_counter(), time.process_time()
            resp = client.get(f"/customers/{cid}")
            out.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            assert resp.status_code == 200
        cpu_of[id(out)] = cpu
        return out

    # Only this domain's section is measured: the other domains' sections are theirs to benchmark (and their
    # tables may be newer than this data). Reference: the same page with no section at all.
    saved = list(web_customers.SECTIONS)
    web_customers.SECTIONS[:] = [x for x in saved if x.key == "segments"]
    for cid in ids[:5]:  # warm up
        assert client.get(f"/customers/{cid}").status_code == 200
    page_text = client.get(f"/customers/{ids[0]}").text
    assert 'data-testid="lifecycle"' in page_text and 'data-testid="rfm"' in page_text
    with_section = run()
    web_customers.SECTIONS[:] = []
    without = run()
    web_customers.SECTIONS[:] = saved
    log(
        f"customer page p95 {p95(with_section) * 1000:.1f} ms with the section, {p95(without) * 1000:.1f} ms "
        f"without"
    )
    cpu_with, cpu_without = cpu_of[id(with_section)], cpu_of[id(without)]
    return [
        f'| customer page with "Segments & lifecycle" ({len(ids)} customers, 5 saved segments) | '
        f"{statistics.median(with_section) * 1000:.1f} | **{p95(with_section) * 1000:.1f}** | "
        f"{p95(cpu_with) * 1000:.1f} | {p95(with_section) / p95(without):.2f} |",
        f"| reference: the same page without any section | {statistics.median(without) * 1000:.1f} | "
        f"{p95(without) * 1000:.1f} | {p95(cpu_without) * 1000:.1f} | 1.00 |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--db", default=f"sqlite:///{ROOT / 'bench/out/segments.db'}")
    parser.add_argument("--reuse", action="store_true", help="keep the data of an earlier run")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=None, help="append the figures as markdown to this file")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: counts,recompute,page")
    args = parser.parse_args()
    os.environ["KOKYAKU_DATABASE_URL"] = args.db
    if args.db.startswith("sqlite"):
        Path(args.db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from kokyaku.migrate import upgrade

    upgrade(args.db)
    db = Database(args.db)
    if not args.reuse:
        generate(db, args.customers, args.orders, args.seed)
        analyze(db)
    with db.session(write=False) as s:
        n_customers = s.scalar(select(func.count()).select_from(Customer))
        n_orders = s.scalar(select(func.count()).select_from(Order))
    log(f"{n_customers} customers, {n_orders} orders on {db.engine.dialect.name}")
    skip = set(args.skip.split(","))
    out = [
        f"### {db.engine.dialect.name}: {n_customers:,} customers, {n_orders:,} orders",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}",
        "",
    ]
    if "recompute" not in skip:
        out += [
            "| RFM + lifecycle recomputation | buyers | RFM rows written | stage changes | seconds "
            "| CPU s (client) | ratio |",
            "|---|---|---|---|---|---|---|",
            *bench_recompute(db),
            "",
        ]
        analyze(db)
    if "counts" not in skip:
        out += [
            "| segment count | members | median ms | p95 ms | p95 CPU ms (client process) "
            "| ratio to reference p95 |",
            "|---|---|---|---|---|---|",
            *bench_counts(db, args.repeat),
            "",
        ]
    if "page" not in skip:
        out += [
            "| page | median ms | p95 ms | p95 CPU ms (app and SQLite in-process) | ratio |",
            "|---|---|---|---|---|",
            *bench_page(db, args.db, 200),
            "",
        ]
    text_ = "\n".join(out)
    print(text_)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(text_ + "\n")


if __name__ == "__main__":
    main()
