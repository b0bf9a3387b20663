"""Shared fixtures: a real database built by the migrations (SQLite file, or PostgreSQL when
KOKYAKU_TEST_DATABASE_URL is set), the app, users with tokens, and a logged-in page client."""

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from kokyaku.app import create_app
from kokyaku.audit.service import Actor
from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.auth.schemas import UserCreate
from kokyaku.config import Settings
from kokyaku.customers.search_index import FTS_TABLE
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
            # the search index has no model (and no foreign key to empty it): ids start again from 1
            conn.execute(text(f"DELETE FROM {FTS_TABLE}"))
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


# ---------------------------------------------------------------- a real server and a real browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).parent / "e2e" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh, which installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="ja-JP", viewport={"width": 390, "height": 844})  # a phone
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()


def screenshot(page: Page, name: str) -> None:  # noqa: D103
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
