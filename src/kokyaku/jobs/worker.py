"""The worker: claims due jobs, runs their handlers, retries failures and recovers dead workers' jobs.

How it stays correct with many workers on one database:
- Claiming is one transaction that picks the next due job and marks it running with a lease. On PostgreSQL the
  pick is `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent workers take different rows without waiting; on
  SQLite the transaction starts with `BEGIN IMMEDIATE`, so only one writer claims at a time.
- A running job holds a lease (`lease_until`) that its worker extends while alive (a heartbeat, and every
  `ctx.progress()`/`ctx.checkpoint()`). If the worker dies, the lease runs out and another worker takes over.
- Every write the worker makes for a job is fenced on (id, locked_by, attempts): a worker that lost its lease
  cannot overwrite the progress or result of the attempt that took over.

So a job runs AT LEAST once and may run again after a crash: handlers must be idempotent. Write each step's
effects and `ctx.checkpoint(state, session=s)` in the same transaction, and start from `ctx.state`; then a
re-run skips the steps that committed and repeats none of them.
"""

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from kokyaku.db import Database, utcnow
from kokyaku.jobs import schedules
from kokyaku.jobs.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job
from kokyaku.jobs.service import (
    Handler,
    HandlerSpec,
    JobContext,
    JobInterrupted,
    LeaseLost,
    describe_error,
    load_handlers,
    subscribe_wake,
    unsubscribe_wake,
)

log = logging.getLogger("kokyaku.jobs")

# What run_one() reports for each job it handled.
RETRYING = "retrying"
RELEASED = "released"  # handed back unfinished because the worker is stopping
LOST = "lost"  # another worker took the job over after this one's lease ran out


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    payload: dict[str, Any]
    state: dict[str, Any]
    attempt: int
    max_attempts: int


def default_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _due(now: datetime, kinds: list[str]) -> Any:
    return (Job.status == QUEUED) & (Job.run_at <= now) & Job.kind.in_(kinds)


def _expired(now: datetime) -> Any:
    return (Job.status == RUNNING) & (Job.lease_until < now)


def requeue_expired(session: Session, now: datetime) -> int:
    """Give jobs whose worker died (lease ran out) back to the queue, or fail them if out of attempts."""
    base = update(Job).where(_expired(now)).execution_options(synchronize_session=False)
    gone = "The worker stopped while running this job."
    failed = session.execute(
        base.where(Job.attempts >= Job.max_attempts).values(
            status=FAILED, error=gone, finished_at=now, locked_by=None, lease_until=None, dedupe_key=None
        )
    ).rowcount  # type: ignore[attr-defined]
    requeued = session.execute(
        base.values(status=QUEUED, error=gone, run_at=now, locked_by=None, lease_until=None)
    ).rowcount  # type: ignore[attr-defined]
    return int(failed) + int(requeued)


def claim_next(
    db: Database, *, worker_id: str, kinds: list[str], lease_seconds: float, now: datetime | None = None
) -> Claimed | None:
    """Atomically take the next due job of one of `kinds` and mark it running under this worker's lease."""
    now = now or utcnow()
    if not kinds:
        return None
    expired: bool | None = None
    if db.is_sqlite:
        # A read first: on SQLite a claim takes the only write lock; do not take it to find nothing.
        with db.session(write=False) as s:
            due, expired = s.execute(
                select(exists().where(_due(now, kinds)), exists().where(_expired(now)))
            ).one()
        if not (due or expired):
            return None
    with db.session() as s:
        if expired is None:  # PostgreSQL: writers do not block each other, so look inside the transaction
            expired = bool(s.scalar(select(exists().where(_expired(now)))))
        if expired:
            requeue_expired(s, now)
        stmt = select(Job).where(_due(now, kinds)).order_by(Job.priority.desc(), Job.run_at, Job.id).limit(1)
        if not db.is_sqlite:
            # PostgreSQL: lock the row, skipping rows that other workers are claiming at this moment.
            stmt = stmt.with_for_update(skip_locked=True)
        # SQLite: this transaction began with BEGIN IMMEDIATE (a write session), so no other worker can
        # claim between this SELECT and the UPDATE below.
        job = s.scalar(stmt)
        if job is None:
            return None
        job.status = RUNNING
        job.attempts += 1
        job.locked_by = worker_id
        job.lease_until = now + timedelta(seconds=lease_seconds)
        job.started_at = job.started_at or now
        s.flush()
        return Claimed(
            job.id, job.kind, dict(job.payload), dict(job.state or {}), job.attempts, job.max_attempts
        )


class Worker:
    """Runs jobs from the queue: `run()` until `stop()`, or `drain()` the jobs that are due and return."""

    def __init__(
        self,
        db: Database,
        worker_id: str | None = None,
        handlers: Mapping[str, Handler | HandlerSpec] | None = None,
        poll_interval: float = 1.0,
        *,
        concurrency: int = 1,
        lease_seconds: float = 60.0,
        retry_base_seconds: float = 10.0,
        retry_max_seconds: float = 3600.0,
        progress_interval: float = 0.25,
        run_schedules: bool = True,
    ) -> None:
        self.db = db
        self.worker_id = (worker_id or default_worker_id())[:100]
        registry = load_handlers() if handlers is None else handlers
        self.handlers: dict[str, Handler] = {
            kind: (h.fn if isinstance(h, HandlerSpec) else h) for kind, h in registry.items()
        }
        self.poll_interval = poll_interval
        self.concurrency = max(1, concurrency)
        self.lease_seconds = lease_seconds
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.progress_interval = progress_interval
        self.run_schedules = run_schedules
        self.clock: Callable[[], float] = time.monotonic
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._running: dict[int, int] = {}  # job id -> attempt, for the heartbeat
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._schedules_synced = False

    # ------------------------------------------------------------ one job

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_one(self) -> str | None:
        """Claim and run one due job; returns its outcome, or None when no job is due."""
        if self.stopping:
            return None
        claimed = claim_next(
            self.db, worker_id=self.worker_id, kinds=sorted(self.handlers), lease_seconds=self.lease_seconds
        )
        if claimed is None:
            return None
        return self._execute(claimed)

    def _execute(self, c: Claimed) -> str:
        ctx = JobContext(
            job_id=c.id,
            kind=c.kind,
            payload=c.payload,
            state=c.state,
            attempt=c.attempt,
            db=self.db,
            worker=self,
        )
        with self._lock:
            self._running[c.id] = c.attempt
        started = time.monotonic()
        outcome = LOST
        try:
            try:
                result = self.handlers[c.kind](ctx)
            except LeaseLost:
                outcome = LOST
            except JobInterrupted:
                outcome = self._interrupted(c)
            except Exception as exc:
                outcome = self._failed(c, exc)
            except BaseException:
                # KeyboardInterrupt/SystemExit in the main thread: hand the job back before leaving.
                self._interrupted(c)
                raise
            else:
                outcome = self._succeeded(c, result)
        finally:
            with self._lock:
                self._running.pop(c.id, None)
        # Ids, kinds and outcomes only: payloads and errors may hold customer data.
        log.info(
            "job %s (%s) attempt %s: %s in %.2fs",
            c.id,
            c.kind,
            c.attempt,
            outcome,
            time.monotonic() - started,
        )
        return outcome

    def _fence(self, c: Claimed) -> Any:
        return (
            (Job.id == c.id)
            & (Job.locked_by == self.worker_id)
            & (Job.attempts == c.attempt)
            & (Job.status == RUNNING)
        )

    def _finish(self, c: Claimed, outcome: str, **values: Any) -> str:
        with self.db.session() as s:
            rows = s.execute(
                update(Job)
                .where(self._fence(c))
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        return outcome if rows == 1 else LOST

    def _done(self, status: str, **values: Any) -> dict[str, Any]:
        # A finished job frees its dedupe key, so the same work can be queued again.
        return {
            "status": status, "finished_at": utcnow(), "locked_by": None, "lease_until": None,
            "dedupe_key": None, **values,
        }  # fmt: skip

    def _succeeded(self, c: Claimed, result: Any) -> str:
        if result is not None and not isinstance(result, dict):
            result = {"value": result}
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            return self._finish(c, FAILED, **self._done(FAILED, error="The handler's result is not JSON."))
        # A finished job reads as complete even if its handler never reported the last step.
        done = func.coalesce(Job.progress_total, Job.progress)
        return self._finish(c, SUCCEEDED, **self._done(SUCCEEDED, result=result, error=None, progress=done))

    def _cancel_requested(self, c: Claimed) -> bool:
        with self.db.session(write=False) as s:
            return bool(s.scalar(select(Job.cancel_requested).where(Job.id == c.id)))

    def _interrupted(self, c: Claimed) -> str:
        if self._cancel_requested(c):
            return self._finish(c, CANCELLED, **self._done(CANCELLED))
        # The worker is stopping: hand the job back, not counting this attempt; it resumes at its checkpoint.
        return self._finish(
            c,
            RELEASED,
            status=QUEUED,
            attempts=c.attempt - 1,
            run_at=utcnow(),
            locked_by=None,
            lease_until=None,
        )

    def _failed(self, c: Claimed, exc: Exception) -> str:
        error = describe_error(exc)
        if self._cancel_requested(c):
            return self._finish(c, CANCELLED, **self._done(CANCELLED, error=error))
        if c.attempt >= c.max_attempts:
            return self._finish(c, FAILED, **self._done(FAILED, error=error))
        return self._finish(
            c, RETRYING, status=QUEUED, error=error, run_at=utcnow() + self.backoff(c.attempt),
            locked_by=None, lease_until=None,
        )  # fmt: skip

    def backoff(self, attempt: int) -> timedelta:
        """Exponential: base, 2x base, 4x base ... capped, after the 1st, 2nd, 3rd ... failed attempt."""
        return timedelta(seconds=min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (attempt - 1)))

    # ------------------------------------------------------------ housekeeping

    def heartbeat(self) -> int:
        """Extend the lease of every job this worker is running; returns how many."""
        with self._lock:
            running = dict(self._running)
        if not running:
            return 0
        with self.db.session() as s:
            rows = s.execute(
                update(Job)
                .where(Job.id.in_(running), Job.locked_by == self.worker_id, Job.status == RUNNING)
                .values(lease_until=utcnow() + timedelta(seconds=self.lease_seconds))
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        return int(rows)

    def enqueue_schedules(self, now: datetime | None = None) -> int:
        """Store schedules declared in code (once), then enqueue the due ones; returns jobs enqueued."""
        now = now or utcnow()
        if not self._schedules_synced and schedules.SCHEDULES:
            with self.db.session() as s:
                schedules.sync_declared(s)
        self._schedules_synced = True
        with self.db.session(write=False) as s:
            if not schedules.any_due(s, now):
                return 0
        with self.db.session() as s:
            return len(schedules.enqueue_due(s, now=now, is_sqlite=self.db.is_sqlite))

    # ------------------------------------------------------------ loops

    def drain(self, *, max_jobs: int | None = None) -> Counter[str]:
        """Enqueue due schedules, then run due jobs (on `concurrency` threads) until none is due."""
        if self.run_schedules:
            self.enqueue_schedules()
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def loop() -> None:
            while True:
                with lock:
                    if max_jobs is not None and sum(outcomes.values()) >= max_jobs:
                        return
                outcome = self.run_one()
                if outcome is None:
                    return
                with lock:
                    outcomes[outcome] += 1

        if self.concurrency == 1:
            loop()
        else:
            threads = [threading.Thread(target=loop, daemon=True) for _ in range(self.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return outcomes

    def _slot(self) -> None:
        while not self.stopping:
            try:
                outcome = self.run_one()
            except Exception as exc:  # the database may be briefly unreachable: keep the worker alive
                log.warning("worker %s: claiming failed: %s", self.worker_id, type(exc).__name__)
                outcome = None
            if outcome is None and not self.stopping:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def run(self) -> None:
        """Run until `stop()`: `concurrency` job threads, with heartbeats and schedules on this thread."""
        self._stop.clear()
        subscribe_wake(self._wake)
        slots = [
            threading.Thread(target=self._slot, name=f"kokyaku-job-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for t in slots:
            t.start()
        log.info("worker %s started (%s threads)", self.worker_id, self.concurrency)
        last_beat = last_schedules = 0.0
        beat_every = max(0.05, self.lease_seconds / 3)
        try:
            while not self.stopping:
                now = time.monotonic()
                try:
                    if now - last_beat >= beat_every:
                        self.heartbeat()
                        last_beat = now
                    if self.run_schedules and now - last_schedules >= self.poll_interval:
                        if self.enqueue_schedules():
                            self._wake.set()
                        last_schedules = now
                except Exception as exc:
                    log.warning("worker %s: housekeeping failed: %s", self.worker_id, type(exc).__name__)
                self._stop.wait(min(self.poll_interval, beat_every))
            # Stopping: running handlers see ctx.cancelled() and hand their jobs back; keep their leases
            # alive meanwhile so that no other worker takes them over while they finish.
            while any(t.is_alive() for t in slots):
                try:
                    self.heartbeat()
                except Exception as exc:
                    log.warning("worker %s: heartbeat failed: %s", self.worker_id, type(exc).__name__)
                for t in slots:
                    t.join(timeout=beat_every)
        finally:
            unsubscribe_wake(self._wake)
            log.info("worker %s stopped", self.worker_id)

    def stop(self) -> None:
        """Ask the worker to stop: no new jobs are claimed; running handlers are asked to stop."""
        self._stop.set()
        self._wake.set()

    def start_thread(self) -> threading.Thread:
        """Run the worker on a background thread (the in-process worker of `kokyaku serve`)."""
        self._thread = threading.Thread(target=self.run, name="kokyaku-worker", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the background thread; True if it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """FastAPI lifespan: start one in-process worker thread unless settings.run_worker_in_process is off."""
    worker = None
    if app.state.settings.run_worker_in_process:
        worker = Worker(app.state.db, worker_id=f"{default_worker_id()}:web")
        worker.start_thread()
    app.state.worker = worker
    try:
        yield
    finally:
        if worker is not None:
            worker.stop()
            if not worker.join(timeout=10):
                log.warning("in-process worker still busy at shutdown; its job resumes after its lease ends")
