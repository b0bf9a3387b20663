"""Periodic schedules: one job per period however many workers run; catch-up after downtime; on/off."""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from kokyaku.db import Database
from kokyaku.jobs import schedules
from kokyaku.jobs.models import Job, Schedule
from kokyaku.jobs.worker import Worker

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


def _jobs(db: Database) -> list[Job]:
    with db.session(write=False) as s:
        return list(s.scalars(select(Job).order_by(Job.id)))


def test_two_workers_enqueue_each_period_once(db: Database, other_db: Database) -> None:
    with db.session() as s:
        schedules.upsert_schedule(s, name="nightly", kind="test.nightly", every_seconds=60, first_run_at=T0)
    workers = [
        Worker(db, worker_id="a", handlers={"test.nightly": lambda ctx: None}),
        Worker(other_db, worker_id="b", handlers={"test.nightly": lambda ctx: None}),
    ]
    periods = 15
    for p in range(periods):
        now = T0 + timedelta(seconds=60 * p + 5)
        barrier = threading.Barrier(2)
        counts: list[int] = []

        def tick(
            w: Worker, now: datetime = now, barrier: threading.Barrier = barrier, counts: list[int] = counts
        ) -> None:
            barrier.wait()
            counts.append(w.enqueue_schedules(now))

        threads = [threading.Thread(target=tick, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(counts) == [0, 1], f"period {p}: {counts}"
    jobs = _jobs(db)
    assert len(jobs) == periods
    assert [j.dedupe_key for j in jobs] == [
        f"schedule:nightly:{(T0 + timedelta(seconds=60 * p)).isoformat()}" for p in range(periods)
    ]
    with db.session(write=False) as s:
        row = s.scalars(select(Schedule)).one()
        assert row.next_run_at == T0 + timedelta(seconds=60 * periods)


def test_a_schedule_missed_while_no_worker_ran_runs_once_not_once_per_missed_period(db: Database) -> None:
    with db.session() as s:
        schedules.upsert_schedule(s, name="hourly", kind="test.hourly", every_seconds=3600, first_run_at=T0)
    worker = Worker(db, handlers={"test.hourly": lambda ctx: None})
    late = T0 + timedelta(hours=10, minutes=30)
    assert worker.enqueue_schedules(late) == 1
    assert worker.enqueue_schedules(late) == 0
    with db.session(write=False) as s:
        row = s.scalars(select(Schedule)).one()
    assert row.next_run_at == T0 + timedelta(hours=11) and row.last_run_at == late


def test_the_worker_runs_the_job_a_schedule_enqueued(db: Database) -> None:
    ran: list[dict[str, int]] = []
    with db.session() as s:
        schedules.upsert_schedule(
            s, name="tidy", kind="test.tidy", every_seconds=300, payload={"keep_days": 30},
            first_run_at=datetime.now(UTC) - timedelta(seconds=1),
        )  # fmt: skip
    assert Worker(db, handlers={"test.tidy": lambda ctx: ran.append(ctx.payload)}).drain() == {"succeeded": 1}
    assert ran == [{"keep_days": 30}]
    assert Worker(db, handlers={"test.tidy": lambda ctx: ran.append(ctx.payload)}).drain() == {}


def test_a_disabled_schedule_enqueues_nothing(db: Database) -> None:
    with db.session() as s:
        schedules.upsert_schedule(s, name="off", kind="test.off", every_seconds=60, first_run_at=T0)
        schedules.set_enabled(s, name="off", enabled=False)
    assert Worker(db, handlers={}).enqueue_schedules(T0 + timedelta(hours=1)) == 0
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_declared_schedules_are_stored_once_and_keep_an_admins_choice(db: Database) -> None:
    spec = schedules.register_schedule("test.declared", kind="test.declared", every_seconds=120)
    try:
        with db.session() as s:
            schedules.sync_declared(s)
            schedules.set_enabled(s, name="test.declared", enabled=False)
        schedules.register_schedule("test.declared", kind="test.declared", every_seconds=600)
        with db.session() as s:
            schedules.sync_declared(s)
            schedules.sync_declared(s)
        with db.session(write=False) as s:
            rows = s.scalars(select(Schedule).where(Schedule.name == spec.name)).all()
        assert len(rows) == 1 and rows[0].every_seconds == 600 and rows[0].enabled is False
    finally:
        schedules.SCHEDULES.pop("test.declared", None)


def test_next_after() -> None:
    assert schedules.next_after(T0, 60, T0) == T0 + timedelta(seconds=60)
    assert schedules.next_after(T0, 60, T0 + timedelta(seconds=59)) == T0 + timedelta(seconds=60)
    assert schedules.next_after(T0, 60, T0 + timedelta(seconds=60)) == T0 + timedelta(seconds=120)
    assert schedules.next_after(T0 + timedelta(hours=1), 60, T0) == T0 + timedelta(hours=1)
