"""`kokyaku analytics run` and the analytics.run job: model choice by holdout, scores for every customer."""

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from kokyaku.analytics import tasks
from kokyaku.analytics.tables import CustomerScore
from kokyaku.cli.main import app as cli
from kokyaku.commerce.models import Order
from kokyaku.config import Settings, get_settings
from kokyaku.db import Database
from kokyaku.jobs.models import Job
from kokyaku.jobs.schedules import SCHEDULES
from kokyaku.jobs.service import enqueue
from kokyaku.jobs.worker import Worker
from tests.analytics.cdnow import import_cdnow
from tests.conftest import TEST_ACTOR

pytestmark = pytest.mark.slow


@pytest.fixture
def usd(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    monkeypatch.setenv("KOKYAKU_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KOKYAKU_DEFAULT_CURRENCY", "USD")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def cdnow(db: Database, usd: None) -> dict[str, int]:
    with db.session() as session:
        return import_cdnow(session)


def scores(db: Database) -> dict[int, CustomerScore]:
    with db.session(write=False) as session:
        return {s.customer_id: s for s in session.scalars(select(CustomerScore))}


def test_run_scores_every_buyer_and_reruns_replace_scores(db: Database, cdnow: dict[str, int]) -> None:
    result = CliRunner().invoke(cli, ["analytics", "run", "--until", "1998-06-30"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{") :])
    assert out["scored"] == 2357 and out["selection"] == "holdout"
    assert out["model"] in ("bgnbd", "paretonbd")
    assert out["model"] == min(out["holdout_error"], key=out["holdout_error"].get)
    got = scores(db)
    assert len(got) == 2357
    assert all(0 <= s.p_alive <= 1 and s.expected_365d >= s.expected_90d >= 0 for s in got.values())
    assert {s.churn_band for s in got.values()} <= {"low", "medium", "high"}
    # A frequent recent buyer is worth more and more likely alive than a one-off buyer from January 1997.
    busy = max(got.values(), key=lambda s: s.expected_365d)
    assert busy.churn_band == "low" and busy.clv_12m > 0
    assert busy.clv_12m > sorted(s.clv_12m for s in got.values())[len(got) // 2]
    # A customer whose orders are all cancelled loses the score on the next run.
    gone = cdnow["00004"]
    with db.session() as session:
        session.execute(update(Order).where(Order.customer_id == gone).values(status="cancelled"))
    again = CliRunner().invoke(cli, ["analytics", "run", "--until", "1998-06-30"])
    assert again.exit_code == 0, again.output
    after = scores(db)
    assert len(after) == 2356 and gone not in after


def test_failed_fit_writes_nothing(db: Database, cdnow: dict[str, int]) -> None:
    ok = CliRunner().invoke(cli, ["analytics", "run", "--until", "1998-06-30"])
    assert ok.exit_code == 0, ok.output
    before = {cid: s.scored_at for cid, s in scores(db).items()}
    # Nobody bought twice by 1997-01-01: no repeat-purchase model can be fitted.
    bad = CliRunner().invoke(cli, ["analytics", "run", "--until", "1997-01-01"])
    assert bad.exit_code == 1
    assert "could not be fitted" in bad.output and "no scores were written" in bad.output
    assert {cid: s.scored_at for cid, s in scores(db).items()} == before
    empty = CliRunner().invoke(cli, ["analytics", "run", "--until", "1990-01-01"])
    assert empty.exit_code == 1 and "no orders" in empty.output


def test_job_and_nightly_schedule(db: Database, cdnow: dict[str, int]) -> None:
    assert SCHEDULES["analytics.nightly"].kind == tasks.RUN
    with db.session() as session:
        enqueue(session, kind=tasks.RUN, payload={"until": "1998-06-30"}, actor=TEST_ACTOR)
    outcomes = Worker(db, handlers={tasks.RUN: tasks.run_scoring}, run_schedules=False).drain()
    assert outcomes["succeeded"] == 1
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(CustomerScore)) == 2357
        job = session.scalars(select(Job)).one()
        assert job.result["scored"] == 2357
    with db.session() as session:
        bad = enqueue(session, kind=tasks.RUN, payload={"until": "1997-01-01"}, actor=TEST_ACTOR).id
    Worker(db, handlers={tasks.RUN: tasks.run_scoring}, run_schedules=False).drain(max_jobs=1)
    with db.session(write=False) as session:
        job = session.get(Job, bad)
        assert job is not None and "could not be fitted" in (job.error or "")
        assert session.scalar(select(func.count()).select_from(CustomerScore)) == 2357
