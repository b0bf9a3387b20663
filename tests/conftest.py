"""Shared fixtures: a real database built by the migrations (SQLite file, or PostgreSQL when
KOKYAKU_TEST_DATABASE_URL is set), the app, users with tokens, and a logged-in page client."""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from kokyaku.app import create_app
from kokyaku.audit.service import Actor
from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.auth.schemas import UserCreate
from kokyaku.config import Settings
from kokyaku.db import Database
from kokyaku.migrate import upgrade
from kokyaku.models import metadata

PASSWORD = "correct-horse-battery"
TEST_ACTOR = Actor.system("test")


def _postgres_admin(url: str, sql: str) -> None:
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(sql))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database per test process (xdist worker), built by the migrations."""
    base = os.environ.get("KOKYAKU_TEST_DATABASE_URL")
    if not base:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        upgrade(url)
        yield url
        return
    worker = re.sub(r"\W", "", os.environ.get("PYTEST_XDIST_WORKER", "main"))
    name = f"{make_url(base).database}_{worker}_{os.getpid()}"
    _postgres_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _postgres_admin(base, f'CREATE DATABASE "{name}"')
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    _postgres_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        secret_key="test-secret",
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        run_worker_in_process=False,
    )


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[Database]:
    db = Database(settings.database_url)
    yield db
    db.dispose()


def _wipe(db: Database) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.is_sqlite:
            for name in tables:
                conn.execute(text(f'DELETE FROM "{name}"'))
        else:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    """The database, emptied after each test."""
    yield database
    _wipe(database)


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    """One committed transaction for a test's set-up or service calls."""
    with db.session() as s:
        yield s


@pytest.fixture
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, db)


@dataclass
class ApiUser:
    user: User
    token: str
    client: TestClient


def make_user(
    db: Database,
    settings: Settings,
    *,
    role: str = "admin",
    email: str | None = None,
    locale: str | None = None,
) -> User:
    with db.session() as s:
        data = UserCreate(
            email=email or f"{role}@example.com",
            name=f"{role} user",
            role=role,  # type: ignore[arg-type]
            password=PASSWORD,
            locale=locale,
        )  # type: ignore[arg-type]
        return auth.create_user(s, settings, actor=TEST_ACTOR, data=data)


@pytest.fixture
def api_as(app, db: Database, settings: Settings):  # type: ignore[no-untyped-def]
    """api_as("viewer") -> an ApiUser whose client sends that user's bearer token."""
    made: dict[str, ApiUser] = {}

    def factory(role: str = "admin") -> ApiUser:
        if role not in made:
            user = make_user(db, settings, role=role)
            with db.session() as s:
                _row, token = auth.create_token(s, actor=TEST_ACTOR, user=s.get(User, user.id))
            client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
            made[role] = ApiUser(user, token, client)
        return made[role]

    return factory


@pytest.fixture
def api(api_as) -> TestClient:  # type: ignore[no-untyped-def]
    return api_as("admin").client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture
def page_as(app, db: Database, settings: Settings):  # type: ignore[no-untyped-def]
    """page_as("sales", locale="ja") -> a TestClient logged in through the real login form."""

    def factory(role: str = "admin", locale: str | None = "en") -> TestClient:
        user = make_user(db, settings, role=role, email=f"{role}.page@example.com", locale=locale)
        client = TestClient(app, follow_redirects=False)
        token = csrf_of(client.get("/login").text)
        resp = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token})
        assert resp.status_code == 303, resp.text
        return client

    return factory
