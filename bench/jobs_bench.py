"""Job queue throughput: no-op jobs per second through claim -> run -> finish, against a reference that does
the same two single-row write transactions per job with no queue logic (the ratio is the queue's overhead).

    .venv/bin/python bench/jobs_bench.py [--url sqlite:////tmp/jobs_bench.db] [--jobs 2000]
    .venv/bin/python bench/jobs_bench.py --url postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB

The database is created (or upgraded) by the migrations; the jobs table is emptied before each run.
"""

import argparse
import threading
import time
from datetime import timedelta

from sqlalchemy import delete, insert, select, update

from kokyaku.db import Database, utcnow
from kokyaku.jobs.models import Job
from kokyaku.jobs.worker import Worker
from kokyaku.migrate import upgrade


def fill(db: Database, n: int) -> list[int]:
    with db.session() as s:
        s.execute(delete(Job))
        now = utcnow()
        fixed = dict(kind="bench.noop", state={}, status="queued", priority=0, attempts=0, max_attempts=3,
                     run_at=now, cancel_requested=False, progress=0, created_at=now)  # fmt: skip
        rows = [{**fixed, "payload": {"i": i}} for i in range(n)]
        s.execute(insert(Job), rows)
        return list(s.scalars(select(Job.id).order_by(Job.id)))


def reference(db: Database, ids: list[int], threads: int) -> float:
    """Two single-row write transactions per job (mark running, mark done), spread over `threads`."""
    chunks = [ids[i::threads] for i in range(threads)]

    def run(chunk: list[int]) -> None:
        for job_id in chunk:
            with db.session() as s:
                lease = utcnow() + timedelta(seconds=60)
                s.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(status="running", locked_by="ref", lease_until=lease)
                )
            with db.session() as s:
                s.execute(update(Job).where(Job.id == job_id).values(status="succeeded", locked_by=None))

    started = time.perf_counter()
    workers = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return len(ids) / (time.perf_counter() - started)


def queue(dbs: list[Database], n: int, concurrency: int) -> float:
    workers = [
        Worker(d, worker_id=f"bench{i}", handlers={"bench.noop": lambda ctx: None}, concurrency=concurrency)
        for i, d in enumerate(dbs)
    ]
    started = time.perf_counter()
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    with dbs[0].session(write=False) as s:
        done = len(s.scalars(select(Job.id).where(Job.status == "succeeded")).all())
    assert done == n, f"{done} of {n} jobs succeeded"
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="sqlite:////tmp/jobs_bench.db")
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    upgrade(args.url)
    db, db2 = Database(args.url), Database(args.url)
    print(f"database: {args.url.split('://')[0]}, {args.jobs} no-op jobs per run")
    for label, dbs, concurrency in [
        ("1 worker, 1 thread", [db], 1),
        ("1 worker, 4 threads", [db], 4),
        ("2 workers (separate pools), 4 threads each", [db, db2], 4),
    ]:
        threads = len(dbs) * concurrency
        ids = fill(db, args.jobs)
        ref = reference(db, ids, threads)
        fill(db, args.jobs)
        ours = queue(dbs, args.jobs, concurrency)
        print(f"{label:45s} queue {ours:8.0f} jobs/s   reference {ref:8.0f} jobs/s   ratio {ours / ref:.2f}")
    with db.session() as s:
        s.execute(delete(Job))
    db.dispose()
    db2.dispose()


if __name__ == "__main__":
    main()
