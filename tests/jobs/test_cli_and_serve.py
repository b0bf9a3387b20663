"""`kokyaku worker`, `kokyaku jobs ...`, and the worker that `kokyaku serve` starts in-process."""

import gc
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from kokyaku.app import create_app
from kokyaku.cli.main import app as cli
from kokyaku.config import Settings, get_settings
from kokyaku.db import Database
from kokyaku.jobs.models import Job
from kokyaku.jobs.service import JobContext, JobFailed, enqueue, handler

runner = CliRunner()


@handler("test.cli", label="CLI test job")
def cli_job(ctx: JobContext) -> dict[str, Any]:
    if ctx.payload.get("fail"):
        raise JobFailed("The test asked this job to fail.")
    if ctx.payload.get("stop_the_worker"):
        os.kill(os.getpid(), signal.SIGTERM)  # as `systemctl stop` or `docker stop` would
        deadline = time.monotonic() + 10
        while not ctx.cancelled() and time.monotonic() < deadline:
            time.sleep(0.02)
        ctx.check()
    return {"echo": ctx.payload.get("echo")}


@pytest.fixture
def env(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KOKYAKU_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KOKYAKU_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _enqueue(db: Database, **payload: Any) -> int:
    with db.session() as s:
        return enqueue(s, kind="test.cli", payload=payload, max_attempts=1).id


def _job(db: Database, job_id: int) -> Job:
    with db.session(write=False) as s:
        return s.scalars(select(Job).where(Job.id == job_id)).one()


def test_worker_once_runs_the_due_jobs_and_exits(env: None, db: Database) -> None:
    a, b = _enqueue(db, echo="一"), _enqueue(db, echo="二")
    result = runner.invoke(cli, ["worker", "--once", "--concurrency", "2"])
    assert result.exit_code == 0, result.output
    assert "2 succeeded" in result.output
    assert _job(db, a).result == {"echo": "一"} and _job(db, b).result == {"echo": "二"}
    result = runner.invoke(cli, ["worker", "--once"])
    assert result.exit_code == 0 and "no jobs were due" in result.output


def test_worker_once_exits_non_zero_when_a_job_failed(env: None, db: Database) -> None:
    job_id = _enqueue(db, fail=True)
    result = runner.invoke(cli, ["worker", "--once"])
    assert result.exit_code == 1 and "1 job(s) failed" in result.output
    assert _job(db, job_id).error == "The test asked this job to fail."


def test_jobs_list_show_retry_cancel(env: None, db: Database) -> None:
    failed = _enqueue(db, fail=True)
    runner.invoke(cli, ["worker", "--once"])
    queued = _enqueue(db, echo="x")

    rows = [json.loads(line) for line in runner.invoke(cli, ["jobs", "list", "--json"]).stdout.splitlines()]
    assert [(r["id"], r["status"]) for r in rows] == [(queued, "queued"), (failed, "failed")]
    assert runner.invoke(cli, ["jobs", "list"]).exit_code == 0
    bad = runner.invoke(cli, ["jobs", "list", "--status", "exploded"])
    assert bad.exit_code == 1 and "--status must be one of" in bad.output

    shown = runner.invoke(cli, ["jobs", "show", str(failed)])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["error"] == "The test asked this job to fail."
    missing = runner.invoke(cli, ["jobs", "show", "999999"])
    assert missing.exit_code == 1 and "Job 999999 does not exist." in missing.output

    assert runner.invoke(cli, ["jobs", "retry", str(failed)]).exit_code == 0
    assert _job(db, failed).status == "queued"
    again = runner.invoke(cli, ["jobs", "retry", str(queued)])
    assert again.exit_code == 1 and "Only failed or cancelled jobs" in again.output
    assert runner.invoke(cli, ["jobs", "cancel", str(queued)]).exit_code == 0
    assert _job(db, queued).status == "cancelled"


def test_sigterm_stops_the_worker_and_hands_the_running_job_back(env: None, db: Database) -> None:
    job_id = _enqueue(db, stop_the_worker=True)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        result = runner.invoke(cli, ["worker", "--poll-interval", "0.05"])
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    assert result.exit_code == 0, result.output
    assert "stopping" in result.output
    job = _job(db, job_id)
    assert job.status == "queued" and job.attempts == 0 and job.locked_by is None


def test_serve_runs_an_in_process_worker(settings: Settings, db: Database) -> None:
    app = create_app(settings.model_copy(update={"run_worker_in_process": True}), db)
    with TestClient(app):
        assert app.state.worker is not None
        job_id = _enqueue(db, echo="served")
        deadline = time.monotonic() + 10
        while _job(db, job_id).status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.05)
    assert _job(db, job_id).result == {"echo": "served"}
    assert app.state.worker.join(0)  # stopped with the app


def test_tests_and_other_settings_can_turn_the_in_process_worker_off(
    settings: Settings, db: Database
) -> None:
    app = create_app(settings, db)
    try:
        with TestClient(app):
            assert app.state.worker is None
            # start-up also leaves what it built out of the collector's full passes
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
