"""Claiming: the PostgreSQL path skips rows another transaction holds instead of waiting for them."""

import time

import pytest
from sqlalchemy import select

from kokyaku.db import Database
from kokyaku.jobs.models import Job
from kokyaku.jobs.service import enqueue
from kokyaku.jobs.worker import claim_next


def test_a_locked_job_is_skipped_not_waited_for_on_postgresql(db: Database, other_db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has one writer at a time; BEGIN IMMEDIATE serialises claims there")
    with db.session() as s:
        first = enqueue(s, kind="test.echo").id
        second = enqueue(s, kind="test.echo").id
    # Another worker is in the middle of claiming the first job: it holds the row lock.
    with other_db.engine.connect() as holder:
        holder.execute(select(Job.id).where(Job.id == first).with_for_update())
        started = time.monotonic()
        claimed = claim_next(db, worker_id="w", kinds=["test.echo"], lease_seconds=60)
        waited = time.monotonic() - started
        holder.rollback()
    assert claimed is not None and claimed.id == second
    assert waited < 5  # it did not queue up behind the lock (a plain FOR UPDATE would block until rollback)


def test_claims_from_two_connections_never_return_the_same_job(db: Database, other_db: Database) -> None:
    with db.session() as s:
        for _ in range(30):
            enqueue(s, kind="test.echo")
    taken: list[int] = []
    for _ in range(15):
        for database in (db, other_db):
            c = claim_next(database, worker_id="w", kinds=["test.echo"], lease_seconds=60)
            assert c is not None
            taken.append(c.id)
    assert len(taken) == len(set(taken)) == 30
    assert claim_next(db, worker_id="w", kinds=["test.echo"], lease_seconds=60) is None
