"""Enqueueing in the caller's transaction, running, retries, leases, checkpoints, cancelling and stopping."""

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Table, func, insert, select, update

from kokyaku.audit.service import Actor
from kokyaku.db import Database, utcnow
from kokyaku.errors import ValidationFailed
from kokyaku.jobs import service
from kokyaku.jobs.models import Job
from kokyaku.jobs.service import JobContext, JobFailed, LeaseLost, enqueue
from kokyaku.jobs.worker import Worker
from tests.jobs.conftest import RUNS, count_by_job

ACTOR = Actor.system("test")


def _job(db: Database, job_id: int) -> Job:
    with db.session(write=False) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _enqueue(db: Database, **kw: Any) -> int:
    with db.session() as s:
        return enqueue(s, **{"kind": "test.echo", "payload": {}, **kw}).id


def test_enqueue_in_a_rolled_back_transaction_leaves_no_job(db: Database) -> None:
    ran: list[int] = []
    worker = Worker(db, handlers={"test.echo": lambda ctx: ran.append(ctx.job_id)}, retry_base_seconds=0)
    with pytest.raises(RuntimeError), db.session() as s:
        enqueue(s, kind="test.echo", payload={"n": 1})
        raise RuntimeError("the request failed after enqueueing")
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    assert worker.drain() == {} and ran == []


def test_a_handler_runs_once_and_its_result_is_stored(db: Database, runs: Table) -> None:
    def echo(ctx: JobContext) -> dict[str, Any]:
        with ctx.db.session() as s:
            s.execute(insert(RUNS).values(job_id=ctx.job_id))
        return {"doubled": ctx.payload["n"] * 2, "名前": "山田"}

    job_id = _enqueue(db, payload={"n": 21}, actor=ACTOR)
    worker = Worker(db, handlers={"test.echo": echo})
    assert worker.drain() == {"succeeded": 1}
    assert worker.drain() == {}  # nothing runs twice
    job = _job(db, job_id)
    assert job.status == "succeeded" and job.result == {"doubled": 42, "名前": "山田"}
    assert job.attempts == 1 and job.finished_at is not None and job.started_at is not None
    assert job.locked_by is None and job.lease_until is None and job.percent == 100
    assert count_by_job(db) == {job_id: 1}


def test_a_job_becomes_due_at_its_run_at(db: Database) -> None:
    worker = Worker(db, handlers={"test.echo": lambda ctx: None})
    later = _enqueue(db, run_at=utcnow() + timedelta(hours=1))
    assert worker.drain() == {}
    with db.session() as s:
        s.execute(update(Job).where(Job.id == later).values(run_at=utcnow() - timedelta(seconds=1)))
    assert worker.drain() == {"succeeded": 1}


def test_higher_priority_runs_first(db: Database) -> None:
    order: list[str] = []
    worker = Worker(db, handlers={"test.echo": lambda ctx: order.append(ctx.payload["name"])})
    _enqueue(db, payload={"name": "low"})
    _enqueue(db, payload={"name": "high"}, priority=5)
    _enqueue(db, payload={"name": "low2"})
    worker.drain()
    assert order == ["high", "low", "low2"]


def test_a_worker_leaves_jobs_it_has_no_handler_for(db: Database) -> None:
    other = _enqueue(db, kind="test.other")
    assert Worker(db, handlers={"test.echo": lambda ctx: None}).drain() == {}
    assert _job(db, other).status == "queued"


def test_dedupe_key_gives_back_the_unfinished_job_and_is_freed_when_it_finishes(db: Database) -> None:
    first = _enqueue(db, dedupe_key="recompute:42")
    assert _enqueue(db, dedupe_key="recompute:42") == first
    with db.session() as s:  # twice in one transaction, too
        a = enqueue(s, kind="test.echo", dedupe_key="recompute:43")
        assert enqueue(s, kind="test.echo", dedupe_key="recompute:43").id == a.id
    Worker(db, handlers={"test.echo": lambda ctx: None}).drain()
    assert _job(db, first).dedupe_key is None
    assert _enqueue(db, dedupe_key="recompute:42") != first


def test_enqueue_refuses_what_would_break_later(db: Database) -> None:
    with db.session() as s:
        with pytest.raises(TypeError):
            enqueue(s, kind="test.echo", payload={"when": object()})
        with pytest.raises(ValueError):
            enqueue(s, kind="", payload={})
        with pytest.raises(ValueError):
            enqueue(s, kind="test.echo", max_attempts=0)


def test_a_failing_handler_is_retried_with_backoff_then_failed_without_personal_data(db: Database) -> None:
    calls: list[int] = []

    def broken(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        raise ValueError("cannot parse hanako.sato@example.jp")

    job_id = _enqueue(db, max_attempts=3)
    worker = Worker(db, handlers={"test.echo": broken}, retry_base_seconds=30)
    assert worker.drain() == {"retrying": 1}
    job = _job(db, job_id)
    assert job.status == "queued" and job.attempts == 1
    assert timedelta(seconds=25) < job.run_at - utcnow() <= timedelta(seconds=30)
    assert job.error and job.error.startswith("ValueError at ") and "test_queue.py" in job.error
    assert "example.jp" not in job.error
    assert worker.backoff(1) == timedelta(seconds=30) and worker.backoff(3) == timedelta(seconds=120)

    fast = Worker(db, handlers={"test.echo": broken}, retry_base_seconds=0)
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(run_at=utcnow()))
    assert fast.drain() == {"retrying": 1, "failed": 1}
    job = _job(db, job_id)
    assert calls == [1, 2, 3]
    assert job.status == "failed" and job.attempts == 3 and job.finished_at is not None
    assert "example.jp" not in (job.error or "")


def test_error_messages_that_are_safe_to_show_are_kept(db: Database) -> None:
    def refuse(ctx: JobContext) -> None:
        if ctx.payload["how"] == "jobfailed":
            raise JobFailed("The file has no header row.")
        raise ValidationFailed([("email", "Not a valid email: {value}", {"value": "secret@example.jp"})])

    a = _enqueue(db, payload={"how": "jobfailed"}, max_attempts=1)
    b = _enqueue(db, payload={"how": "kokyaku"}, max_attempts=1)
    Worker(db, handlers={"test.echo": refuse}).drain()
    assert _job(db, a).error == "The file has no header row."
    assert _job(db, b).error == "invalid: The input is not valid."


def _stepper(pause: float = 0.0, steps: int = 10) -> Any:
    """An idempotent handler: each step's effect and its checkpoint commit in one transaction."""

    def run(ctx: JobContext) -> dict[str, int]:
        for step in range(ctx.state.get("next", 0), steps):
            with ctx.db.session() as s:
                s.execute(insert(RUNS).values(job_id=ctx.job_id, step=step, worker=ctx.worker.worker_id))
                ctx.checkpoint({"next": step + 1}, session=s)
            ctx.progress(step + 1, steps, "Working")
            time.sleep(pause)
        return {"steps": steps}

    return run


def test_a_job_whose_worker_died_is_resumed_by_another_without_repeating_effects(
    db: Database, runs: Table
) -> None:
    job_id = _enqueue(db)
    # A worker claimed the job, committed 4 steps, then was killed: its lease is over.
    with db.session() as s:
        s.execute(insert(RUNS), [{"job_id": job_id, "step": i, "worker": "dead"} for i in range(4)])
        s.execute(
            update(Job).where(Job.id == job_id).values(
                status="running", attempts=1, locked_by="dead", state={"next": 4},
                lease_until=utcnow() - timedelta(seconds=1), started_at=utcnow() - timedelta(minutes=1),
            )
        )  # fmt: skip
    worker = Worker(db, worker_id="rescuer", handlers={"test.echo": _stepper()})
    assert worker.drain() == {"succeeded": 1}
    job = _job(db, job_id)
    assert job.status == "succeeded" and job.attempts == 2 and job.progress == 10 and job.percent == 100
    with db.session(write=False) as s:
        steps = s.execute(select(RUNS.c.step, RUNS.c.worker).order_by(RUNS.c.step)).all()
    assert [st for st, _ in steps] == list(range(10))
    assert {w for st, w in steps if st >= 4} == {"rescuer"}


def test_a_running_job_with_a_live_lease_is_left_alone(db: Database) -> None:
    job_id = _enqueue(db)
    with db.session() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status="running", attempts=1, locked_by="alive", lease_until=utcnow() + timedelta(minutes=1)
            )
        )
    assert Worker(db, handlers={"test.echo": lambda ctx: None}).drain() == {}
    assert _job(db, job_id).locked_by == "alive"


def test_an_expired_job_out_of_attempts_fails(db: Database) -> None:
    job_id = _enqueue(db, max_attempts=1)
    with db.session() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status="running", attempts=1, locked_by="dead", lease_until=utcnow() - timedelta(seconds=1)
            )
        )
    assert Worker(db, handlers={"test.echo": lambda ctx: None}).drain() == {}
    job = _job(db, job_id)
    assert job.status == "failed" and job.error == "The worker stopped while running this job."


def test_a_worker_that_lost_its_lease_can_write_nothing(db: Database, runs: Table) -> None:
    """A stalled worker whose job was taken over: its checkpoint, with the effects beside it, is refused."""
    stalled = threading.Event()
    resume = threading.Event()
    outcomes: list[str | None] = []

    def slow(ctx: JobContext) -> None:
        if ctx.worker.worker_id == "zombie":
            stalled.set()
            resume.wait(10)
        with ctx.db.session() as s:
            s.execute(insert(RUNS).values(job_id=ctx.job_id, worker=ctx.worker.worker_id))
            ctx.checkpoint({"done": True}, session=s)

    job_id = _enqueue(db)
    zombie = Worker(db, worker_id="zombie", handlers={"test.echo": slow}, lease_seconds=60)
    thread = threading.Thread(target=lambda: outcomes.append(zombie.run_one()))
    thread.start()
    assert stalled.wait(10)
    with db.session() as s:  # the zombie's lease ran out (its heartbeat is not running in run_one)
        s.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1)))
    assert Worker(db, worker_id="rescuer", handlers={"test.echo": slow}).drain() == {"succeeded": 1}
    resume.set()
    thread.join(10)
    assert outcomes == ["lost"]
    with db.session(write=False) as s:
        assert s.execute(select(RUNS.c.worker)).scalars().all() == ["rescuer"]
    job = _job(db, job_id)
    assert job.status == "succeeded" and job.locked_by is None


def test_the_context_refuses_writes_after_losing_the_lease(db: Database) -> None:
    seen: list[type] = []

    def handler(ctx: JobContext) -> None:
        with ctx.db.session() as s:
            s.execute(update(Job).where(Job.id == ctx.job_id).values(locked_by="someone-else"))
        try:
            ctx.progress(1, 2)
        except LeaseLost:
            seen.append(LeaseLost)
            raise

    _enqueue(db)
    assert Worker(db, handlers={"test.echo": handler}).drain() == {"lost": 1}
    assert seen == [LeaseLost]


def test_two_workers_never_run_the_same_job_twice(db: Database, other_db: Database, runs: Table) -> None:
    def count(ctx: JobContext) -> None:
        with ctx.db.session() as s:
            s.execute(insert(RUNS).values(job_id=ctx.job_id, worker=ctx.worker.worker_id))

    with db.session() as s:
        ids = [enqueue(s, kind="test.echo", payload={"i": i}).id for i in range(200)]
    # Two "processes" (separate engines and pools), each with four threads, drain the queue together.
    workers = [
        Worker(db, worker_id="a", handlers={"test.echo": count}, concurrency=4),
        Worker(other_db, worker_id="b", handlers={"test.echo": count}, concurrency=4),
    ]
    results: list[Any] = []
    threads = [threading.Thread(target=lambda w=w: results.append(w.drain())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(r["succeeded"] for r in results) == 200
    assert count_by_job(db) == {i: 1 for i in ids}
    with db.session(write=False) as s:
        assert set(s.scalars(select(Job.status))) == {"succeeded"}
        by_worker = dict(s.execute(select(RUNS.c.worker, func.count()).group_by(RUNS.c.worker)).all())
    assert set(by_worker) <= {"a", "b"} and sum(by_worker.values()) == 200


def test_progress_is_visible_from_another_session_while_the_job_runs(db: Database) -> None:
    halfway = threading.Event()
    finish = threading.Event()

    def long(ctx: JobContext) -> dict[str, int]:
        ctx.progress(5, 10, "Importing rows")
        halfway.set()
        assert finish.wait(10)
        ctx.progress(10, 10)
        return {"rows": 10}

    job_id = _enqueue(db)
    worker = Worker(db, handlers={"test.echo": long})
    thread = threading.Thread(target=worker.drain)
    thread.start()
    try:
        assert halfway.wait(10)
        job = _job(db, job_id)  # a new session, another connection
        assert (job.status, job.progress, job.progress_total, job.percent) == ("running", 5, 10, 50)
        assert job.message == "Importing rows"
    finally:
        finish.set()
        thread.join(10)
    assert _job(db, job_id).status == "succeeded"


def test_cancelling_a_queued_job_stops_it_from_running(db: Database) -> None:
    ran: list[int] = []
    job_id = _enqueue(db, dedupe_key="k")
    with db.session() as s:
        job = service.cancel(s, job_id, actor=ACTOR)
        assert job.status == "cancelled"
    assert Worker(db, handlers={"test.echo": lambda ctx: ran.append(1)}).drain() == {}
    assert ran == [] and _job(db, job_id).dedupe_key is None
    with db.session() as s, pytest.raises(service.JobFinished):
        service.cancel(s, job_id, actor=ACTOR)


def test_cancelling_a_running_job_stops_it_at_its_next_check(db: Database, runs: Table) -> None:
    started = threading.Event()
    go_on = threading.Event()

    def steps(ctx: JobContext) -> None:
        for step in range(ctx.state.get("next", 0), 100):
            ctx.check()
            with ctx.db.session() as s:
                s.execute(insert(RUNS).values(job_id=ctx.job_id, step=step))
                ctx.checkpoint({"next": step + 1}, session=s)
            if step == 2:
                started.set()
                go_on.wait(10)

    job_id = _enqueue(db)
    worker = Worker(db, handlers={"test.echo": steps})
    thread = threading.Thread(target=worker.drain)
    thread.start()
    assert started.wait(10)
    with db.session() as s:
        assert service.cancel(s, job_id, actor=ACTOR).cancel_requested
    go_on.set()
    thread.join(10)
    job = _job(db, job_id)
    assert job.status == "cancelled" and job.state == {"next": 3}
    assert count_by_job(db) == {job_id: 3}
    # Run again: it resumes from its checkpoint and repeats no step.
    with db.session() as s:
        service.retry(s, job_id, actor=ACTOR)
    assert Worker(db, handlers={"test.echo": steps}).drain() == {"succeeded": 1}
    with db.session(write=False) as s:
        assert sorted(s.scalars(select(RUNS.c.step))) == list(range(100))


def test_a_stopping_worker_hands_its_job_back_to_the_queue(db: Database, runs: Table) -> None:
    in_step = threading.Event()

    def steps(ctx: JobContext) -> None:
        for step in range(ctx.state.get("next", 0), 5):
            ctx.check()
            with ctx.db.session() as s:
                s.execute(insert(RUNS).values(job_id=ctx.job_id, step=step))
                ctx.checkpoint({"next": step + 1}, session=s)
            in_step.set()
            time.sleep(0.05)

    job_id = _enqueue(db)
    worker = Worker(db, handlers={"test.echo": steps}, poll_interval=0.05)
    thread = worker.start_thread()
    assert in_step.wait(10)
    worker.stop()
    assert worker.join(10) and not thread.is_alive()
    job = _job(db, job_id)
    assert job.status == "queued" and job.attempts == 0 and job.locked_by is None
    assert 1 <= job.state["next"] < 5
    assert Worker(db, handlers={"test.echo": steps}).drain() == {"succeeded": 1}
    with db.session(write=False) as s:
        assert sorted(s.scalars(select(RUNS.c.step))) == list(range(5))


def test_a_running_worker_picks_up_a_new_job_when_woken_by_the_commit(db: Database) -> None:
    done = threading.Event()
    worker = Worker(db, handlers={"test.echo": lambda ctx: done.set()}, poll_interval=30)
    worker.start_thread()
    try:
        time.sleep(0.2)  # the worker has looked once, found nothing, and sleeps for 30 s
        started = time.monotonic()
        _enqueue(db)
        assert done.wait(10)
        assert time.monotonic() - started < 10
    finally:
        worker.stop()
        worker.join(10)


def test_the_heartbeat_keeps_a_long_step_from_being_taken_over(db: Database) -> None:
    release = threading.Event()
    job_id = _enqueue(db)
    worker = Worker(
        db, handlers={"test.echo": lambda ctx: release.wait(20)}, lease_seconds=1.5, poll_interval=0.05
    )
    worker.start_thread()
    try:
        deadline = time.monotonic() + 10
        while _job(db, job_id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(3.5)  # more than two leases with no progress reported by the handler
        other = Worker(db, worker_id="thief", handlers={"test.echo": lambda ctx: None})
        assert other.drain() == {}
        assert _job(db, job_id).locked_by == worker.worker_id
    finally:
        release.set()
        worker.stop()
        worker.join(10)
    assert _job(db, job_id).status == "succeeded"


def test_purge_deletes_only_old_finished_jobs(db: Database) -> None:
    old = _enqueue(db)
    keep = _enqueue(db)
    Worker(db, handlers={"test.echo": lambda ctx: None}).drain()
    queued = _enqueue(db)
    with db.session() as s:
        s.execute(update(Job).where(Job.id == old).values(finished_at=utcnow() - timedelta(days=40)))
        assert service.purge(s, finished_before=utcnow() - timedelta(days=30)) == 1
    with db.session(write=False) as s:
        assert set(s.scalars(select(Job.id))) == {keep, queued}
