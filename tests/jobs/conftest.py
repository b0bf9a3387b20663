"""Job test helpers: a table the tests own to count handler executions and effects, and a second Database."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from kokyaku.config import Settings
from kokyaku.db import Database

runs_metadata = MetaData()
# One row per handler execution or per effect a handler writes; not part of the app's schema.
RUNS = Table(
    "job_test_runs",
    runs_metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer, nullable=False),
    Column("step", Integer, nullable=False, default=0),
    Column("worker", String(120), nullable=False, default=""),
)


@pytest.fixture
def runs(db: Database) -> Iterator[Table]:
    """The test-owned table, created for one test and dropped after it (the schema check must not see it)."""
    runs_metadata.create_all(db.engine)
    yield RUNS
    runs_metadata.drop_all(db.engine)


@pytest.fixture
def other_db(settings: Settings) -> Iterator[Database]:
    """A second engine and pool on the same database: what a second worker process would have."""
    second = Database(settings.database_url)
    yield second
    second.dispose()


def count_by_job(db: Database) -> dict[int, int]:
    with db.session(write=False) as s:
        return dict(s.execute(select(RUNS.c.job_id, func.count()).group_by(RUNS.c.job_id)).all())  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_declared_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schedules other domains declare in code would add their jobs to these tests' queue."""
    from kokyaku.jobs import schedules, service

    service.load_handlers()  # import every domain's tasks first: their declarations go to the real registry
    monkeypatch.setattr(schedules, "SCHEDULES", {})
