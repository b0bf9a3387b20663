"""Event ingestion through the real HTTP API (uvicorn, one worker) in batches of 1,000, against a reference
measured in the same run: the same touchpoint and timeline rows written by a bare DB-API executemany into an
identical copy of the database, with customer ids already known (no HTTP, JSON, validation or resolution).

    python bench/ingest_bench.py [--events 1000000] [--customers 50000] [--concurrency 1]
    python bench/ingest_bench.py --pg postgresql+psycopg://user:pw@127.0.0.1:5432/kokyaku   # on PostgreSQL

The event mix (see `_events`): known customers by email or phone, anonymous web visitors from a pool (each
browser belongs to one hidden person, some of whom log in later, which stitches their history), logins that
carry an anonymous id with an email, new prospects, external ids, and a few invalid events. After the timed
run the first batches are sent again to show that re-sending stores nothing.
"""

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import queue
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from kokyaku.audit.service import Actor  # noqa: E402
from kokyaku.auth import service as auth  # noqa: E402
from kokyaku.auth.models import User  # noqa: E402
from kokyaku.auth.schemas import UserCreate  # noqa: E402
from kokyaku.config import Settings  # noqa: E402
from kokyaku.customers.models import Customer, Identity  # noqa: E402
from kokyaku.db import Database  # noqa: E402
from kokyaku.demo.generate import generate  # noqa: E402
from kokyaku.kit.normalize import NormalizationError, normalize_phone  # noqa: E402
from kokyaku.migrate import upgrade  # noqa: E402
from kokyaku.timeline.models import TimelineEntry, Touchpoint  # noqa: E402

BENCH = Actor.system("bench")
TYPES_KNOWN = ["email_open", "email_click", "page_view", "cart_add", "purchase"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, port: int) -> None:
    import uvicorn

    os.environ["KOKYAKU_DATABASE_URL"] = url
    os.environ["KOKYAKU_RUN_WORKER_IN_PROCESS"] = "false"
    uvicorn.run("kokyaku.asgi:app", host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- databases


def _fresh_pg(base: str, name: str, template: str | None = None) -> str:
    url = make_url(base)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _pg_exists(base: str, name: str) -> bool:
    admin = create_engine(make_url(base).set(database="postgres"))
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
    admin.dispose()
    return found is not None


def _seed(url: str, customers: int) -> None:
    upgrade(url)
    db = Database(url)
    generate(db, customers=customers, seed=11, touchpoints_per_customer=0)
    if not db.is_sqlite:
        # The demo writes explicit customer ids; move the sequence past them so that prospects get new ids.
        with db.engine.begin() as conn:
            conn.execute(text("SELECT setval(pg_get_serial_sequence('customers', 'id'), "
                              "(SELECT max(id) FROM customers))"))  # fmt: skip
            conn.execute(text("SELECT setval(pg_get_serial_sequence('customer_identities', 'id'), "
                              "(SELECT max(id) FROM customer_identities))"))  # fmt: skip
    db.dispose()


def _token(url: str) -> str:
    settings = Settings(database_url=url, argon2_time_cost=1, argon2_memory_cost=1024)
    db = Database(url)
    with db.session() as s:
        user = s.scalar(select(User).where(User.email == "ingest@example.com"))
        if user is None:
            data = UserCreate(email="ingest@example.com", name="Ingest", role="marketing",  # type: ignore[arg-type]
                              password="ingest-password")  # fmt: skip
            user = auth.create_user(s, settings, actor=BENCH, data=data)
        _row, token = auth.create_token(s, actor=BENCH, user=user)
    db.dispose()
    return token


def _known(url: str) -> tuple[list[str], list[str], list[int]]:
    db = Database(url)
    with db.session(write=False) as s:
        emails = list(s.scalars(select(Identity.value).where(Identity.kind == "email")))
        phones = []
        for p in s.scalars(select(Identity.value).where(Identity.kind == "phone")):
            # the demo writes some numbers that libphonenumber calls invalid; senders would not
            with contextlib.suppress(NormalizationError):
                phones.append(normalize_phone(p))
        ids = list(s.scalars(select(Customer.id).where(Customer.kind == "person")))
    db.dispose()
    return emails, phones, ids


# ---------------------------------------------------------------- events


def _events(n: int, emails: list[str], phones: list[str], seed: int, browsers: int = 0,
            identified: float = 0.3) -> list[dict[str, Any]]:  # fmt: skip
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Browsers: each belongs to a hidden person; `identified` of them are known customers who log in now and
    # then (the first login after anonymous visits stitches the visitor into the customer: a merge).
    browsers = browsers or max(1000, n // 100)
    owner = [rng.choice(emails) if rng.random() < identified else None for _ in range(browsers)]
    out = []
    for i in range(n):
        at = (start + timedelta(seconds=i * 7)).isoformat()
        ev: dict[str, Any] = {"event_id": f"ev-{seed}-{i}", "at": at}
        r = rng.random()
        if r < 0.45:
            ev |= {"type": rng.choice(TYPES_KNOWN), "email": rng.choice(emails), "channel": "email"}
        elif r < 0.50:
            ev |= {"type": "call", "phone": rng.choice(phones), "channel": "phone", "summary": "配送日の確認"}
        elif r < 0.85:
            b = min(int(rng.paretovariate(1.2)) - 1, browsers - 1)
            b = rng.randrange(browsers) if rng.random() < 0.7 else b
            ev |= {
                "type": "page_view",
                "anonymous_id": f"br-{b}",
                "properties": {"url": f"/products/{i % 500}"},
            }
        elif r < 0.88:
            b = rng.randrange(browsers)
            ev |= {"type": "login", "anonymous_id": f"br-{b}"}
            if owner[b]:
                ev["email"] = owner[b]
        elif r < 0.93:
            ev |= {"type": "signup", "email": f"new{rng.randrange(n // 10)}@example.org", "channel": "web"}
        elif r < 0.999:
            ev |= {"type": "purchase", "external_id": f"POS-{rng.randrange(n // 20)}", "source": "pos",
                   "channel": "store", "email": rng.choice(emails)}  # fmt: skip
        else:
            ev |= {"type": "page_view", "anonymous_id": "x", "at": "2026-01-01T10:00:00"}  # naive: invalid
        out.append(ev)
    return out


# ---------------------------------------------------------------- the API run


def _send(
    port: int, token: str, bodies: list[bytes], concurrency: int
) -> tuple[float, dict[str, int], list[float]]:
    work: queue.Queue[bytes] = queue.Queue()
    for b in bodies:
        work.put(b)
    counts: dict[str, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            t0 = time.perf_counter()
            conn.request("POST", "/api/v1/events", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            elapsed = (time.perf_counter() - t0) * 1000
            if resp.status != 200:
                errors.append(f"{resp.status} {data[:300]!r}")
                continue
            result = json.loads(data)["counts"]
            with lock:
                latencies.append(elapsed)
                for k, v in result.items():
                    counts[k] = counts.get(k, 0) + v
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed batches, first: {errors[0]}")
    return seconds, counts, latencies


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process (Linux): what the work cost, whatever else the machine is doing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _api_run(url: str, token: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    port = _port()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(url, port), daemon=True)
    proc.start()
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            c.getresponse().read()
            break
        except OSError:
            time.sleep(0.1)
    try:
        cpu0 = _cpu_seconds(proc.pid)
        seconds, counts, lat = _send(port, token, bodies, concurrency)
        cpu = _cpu_seconds(proc.pid) - cpu0
        again_s, again, _ = _send(port, token, bodies[:10], 1)
    finally:
        proc.terminate()
        proc.join()
    lat.sort()
    return {
        "seconds": seconds, "server_cpu_seconds": cpu, "counts": counts, "resend": again,
        "resend_seconds": again_s,
        "batch_p50_ms": lat[len(lat) // 2], "batch_p95_ms": lat[int(len(lat) * 0.95)],
    }  # fmt: skip


# ---------------------------------------------------------------- the reference


def _reference(url: str, events: list[dict[str, Any]], ids: list[int], batch: int) -> tuple[float, float]:
    """The same rows through a bare executemany: customer ids drawn at random, no resolution."""
    rng = random.Random(5)
    db = Database(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    tp_sql = ("INSERT INTO touchpoints (customer_id, channel, type, at, summary, properties, "
              "source_event_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")  # fmt: skip
    tl_sql = ("INSERT INTO timeline_entries (customer_id, at, kind, channel, summary, ref_type, ref_id, "
              "properties) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")  # fmt: skip
    if not db.is_sqlite:
        tp_sql, tl_sql = tp_sql.replace("?", "%s"), tl_sql.replace("?", "%s")
    conn = db.engine.raw_connection()
    # a connection of the app's engine: the same pragmas (checkpoint interval included) as the server's
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        for off in range(0, len(events), batch):
            chunk = events[off : off + batch]
            cur = conn.cursor()
            if db.is_sqlite:
                cur.execute("BEGIN IMMEDIATE")
            rows = []
            for ev in chunk:
                at = datetime.fromisoformat(ev["at"])
                at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)
                props = json.dumps(ev.get("properties", {}))
                rows.append((rng.choice(ids), ev.get("channel") or "web", ev["type"], at,
                             ev.get("summary", ""), props, "ref-" + ev["event_id"], now))  # fmt: skip
            cur.executemany(tp_sql, rows)
            first = cur.execute("SELECT max(id) FROM touchpoints").fetchone()[0] - len(rows) + 1
            cur.executemany(tl_sql, [(r[0], r[3], "touchpoint", r[1], r[4], "touchpoint", first + k,
                                      json.dumps({"type": r[2]})) for k, r in enumerate(rows)])  # fmt: skip
            conn.commit()
    finally:
        conn.close()
        db.dispose()
    return time.perf_counter() - t0, time.process_time() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1, help="client threads (one server process)")
    parser.add_argument("--browsers", type=int, default=0, help="anonymous browsers (default: events / 100)")
    parser.add_argument("--identified", type=float, default=0.3, help="share of browsers whose owner logs in")
    parser.add_argument("--pg", help="PostgreSQL base URL: the bench creates its own databases beside it")
    parser.add_argument("--workdir", help="where the SQLite files go (default: a temporary folder)")
    parser.add_argument(
        "--reuse-seed", help="SQLite: copy this seeded file if it exists, else seed and save it"
    )
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ingest_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.pg:
        base_name = make_url(args.pg).database or "kokyaku"
        seed_db = args.reuse_seed  # PostgreSQL: the name of a database kept as the seeded template
        if seed_db and _pg_exists(args.pg, seed_db):
            url = _fresh_pg(args.pg, f"{base_name}_ingest_bench", template=seed_db)
        else:
            url = _fresh_pg(args.pg, f"{base_name}_ingest_bench")
            _seed(url, args.customers)
            if seed_db:
                _fresh_pg(args.pg, seed_db, template=f"{base_name}_ingest_bench")
        ref_url = _fresh_pg(args.pg, f"{base_name}_ingest_ref", template=f"{base_name}_ingest_bench")
    else:
        path = workdir / "ingest.db"
        for p in workdir.glob("ingest*.db*"):
            p.unlink()
        url = f"sqlite:///{path}"
        seed = Path(args.reuse_seed) if args.reuse_seed else None
        if seed is not None and seed.exists():
            shutil.copy(seed, path)  # a database seeded by an earlier run with the same --customers
        else:
            _seed(url, args.customers)
            if seed is not None:
                shutil.copy(path, seed)
        shutil.copy(path, workdir / "ingest_ref.db")
        ref_url = f"sqlite:///{workdir / 'ingest_ref.db'}"
    token = _token(url)
    emails, phones, ids = _known(url)
    events = _events(args.events, emails, phones, seed=3, browsers=args.browsers, identified=args.identified)
    bodies = [
        json.dumps({"events": events[i : i + args.batch]}, ensure_ascii=False).encode()
        for i in range(0, len(events), args.batch)
    ]
    mb = sum(map(len, bodies)) / 1e6
    print(f"setup: {args.customers:,} customers seeded, {len(events):,} events in {len(bodies):,} batches "
          f"({mb:.0f} MB JSON) in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip

    load_before = os.getloadavg()
    api = _api_run(url, token, bodies, args.concurrency)
    load_api = os.getloadavg()
    api_rate = len(events) / api["seconds"]
    ref_seconds, ref_cpu = _reference(ref_url, events, ids, args.batch)
    ref_rate = len(events) / ref_seconds

    db = Database(url)
    with db.session(write=False) as s:
        stored = s.scalar(select(func.count()).select_from(Touchpoint))
        timeline = s.scalar(select(func.count()).select_from(TimelineEntry))
        customers = s.scalar(select(func.count()).select_from(Customer))
    db.dispose()
    c = api["counts"]
    engine = "PostgreSQL" if args.pg else "SQLite"
    print(f"database: {engine}; {os.cpu_count()} cores; client threads: {args.concurrency}")
    print(f"API:       {len(events):,} events in {api['seconds']:.1f} s = {api_rate:,.0f} events/s "
          f"(batch p50 {api['batch_p50_ms']:.0f} ms, p95 {api['batch_p95_ms']:.0f} ms)")  # fmt: skip
    print(f"           created {c.get('created', 0):,}, invalid {c.get('invalid', 0):,}, duplicate "
          f"{c.get('duplicate', 0):,}, prospects {c.get('prospects_created', 0):,}, merges "
          f"{c.get('customers_merged', 0):,}")  # fmt: skip
    print(
        f"           stored: {stored:,} touchpoints, {timeline:,} timeline entries, {customers:,} customers"
    )
    print(f"re-send:   {sum(api['resend'].values()) and api['resend'].get('duplicate', 0):,} duplicates, "
          f"{api['resend'].get('created', 0)} created, in {api['resend_seconds']:.2f} s")  # fmt: skip
    print(f"reference: bare executemany of the same rows: {ref_seconds:.1f} s = {ref_rate:,.0f} events/s")
    print(f"ratio API / reference: {api_rate / ref_rate:.2f}")
    api_cpu_rate, ref_cpu_rate = len(events) / api["server_cpu_seconds"], len(events) / ref_cpu
    print(f"per CPU second (independent of other load): API server {api_cpu_rate:,.0f} events/s, reference "
          f"{ref_cpu_rate:,.0f} events/s{'' if not args.pg else ' (PostgreSQL server CPU not counted)'}; "
          f"ratio {api_cpu_rate / ref_cpu_rate:.2f}")  # fmt: skip
    if not args.pg:
        wal = Path(str(url).removeprefix("sqlite:///") + "-wal")
        print(
            f"SQLite WAL after the run: {wal.stat().st_size / 1e6:.0f} MB" if wal.exists() else "no WAL left"
        )
    print(f"load average (1, 5, 15 min): before the API run {load_before}, after it {load_api}, after the "
          f"reference {os.getloadavg()}")  # fmt: skip
    print(json.dumps({"engine": engine, "events": len(events), "api_events_per_s": round(api_rate),
                      "reference_events_per_s": round(ref_rate), "ratio": round(api_rate / ref_rate, 3),
                      "api_events_per_cpu_s": round(api_cpu_rate),
                      "reference_events_per_cpu_s": round(ref_cpu_rate),
                      **{k: v for k, v in api.items() if k != "counts"}, "counts": c}))  # fmt: skip


if __name__ == "__main__":
    main()
