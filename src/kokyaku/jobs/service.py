"""Enqueueing jobs, the handler registry, the handler's context, and reading, cancelling and retrying jobs.

Use from another domain:

    from kokyaku.jobs.service import JobContext, enqueue, handler

    @handler("imports.csv", label="CSV import")          # in kokyaku/<domain>/tasks.py
    def run_import(ctx: JobContext) -> dict | None:
        start = ctx.state.get("next_row", 0)             # resume where a killed attempt stopped
        for batch in batches(ctx.payload["upload_id"], start):
            ctx.check()                                  # stop here if cancelled or the worker is stopping
            with ctx.db.session() as s:
                write(s, batch)                          # the effects and the checkpoint commit together
                ctx.checkpoint({"next_row": batch.end}, session=s)
            ctx.progress(batch.end, total, "Importing rows")
        return {"rows": total}                           # stored as the job's result

    job = enqueue(session, kind="imports.csv", payload={"upload_id": 7}, actor=actor)   # inside the request

Handlers must be idempotent: a job runs at least once, and again after a crash or a lost lease.
Inside an open write session, pass `session=s` to progress()/checkpoint(): on SQLite a second writer
would wait for the first. `message` is an English msgid without numbers (the page translates it; numbers go
in done/total).
Put handlers in `kokyaku/<domain>/tasks.py`: every worker imports those modules (load_handlers()).
"""

import hashlib
import importlib
import json
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import kokyaku
from kokyaku.audit.service import Actor
from kokyaku.db import Database, after_commit, utcnow
from kokyaku.errors import Conflict, KokyakuError, NotFound
from kokyaku.jobs.models import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, STATUSES, Job
from kokyaku.kit.pagination import BadCursor, Page, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from kokyaku.jobs.worker import Worker

Handler = Callable[["JobContext"], "dict[str, Any] | None"]
MAX_KIND = 64
MAX_ERROR = 500


class JobNotFound(NotFound):
    code = "job_not_found"
    message = "Job {id} does not exist."


class JobFinished(Conflict):
    code = "job_finished"
    message = "Job {id} has already finished."


class JobNotRetryable(Conflict):
    code = "job_not_retryable"
    message = "Only failed or cancelled jobs can be run again."


class JobInterrupted(Exception):  # noqa: N818 - raised on purpose, not an error
    """Raised by `ctx.check()`: the job was cancelled, or the worker is stopping and hands it back."""


class LeaseLost(Exception):  # noqa: N818
    """This worker no longer holds the job (its lease expired and another worker took it over)."""


class JobFailed(Exception):
    """Raise with a message free of personal data to have that message shown as the job's error."""


# ---------------------------------------------------------------- handlers


@dataclass(frozen=True)
class HandlerSpec:
    kind: str
    fn: Handler
    label: str  # an English msgid, shown translated on the jobs page


HANDLERS: dict[str, HandlerSpec] = {}
_loaded = False
_load_lock = threading.Lock()


def handler(kind: str, *, label: str | None = None) -> Callable[[Handler], Handler]:
    """Register `fn(ctx) -> dict | None` as the handler of jobs of `kind`."""
    if not kind or len(kind) > MAX_KIND:
        raise ValueError(f"job kind must be 1..{MAX_KIND} characters")

    def register(fn: Handler) -> Handler:
        existing = HANDLERS.get(kind)
        same = existing is not None and _name(existing.fn) == _name(fn)  # a module imported twice
        if existing is not None and not same:
            raise ValueError(f"a handler for job kind {kind!r} is registered already")
        HANDLERS[kind] = HandlerSpec(kind, fn, label or (existing.label if existing else kind))
        return fn

    return register


def _name(fn: Handler) -> str:
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"


def load_handlers() -> dict[str, HandlerSpec]:
    """Import every `kokyaku.<domain>.tasks` module (where handlers live) once; return the registry."""
    global _loaded
    with _load_lock:
        if not _loaded:
            # A folder scan, not pkgutil: a domain folder without __init__.py is a namespace package,
            # which pkgutil.iter_modules does not list.
            domains = {p.parent.name for base in kokyaku.__path__ for p in Path(base).glob("*/tasks.py")}
            for name in sorted(domains):
                importlib.import_module(f"kokyaku.{name}.tasks")
            _loaded = True
    return HANDLERS


def label_of(kind: str) -> str:
    """The handler's label (an English msgid) for a job kind; the kind itself if none is registered."""
    spec = load_handlers().get(kind)
    return spec.label if spec else kind


# ---------------------------------------------------------------- waking workers in this process

_wake_events: set[threading.Event] = set()
_wake_lock = threading.Lock()


def subscribe_wake(event: threading.Event) -> None:
    with _wake_lock:
        _wake_events.add(event)


def unsubscribe_wake(event: threading.Event) -> None:
    with _wake_lock:
        _wake_events.discard(event)


def wake_workers() -> None:
    """Tell the workers of this process to look for jobs now instead of at their next poll."""
    with _wake_lock:
        for event in _wake_events:
            event.set()


# ---------------------------------------------------------------- enqueueing


def enqueue(
    session: Session,
    *,
    kind: str,
    payload: Mapping[str, Any] | None = None,
    run_at: datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 3,
    priority: int = 0,
    actor: Actor | None = None,
) -> Job:
    """Add a job in the caller's transaction: it exists only if that transaction commits.

    With `dedupe_key`, an unfinished job with the same key is returned instead of a new one.
    """
    if not kind or len(kind) > MAX_KIND:
        raise ValueError(f"job kind must be 1..{MAX_KIND} characters")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if run_at is not None and run_at.tzinfo is None:
        raise ValueError("run_at must be timezone-aware")
    data = dict(payload or {})
    json.dumps(data)  # fail here, in the caller, rather than at commit
    if dedupe_key is not None:
        dedupe_key = _short_key(dedupe_key)
        existing = session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    job = Job(
        kind=kind,
        payload=data,
        state={},
        status=QUEUED,
        priority=priority,
        attempts=0,
        max_attempts=max_attempts,
        run_at=run_at or utcnow(),
        dedupe_key=dedupe_key,
        created_by=actor.user_id if actor else None,
    )
    if dedupe_key is None:
        session.add(job)
        session.flush()
    else:
        # Another transaction may insert the same key between our check and our insert (PostgreSQL);
        # the unique index then stops us, and we return its job.
        try:
            with session.begin_nested():
                session.add(job)
        except IntegrityError:
            existing = session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))
            if existing is None:
                raise
            return existing
    after_commit(session, wake_workers)
    return job


def _short_key(key: str) -> str:
    # Keys longer than the column keep their uniqueness through a digest of the whole key.
    if len(key) <= 200:
        return key
    return key[:150] + "#" + hashlib.sha256(key.encode()).hexdigest()[:40]


# ---------------------------------------------------------------- the handler's context


@dataclass
class JobContext:
    """What a handler gets: its payload, its checkpoint, the database, and progress/cancel helpers."""

    job_id: int
    kind: str
    payload: dict[str, Any]
    state: dict[str, Any]
    attempt: int
    db: Database
    worker: "Worker"
    _last_progress_write: float = field(default=0.0, repr=False)
    _last_message: str | None = field(default=None, repr=False)

    def _fenced(self) -> Any:
        # Only the attempt this worker claimed may write; a zombie whose lease was taken over writes nothing.
        return (
            (Job.id == self.job_id)
            & (Job.locked_by == self.worker.worker_id)
            & (Job.attempts == self.attempt)
            & (Job.status == RUNNING)
        )

    def _write(self, values: dict[str, Any], session: Session | None) -> None:
        values["lease_until"] = utcnow() + timedelta(seconds=self.worker.lease_seconds)
        stmt = update(Job).where(self._fenced()).values(**values)
        if session is not None:
            rows = session.execute(stmt).rowcount  # type: ignore[attr-defined]
        else:
            with self.db.session() as own:
                rows = own.execute(stmt).rowcount  # type: ignore[attr-defined]
        if rows != 1:
            raise LeaseLost(self.job_id)

    def progress(
        self,
        done: int,
        total: int | None = None,
        message: str | None = None,
        *,
        session: Session | None = None,
    ) -> None:
        """Record progress (and extend the lease) for the pages; writes at most a few times a second."""
        now = self.worker.clock()
        finished_step = total is not None and done >= total
        if (
            session is None
            and not finished_step
            and message == self._last_message
            and now - self._last_progress_write < self.worker.progress_interval
        ):
            return
        values: dict[str, Any] = {"progress": int(done)}
        if total is not None:
            values["progress_total"] = int(total)
        if message is not None:
            values["message"] = message[:200]
        self._write(values, session)
        self._last_progress_write = now
        self._last_message = message

    def checkpoint(self, state: Mapping[str, Any], *, session: Session | None = None) -> None:
        """Persist the resumable state; pass the session that writes the effects so both commit together."""
        data = dict(state)
        json.dumps(data)
        self._write({"state": data}, session)
        self.state = data

    def heartbeat(self) -> None:
        """Extend the lease during a long step that reports no progress (the worker does this too)."""
        self._write({}, None)

    def cancelled(self) -> bool:
        """True when a user cancelled the job or the worker is shutting down."""
        if self.worker.stopping:
            return True
        with self.db.session(write=False) as s:
            return bool(s.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))

    def check(self) -> None:
        """Raise JobInterrupted when `cancelled()`; call it between steps, after a checkpoint."""
        if self.cancelled():
            raise JobInterrupted()


def describe_error(exc: BaseException) -> str:
    """The error as stored: never the exception's text, which may carry personal data."""
    if isinstance(exc, JobFailed):
        text = str(exc)
    elif isinstance(exc, KokyakuError):
        text = f"{exc.code}: {exc.message}"  # the msgid, without its (possibly personal) parameters
    else:
        where = ""
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "/kokyaku/" in f.filename or "/tests/" in f.filename] or frames
        if ours:
            f = ours[-1]
            path = f.filename.split("/src/")[-1] if "/src/" in f.filename else f.filename.rsplit("/", 2)[-1]
            where = f" at {path}:{f.lineno} in {f.name}"
        text = f"{type(exc).__name__}{where}"
    return text[:MAX_ERROR]


# ---------------------------------------------------------------- reading and changing jobs


def get_job(session: Session, job_id: int, *, owner_id: int | None = None) -> Job:
    """One job; with `owner_id`, only if that user created it (others' jobs look like missing ones)."""
    job = session.get(Job, job_id)
    if job is None or (owner_id is not None and job.created_by != owner_id):
        raise JobNotFound(id=job_id)
    return job


def list_jobs(
    session: Session,
    *,
    owner_id: int | None = None,
    status: str | None = None,
    kind: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Job]:
    """Newest first, keyset-paginated on id."""
    stmt: Select[tuple[Job]] = select(Job)
    if owner_id is not None:
        stmt = stmt.where(Job.created_by == owner_id)
    if status in STATUSES:
        stmt = stmt.where(Job.status == status)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    after = decode_cursor(cursor)
    if after:
        try:
            stmt = stmt.where(Job.id < int(after[0]))
        except (TypeError, ValueError):
            raise BadCursor(field="cursor") from None
    items = list(session.scalars(stmt.order_by(Job.id.desc()).limit(limit + 1)))
    more = len(items) > limit
    items = items[:limit]
    return Page(items, encode_cursor([items[-1].id]) if more and items else None)


def any_active(jobs: list[Job]) -> bool:
    return any(j.status in (QUEUED, RUNNING) for j in jobs)


def cancel(session: Session, job_id: int, *, actor: Actor, owner_id: int | None = None) -> Job:
    """Cancel a queued job at once; ask a running one to stop (its handler sees `ctx.cancelled()`)."""
    job = get_job(session, job_id, owner_id=owner_id)
    now = utcnow()
    if job.status == QUEUED:
        # Conditional, so a worker that claims it at this moment either wins or sees it cancelled.
        rows = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == QUEUED)
            .values(
                status=CANCELLED, cancel_requested=True, finished_at=now, dedupe_key=None, lease_until=None
            )
        ).rowcount  # type: ignore[attr-defined]
        if rows == 1:
            session.refresh(job)
            return job
        session.refresh(job)
    if job.status == RUNNING:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
        session.refresh(job)
        return job
    raise JobFinished(id=job_id)


def retry(session: Session, job_id: int, *, actor: Actor, owner_id: int | None = None) -> Job:
    """Queue a failed or cancelled job again; it resumes from its last checkpoint."""
    job = get_job(session, job_id, owner_id=owner_id)
    if job.status not in (FAILED, CANCELLED):
        raise JobNotRetryable(id=job_id)
    job.status = QUEUED
    job.attempts = 0
    job.run_at = utcnow()
    job.cancel_requested = False
    job.finished_at = None
    job.locked_by = None
    job.lease_until = None
    job.error = None
    session.flush()
    after_commit(session, wake_workers)
    return job


def purge(session: Session, *, finished_before: datetime) -> int:
    """Delete finished jobs older than a date; returns how many."""
    result = session.execute(delete(Job).where(Job.status.in_(FINISHED), Job.finished_at < finished_before))
    return int(result.rowcount)  # type: ignore[attr-defined]
