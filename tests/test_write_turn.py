"""SQLite has one writer at a time: the writers of one process take turns (db._WriteTurn), and a writer that
waits out the busy timeout gets DatabaseBusy (503 in the app, a localized page), having written nothing."""

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from kokyaku.app import create_app
from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.config import Settings
from kokyaku.db import Database
from kokyaku.errors import DatabaseBusy
from tests.conftest import PASSWORD, TEST_ACTOR, csrf_of, make_user
from tests.customers.factories import make_customer

SHORT_MS = 300


@pytest.fixture
def file_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'turns.db'}", busy_timeout_ms=SHORT_MS)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
    yield db
    db.dispose()


def _rows(db: Database) -> list[str]:
    with db.session(write=False) as s:
        return list(s.scalars(text("SELECT who FROM t ORDER BY id")))


def _other_process_writer(db: Database) -> sqlite3.Connection:
    """A connection outside the engine holding SQLite's write lock, as a separate `kokyaku worker` would."""
    conn = sqlite3.connect(str(db.engine.url.database), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_the_second_writer_begins_only_after_the_first_has_committed(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'turns.db'}", busy_timeout_ms=5000)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
    first_began, first_committed = threading.Event(), threading.Event()
    committed_when_second_began: list[bool] = []

    # What the second writer's connection asks SQLite, seen as each statement starts: with SQLite's own
    # busy waiting its BEGIN IMMEDIATE would start (and then sleep and poll) while the first still writes.
    @event.listens_for(db.engine, "checkout")
    def _trace(dbapi_conn: sqlite3.Connection, _record: object, _proxy: object) -> None:
        def seen(sql: str) -> None:
            if sql == "BEGIN IMMEDIATE":
                committed_when_second_began.append(first_committed.is_set())

        if threading.current_thread().name == "second":
            dbapi_conn.set_trace_callback(seen)

    def first() -> None:
        with db.session() as s:
            s.execute(text("INSERT INTO t (who) VALUES ('first')"))
            first_began.set()
            threading.Event().wait(0.3)  # the second writer arrives meanwhile
        first_committed.set()

    def second() -> None:
        first_began.wait()
        with db.session() as s:
            s.execute(text("INSERT INTO t (who) VALUES ('second')"))

    threads = [threading.Thread(target=first), threading.Thread(target=second, name="second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.dispose()
    assert committed_when_second_began == [True]
    assert _rows(Database(f"sqlite:///{tmp_path / 'turns.db'}")) == ["first", "second"]


def test_a_writer_that_waits_out_the_busy_timeout_gets_database_busy(file_db: Database) -> None:
    # In this process: a writer holds the turn for longer than the busy timeout.
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with file_db.session() as s:
            s.execute(text("INSERT INTO t (who) VALUES ('holder')"))
            holding.set()
            done.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait()
    try:
        with pytest.raises(DatabaseBusy), file_db.session() as s:
            s.execute(text("INSERT INTO t (who) VALUES ('late')"))
    finally:
        done.set()
        holder.join()
    assert _rows(file_db) == ["holder"]

    # In another process: SQLite's own lock, its busy error turned into the same DatabaseBusy.
    other = _other_process_writer(file_db)
    other.execute("INSERT INTO t (who) VALUES ('other')")
    try:
        with pytest.raises(DatabaseBusy), file_db.session() as s:
            s.execute(text("INSERT INTO t (who) VALUES ('late')"))
    finally:
        other.execute("COMMIT")
        other.close()
    with file_db.session() as s:  # the turn was given back: the same write now goes through
        s.execute(text("INSERT INTO t (who) VALUES ('again')"))
    assert _rows(file_db) == ["holder", "other", "again"]


def test_the_turn_is_given_back_on_rollback_and_when_a_connection_is_returned(file_db: Database) -> None:
    with pytest.raises(ZeroDivisionError), file_db.session() as s:
        s.execute(text("INSERT INTO t (who) VALUES ('rolled back')"))
        raise ZeroDivisionError
    # a connection that began writing and went back to the pool without commit or rollback
    writer = file_db.engine.execution_options(sqlite_immediate=True)
    conn = writer.connect()
    conn.execute(text("INSERT INTO t (who) VALUES ('abandoned')"))
    conn.close()
    # each would have kept the turn: this write would then wait out the timeout and fail
    with file_db.session() as s:
        s.execute(text("INSERT INTO t (who) VALUES ('kept')"))
    assert _rows(file_db) == ["kept"]


@pytest.fixture
def busy_app(settings: Settings, db: Database) -> Iterator[tuple[TestClient, Database]]:
    if not db.is_sqlite:
        pytest.skip(
            "SQLite only: PostgreSQL has no database-wide write lock, so a write there never waits for a "
            "whole other transaction and there is no busy database to answer 503 for"
        )
    short = Database(settings.database_url, busy_timeout_ms=SHORT_MS)
    yield TestClient(create_app(settings, short), follow_redirects=False), short
    short.dispose()


def test_api_answers_503_while_the_database_is_busy_and_loses_nothing(  # type: ignore[no-untyped-def]
    busy_app, db: Database, settings
) -> None:
    client, short = busy_app
    user = make_user(db, settings, role="admin")
    with db.session() as s:
        _row, token = auth.create_token(s, actor=TEST_ACTOR, user=s.get(User, user.id))
    batch = {"events": [{"event_id": "busy-1", "type": "page_view", "at": "2026-03-01T10:00:00+09:00",
                         "email": "busy@example.jp"}]}  # fmt: skip
    auth_header = {"Authorization": f"Bearer {token}"}
    other = _other_process_writer(short)
    try:
        resp = client.post("/api/v1/events", json=batch, headers=auth_header)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "database_busy"
    assert "try again" in resp.json()["detail"]
    assert resp.headers["retry-after"] == "1"
    resp = client.post("/api/v1/events", json=batch, headers=auth_header)
    assert resp.status_code == 200
    assert [r["status"] for r in resp.json()["results"]] == ["created"]  # the retry stores it once


def test_page_shows_the_busy_error_in_the_users_language(  # type: ignore[no-untyped-def]
    busy_app, db: Database, settings
) -> None:
    client, short = busy_app
    user = make_user(db, settings, role="sales", email="busy.page@example.com", locale="ja")
    with db.session() as s:
        cid = make_customer(s, name="山田 花子").id
    token = csrf_of(client.get("/login").text)
    resp = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 303
    token = csrf_of(client.get(f"/customers/{cid}").text)
    form = {"csrf_token": token, "channel": "store", "type": "visit", "at": "2026-03-02T14:30",
            "summary": "来店"}  # fmt: skip
    other = _other_process_writer(short)
    try:
        resp = client.post(f"/customers/{cid}/touchpoints", data=form)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert resp.status_code == 503
    assert "データベースが混み合っています。何も保存されていません。" in resp.text
    assert resp.headers["retry-after"] == "1"
    resp = client.post(f"/customers/{cid}/touchpoints", data=form)
    assert resp.status_code == 303  # sent again, it is saved
