"""Periodic schedules: declared in code (or stored by an admin), enqueued by whichever worker sees them due.

    from kokyaku.jobs.schedules import register_schedule
    register_schedule("analytics.nightly", kind="analytics.run", every_seconds=86400)   # in <domain>/tasks.py

Exactly one job per period, however many workers run: the worker that moves `next_run_at` forward with a
conditional UPDATE (`WHERE next_run_at = <the due time it read>`) is the one that enqueues, in the same
transaction; the dedupe key `schedule:<name>:<due time>` guards the same period a second time.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kokyaku.db import utcnow
from kokyaku.errors import NotFound
from kokyaku.jobs.models import Job, Schedule
from kokyaku.jobs.service import enqueue

MIN_EVERY_SECONDS = 1


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"
    message = "There is no schedule named {name}."


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    kind: str
    every_seconds: int
    payload: dict[str, Any] = field(default_factory=dict)


SCHEDULES: dict[str, ScheduleSpec] = {}


def register_schedule(
    name: str, *, kind: str, every_seconds: int, payload: Mapping[str, Any] | None = None
) -> ScheduleSpec:
    """Declare a periodic job in code; workers store it (once) and run it every `every_seconds`."""
    if every_seconds < MIN_EVERY_SECONDS:
        raise ValueError("every_seconds must be at least 1")
    spec = ScheduleSpec(name, kind, int(every_seconds), dict(payload or {}))
    json.dumps(spec.payload)
    SCHEDULES[name] = spec
    return spec


def upsert_schedule(
    session: Session,
    *,
    name: str,
    kind: str,
    every_seconds: int,
    payload: Mapping[str, Any] | None = None,
    enabled: bool | None = None,
    first_run_at: datetime | None = None,
) -> Schedule:
    """Create a schedule, or update its kind, interval and payload (keeping its place in time)."""
    if every_seconds < MIN_EVERY_SECONDS:
        raise ValueError("every_seconds must be at least 1")
    row = session.scalar(select(Schedule).where(Schedule.name == name))
    if row is None:
        row = Schedule(
            name=name,
            kind=kind,
            payload=dict(payload or {}),
            every_seconds=every_seconds,
            next_run_at=first_run_at or utcnow(),
            enabled=True if enabled is None else enabled,
        )
        try:
            # Two workers starting together may both create a declared schedule; one insert wins.
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            row = session.scalars(select(Schedule).where(Schedule.name == name)).one()
        return row
    row.kind = kind
    row.every_seconds = every_seconds
    row.payload = dict(payload or {})
    if enabled is not None:
        row.enabled = enabled
    session.flush()
    return row


def sync_declared(session: Session) -> None:
    """Store the schedules declared in code; an admin's enabled/disabled choice is kept."""
    if not SCHEDULES:
        return
    existing = {s.name: s for s in session.scalars(select(Schedule).where(Schedule.name.in_(SCHEDULES)))}
    for spec in SCHEDULES.values():
        row = existing.get(spec.name)
        if row is None or (row.kind, row.every_seconds, row.payload) != (
            spec.kind,
            spec.every_seconds,
            spec.payload,
        ):
            upsert_schedule(
                session,
                name=spec.name,
                kind=spec.kind,
                every_seconds=spec.every_seconds,
                payload=spec.payload,
            )


def set_enabled(session: Session, *, name: str, enabled: bool) -> Schedule:
    row = session.scalar(select(Schedule).where(Schedule.name == name))
    if row is None:
        raise ScheduleNotFound(name=name)
    row.enabled = enabled
    session.flush()
    return row


def list_schedules(session: Session) -> list[Schedule]:
    return list(session.scalars(select(Schedule).order_by(Schedule.name)))


def any_due(session: Session, now: datetime) -> bool:
    return (
        session.scalar(
            select(Schedule.id).where(Schedule.enabled.is_(True), Schedule.next_run_at <= now).limit(1)
        )
        is not None
    )


def next_after(due: datetime, every_seconds: int, now: datetime) -> datetime:
    """The first period boundary after `now`: after downtime a missed schedule runs once, not n times."""
    step = timedelta(seconds=every_seconds)
    if due > now:
        return due
    periods = int((now - due) // step) + 1
    return due + periods * step


def enqueue_due(session: Session, *, now: datetime | None = None, is_sqlite: bool = False) -> list[Job]:
    """Enqueue one job for every schedule that is due and move it to its next period."""
    now = now or utcnow()
    stmt = (
        select(Schedule)
        .where(Schedule.enabled.is_(True), Schedule.next_run_at <= now)
        .order_by(Schedule.next_run_at)
        .limit(100)
    )
    if not is_sqlite:
        # PostgreSQL: rows another worker is enqueueing right now are skipped, not waited for.
        stmt = stmt.with_for_update(skip_locked=True)
    jobs = []
    for row in session.scalars(stmt).all():
        due = row.next_run_at
        moved = session.execute(
            update(Schedule)
            .where(Schedule.id == row.id, Schedule.next_run_at == due)
            .values(next_run_at=next_after(due, row.every_seconds, now), last_run_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if moved != 1:
            continue  # another worker took this period
        key = f"schedule:{row.name}:{due.isoformat()}"
        jobs.append(enqueue(session, kind=row.kind, payload=row.payload, dedupe_key=key))
    return jobs
