"""Customer lookup and search latency under 8 concurrent clients, against a bare Starlette route running the
same SQL in the same run (the ratio is our framework overhead).

    python bench/api_bench.py --db /path/to/demo.db [--requests 4000] [--concurrency 8]

The database must hold demo customers (`kokyaku demo --customers 1000000`). Each server runs alone in its own
process (uvicorn, one worker) while an asyncio client in this process keeps `concurrency` requests in flight.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SEARCHES = [
    "山",
    "田中",
    "やまだ",
    "サトウ",
    "佐藤 美",
    "たかはし",
    "smith",
    "Jo",
    "hiroshi.",
    "090-12",
    "鈴木 一",
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bare_app(db_path: str):  # type: ignore[no-untyped-def]
    """The same queries our API runs for GET /customers/{id}, without FastAPI, pydantic or the ORM."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    local = __import__("threading").local()

    def conn() -> sqlite3.Connection:
        if not hasattr(local, "c"):
            local.c = sqlite3.connect(db_path, check_same_thread=False)
            local.c.execute("PRAGMA busy_timeout=10000")
        return local.c  # type: ignore[no-any-return]

    def customer(request):  # type: ignore[no-untyped-def]
        c = conn()
        cid = int(request.path_params["id"])
        cur = c.execute("SELECT * FROM customers WHERE id = ?", (cid,))
        row = cur.fetchone()
        names = [d[0] for d in cur.description]
        body = dict(zip(names, row, strict=True))
        body["identities"] = c.execute(
            "SELECT kind, value, source FROM customer_identities WHERE customer_id = ? ORDER BY id", (cid,)
        ).fetchall()
        body["interests"] = [
            r[0]
            for r in c.execute(
                "SELECT tag FROM customer_interests WHERE customer_id = ? ORDER BY tag", (cid,)
            )
        ]
        return JSONResponse(body)

    from starlette.concurrency import run_in_threadpool

    async def endpoint(request):  # type: ignore[no-untyped-def]
        return await run_in_threadpool(customer, request)

    return Starlette(routes=[Route("/bare/customers/{id:int}", endpoint)])


def _serve(kind: str, db_path: str, port: int) -> None:
    import uvicorn

    if kind == "bare":
        uvicorn.run(_bare_app(db_path), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    else:
        os.environ["KOKYAKU_DATABASE_URL"] = f"sqlite:///{db_path}"
        os.environ["KOKYAKU_RUN_WORKER_IN_PROCESS"] = "false"
        uvicorn.run("kokyaku.asgi:app", host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _load(urls: list[str], headers: dict[str, str], concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue = list(urls)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while queue:
                url = queue.pop()
                start = time.perf_counter()
                resp = await client.get(url)
                latencies.append((time.perf_counter() - start) * 1000)
                if resp.status_code != 200:
                    raise RuntimeError(f"{url}: {resp.status_code} {resp.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def _run(kind: str, db_path: str, paths: list[str], headers: dict[str, str], concurrency: int) -> list[float]:
    port = _port()
    proc = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(kind, db_path, port), daemon=True
    )
    proc.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(base + "/healthz" if kind == "app" else base + "/bare/customers/1", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        asyncio.run(_load([base + p for p in paths[:200]], headers, concurrency))  # warm-up
        return asyncio.run(_load([base + p for p in paths], headers, concurrency))
    finally:
        proc.terminate()
        proc.join()


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", required=True)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    db_path = str(Path(args.db).resolve())
    env = {**os.environ, "KOKYAKU_DATABASE_URL": f"sqlite:///{db_path}"}
    kokyaku = str(Path(sys.executable).with_name("kokyaku"))
    subprocess.run(
        [
            kokyaku,
            "user",
            "create",
            "--email",
            "bench@example.com",
            "--password",
            "bench-password",
            "--role",
            "viewer",
        ],
        env=env,
        capture_output=True,
    )
    token = subprocess.run(
        [kokyaku, "token", "create", "--user", "bench@example.com"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with sqlite3.connect(db_path) as c:
        low, high = c.execute("SELECT min(id), max(id) FROM customers").fetchone()
        count = c.execute("SELECT count(*) FROM customers").fetchone()[0]
    rng = random.Random(1)
    ids = [rng.randint(low, high) for _ in range(args.requests)]
    headers = {"Authorization": f"Bearer {token}"}
    results = {}
    results["bare lookup"] = _run(
        "bare", db_path, [f"/bare/customers/{i}" for i in ids], {}, args.concurrency
    )
    results["api lookup"] = _run(
        "app", db_path, [f"/api/v1/customers/{i}" for i in ids], headers, args.concurrency
    )
    searches = [
        f"/api/v1/customers?limit=20&q={httpx.URL('', params={'q': rng.choice(SEARCHES)}).params['q']}"
        for _ in range(max(args.requests // 4, 200))
    ]
    results["api search"] = _run("app", db_path, searches, headers, args.concurrency)
    print(f"{count:,} customers, {args.concurrency} concurrent clients, {os.cpu_count()} cores")
    print(f"{'':14}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    summary = {}
    for name, lat in results.items():
        summary[name] = {"n": len(lat), "p50": _pct(lat, 50), "p95": _pct(lat, 95), "p99": _pct(lat, 99)}
        print(
            f"{name:14}{len(lat):>7}{summary[name]['p50']:>9.2f}{summary[name]['p95']:>9.2f}{summary[name]['p99']:>9.2f}"
        )
    ratio = summary["api lookup"]["p50"] / summary["bare lookup"]["p50"]
    print(
        f"overhead ratio (api / bare, p50): {ratio:.2f}x; p95: "
        f"{summary['api lookup']['p95'] / summary['bare lookup']['p95']:.2f}x"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
