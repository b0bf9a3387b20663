"""The whole `kokyaku analytics run` (read orders, compare models on a holdout, fit, score, write back) on an
existing database, step by step, against a reference measured in the same run: reading every order's
customer and total into numpy, the floor for anything that summarises 10M orders.

    python bench/analytics_run_bench.py --db sqlite:///bench/out/segments.db
    python bench/analytics_run_bench.py --db postgresql+psycopg://kokyaku:kokyaku@127.0.0.1:54329/kokyaku_bench

The database is one the segments benchmark built (1M customers, 10M orders), or a copy of it made with
bench/copy_to_pg.py. CPU is this process's (both threads of the Pareto/NBD fit count); on PostgreSQL the
server's CPU is not in it.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import text  # noqa: E402

from kokyaku.analytics import scoring  # noqa: E402
from kokyaku.db import Database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default=f"sqlite:///{ROOT / 'bench/out/segments.db'}")
    args = parser.parse_args()
    db = Database(args.db)
    load = os.getloadavg()[0]
    with db.session(write=False) as s:
        wall, cpu = time.perf_counter(), time.process_time()
        cursor = s.connection().connection.cursor()  # plain tuples, as the SQLite path of the run reads them
        cursor.execute("SELECT customer_id, total FROM orders")
        rows = cursor.fetchall()
        n_orders = np.array(rows, dtype=np.int64).shape[0]
        ref_wall, ref_cpu = time.perf_counter() - wall, time.process_time() - cpu
    del rows
    print(f"reference: {n_orders:,} orders (customer, total) read into numpy: {ref_wall:.1f} s wall, "
          f"{ref_cpu:.1f} s CPU", flush=True)  # fmt: skip
    marks: list[tuple[str, float, float]] = []
    wall, cpu = time.perf_counter(), time.process_time()

    def step(_done: int, _total: int, message: str) -> None:
        marks.append((message, time.perf_counter() - wall, time.process_time() - cpu))
        print(f"{marks[-1][1]:7.1f} s wall {marks[-1][2]:7.1f} s CPU  {message}", flush=True)

    with db.session() as s:
        run = scoring.score(s, progress=step)
    total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"\n### {db.engine.dialect.name}: {run.scored:,} customers scored, {n_orders:,} orders")
    print(f"load average at start {load:.1f}, at end {os.getloadavg()[0]:.1f}; model {run.model}\n")
    print("| step | wall s | CPU s |\n|---|---:|---:|")
    for (message, w0, c0), (_next, w1, c1) in zip(marks, marks[1:], strict=False):
        print(f"| {message} | {w1 - w0:.1f} | {c1 - c0:.1f} |")
    print(f"| **whole run (with commit)** | **{total_wall:.1f}** | **{total_cpu:.1f}** |")
    print(f"| reference: read every order's customer and total | {ref_wall:.1f} | {ref_cpu:.1f} |")
    ratios = f"{total_wall / ref_wall:.1f} (wall), {total_cpu / ref_cpu:.1f} (CPU)"
    print(f"\nratio whole run / reference: {ratios}")
    with db.session(write=False) as s:
        print("scores written:", s.scalar(text("SELECT count(*) FROM customer_scores")))


if __name__ == "__main__":
    main()
