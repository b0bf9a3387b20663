"""Timeline latency for customers with 1,000 entries each, among demo customers with their own touchpoints:
the API (first page, deep pages via the cursor, a channel filter), the customer page with its Timeline
section, and the service call in-process, against a reference measured in the same run: the same page
query through a bare DB-API cursor (no ORM, no HTTP).

    python bench/timeline_bench.py [--customers 20000] [--requests 500]
    python bench/timeline_bench.py --pg postgresql+psycopg://user:pw@127.0.0.1:5432/kokyaku
"""

import argparse
import json
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_bench import _fresh_pg, _seed  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from kokyaku.audit.service import Actor  # noqa: E402
from kokyaku.auth import service as auth  # noqa: E402
from kokyaku.auth.schemas import UserCreate  # noqa: E402
from kokyaku.config import Settings  # noqa: E402
from kokyaku.customers.models import Customer  # noqa: E402
from kokyaku.db import Database  # noqa: E402
from kokyaku.demo.touchpoints import generate_touchpoints  # noqa: E402
from kokyaku.timeline import entries, service  # noqa: E402
from kokyaku.timeline.models import TimelineEntry  # noqa: E402

BENCH = Actor.system("bench")
TARGETS = 20  # customers with 1,000 entries each
PER_TARGET = 1000
PASSWORD = "bench-password-1"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, port: int) -> None:
    import uvicorn

    os.environ["KOKYAKU_DATABASE_URL"] = url
    os.environ["KOKYAKU_RUN_WORKER_IN_PROCESS"] = "false"
    uvicorn.run("kokyaku.asgi:app", host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _setup(url: str, customers: int) -> tuple[list[int], str]:
    _seed(url, customers)
    db = Database(url)
    with db.session(write=False) as s:
        ids = list(s.scalars(select(Customer.id).where(Customer.kind == "person").order_by(Customer.id)))
    generate_touchpoints(db, customer_ids=ids, per_customer=5.0, seed=3)
    rng = random.Random(2)
    targets = rng.sample(ids, TARGETS)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    kinds = [("order_placed", "online"), ("order_placed", "store"), ("order_status_changed", None),
             ("touchpoint", "email"), ("touchpoint", "web"), ("touchpoint", "phone"), ("touchpoint", "store"),
             ("survey_answered", "web")]  # fmt: skip
    with db.session() as s:
        for cid in targets:
            rows = []
            for i in range(PER_TARGET):
                kind, channel = kinds[rng.randrange(len(kinds))]
                props: dict[str, Any] = {"type": "page_view"} if kind == "touchpoint" else {}
                if kind.startswith("order"):
                    props = {
                        "order_id": i,
                        "total": rng.randrange(500, 50000),
                        "currency": "JPY",
                        "status": "paid",
                    }
                at = start + timedelta(hours=rng.randrange(20000))
                row = {"customer_id": cid, "at": at, "kind": kind, "channel": channel, "summary": "bench"}
                rows.append({**row, "ref_type": None, "ref_id": None, "properties": props})
            entries.bulk_add(s, rows)
        settings = Settings(database_url=url, argon2_time_cost=1, argon2_memory_cost=1024)
        data = UserCreate(email="timeline@example.com", name="Bench", role="sales", password=PASSWORD)  # type: ignore[arg-type]
        user = auth.create_user(s, settings, actor=BENCH, data=data)
        _row, token = auth.create_token(s, actor=BENCH, user=user)
    db.dispose()
    return targets, token


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _time(fn: Any, n: int) -> list[float]:
    for _ in range(min(20, n)):
        fn()  # warm-up
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--pg", help="PostgreSQL base URL: the bench creates its own database beside it")
    args = parser.parse_args()
    if args.pg:
        from sqlalchemy.engine import make_url

        url = _fresh_pg(args.pg, f"{make_url(args.pg).database or 'kokyaku'}_timeline_bench")
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='timeline_bench_')) / 'timeline.db'}"
    t0 = time.perf_counter()
    targets, token = _setup(url, args.customers)
    db = Database(url)
    with db.session(write=False) as s:
        total = s.scalar(select(func.count()).select_from(TimelineEntry))
        # every cursor of every target's timeline, to sample deep pages from
        cursors: list[tuple[int, str]] = []
        for cid in targets:
            cur = None
            while True:
                page = service.list_timeline(s, cid, cursor=cur)
                if page.next_cursor is None:
                    break
                cur = page.next_cursor
                cursors.append((cid, cur))
    print(f"setup: {args.customers:,} customers, {total:,} timeline entries, {TARGETS} customers with "
          f"{PER_TARGET:,} entries each, in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip

    rng = random.Random(9)
    results: dict[str, list[float]] = {}

    # in-process: the service call, and the bare reference
    def service_first() -> None:
        with db.session(write=False) as s:
            service.list_timeline(s, rng.choice(targets))

    results["service first page"] = _time(service_first, args.requests)
    raw = db.engine.raw_connection()
    mark = "?" if db.is_sqlite else "%s"
    sql = ("SELECT id, customer_id, at, kind, channel, summary, ref_type, ref_id, properties "
           f"FROM timeline_entries WHERE customer_id = {mark} "
           "ORDER BY at DESC, id DESC LIMIT 21")  # fmt: skip

    def bare_first() -> None:
        cur = raw.cursor()
        cur.execute(sql, (rng.choice(targets),))
        [json.loads(r[8]) if isinstance(r[8], str) else r[8] for r in cur.fetchall()]

    results["bare first page (reference)"] = _time(bare_first, args.requests)
    raw.close()

    port = _port()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(url, port), daemon=True)
    proc.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

        def get(path: str, client: httpx.Client = api, **params: Any) -> None:
            resp = client.get(path, params=params)
            if resp.status_code != 200:
                raise RuntimeError(f"{path}: {resp.status_code} {resp.text[:200]}")

        results["api first page"] = _time(lambda: get(f"/api/v1/customers/{rng.choice(targets)}/timeline"),
                                          args.requests)  # fmt: skip

        def deep() -> None:
            cid, cur = rng.choice(cursors)
            get(f"/api/v1/customers/{cid}/timeline", cursor=cur)

        results["api deep page (cursor)"] = _time(deep, args.requests)
        results["api channel filter"] = _time(
            lambda: get(f"/api/v1/customers/{rng.choice(targets)}/timeline", channel="phone"), args.requests
        )
        page = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
        login = page.get("/login").text
        csrf = login.split('name="csrf_token" value="')[1].split('"')[0]
        resp = page.post(
            "/login", data={"email": "timeline@example.com", "password": PASSWORD, "csrf_token": csrf}
        )
        assert resp.status_code == 303, resp.text[:300]
        hx = {"HX-Request": "true"}

        def section_more() -> None:
            cid, cur = rng.choice(cursors)
            r = page.get(f"/customers/{cid}/timeline", params={"cursor": cur}, headers=hx)
            assert r.status_code == 200

        results["page: customer page with timeline"] = _time(
            lambda: get(f"/customers/{rng.choice(targets)}", client=page), max(args.requests // 2, 50)
        )
        results["page: htmx more (20 rows)"] = _time(section_more, args.requests)
    finally:
        proc.terminate()
        proc.join()
    db.dispose()

    engine = "SQLite" if db.is_sqlite else "PostgreSQL"
    print(f"database: {engine}; {os.cpu_count()} cores; one client, sequential requests")
    print(f"{'':36}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    summary = {}
    for name, lat in results.items():
        summary[name] = {"n": len(lat), "p50": _pct(lat, 50), "p95": _pct(lat, 95), "p99": _pct(lat, 99)}
        print(f"{name:36}{len(lat):>6}{summary[name]['p50']:>9.2f}{summary[name]['p95']:>9.2f}"
              f"{summary[name]['p99']:>9.2f}")  # fmt: skip
    ref = summary["bare first page (reference)"]
    api_first = summary["api first page"]
    print(f"ratio api first page / bare query: p50 {api_first['p50'] / ref['p50']:.1f}x, "
          f"p95 {api_first['p95'] / ref['p95']:.1f}x")  # fmt: skip
    print(json.dumps({"engine": engine, **summary}))


if __name__ == "__main__":
    main()
