"""The kokyaku command on a fresh SQLite file: init, users, tokens, demo; one-line failures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from kokyaku.customers import search_index
from kokyaku.customers.models import Customer, Identity


def kokyaku(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KOKYAKU_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "KOKYAKU_ARGON2_MEMORY_COST": "1024",
        "KOKYAKU_ARGON2_TIME_COST": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "kokyaku.cli.main", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def initialised(tmp_path: Path) -> Path:
    result = kokyaku(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_init_is_repeatable(initialised: Path) -> None:
    again = kokyaku(initialised, "init")
    assert again.returncode == 0 and "up to date" in again.stderr


def test_user_and_token(initialised: Path) -> None:
    made = kokyaku(
        initialised,
        "user",
        "create",
        "--email",
        "Ops@Example.com",
        "--password",
        "long-enough-pw",
        "--role",
        "manager",
    )
    assert made.returncode == 0, made.stderr
    token = kokyaku(initialised, "token", "create", "--user", "ops@example.com")
    assert (
        token.returncode == 0 and token.stdout.strip().startswith("kky_") and len(token.stdout.split()) == 1
    )
    dup = kokyaku(initialised, "user", "create", "--email", "ops@example.com", "--password", "long-enough-pw")
    assert dup.returncode == 1 and "already exists" in dup.stderr and "Traceback" not in dup.stderr
    bad = kokyaku(
        initialised, "user", "create", "--email", "x@example.com", "--password", "short", "--role", "root"
    )
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    reset = kokyaku(
        initialised, "user", "set-password", "--email", "ops@example.com", "--password", "another-long-pw"
    )
    assert reset.returncode == 0, reset.stderr
    short = kokyaku(initialised, "user", "set-password", "--email", "ops@example.com", "--password", "short")
    assert short.returncode == 1 and "password" in short.stderr
    nobody = kokyaku(initialised, "token", "create", "--user", "nobody@example.com")
    assert nobody.returncode == 1 and "no user" in nobody.stderr


def test_demo_writes_searchable_customers_once(initialised: Path) -> None:
    result = kokyaku(initialised, "demo", "--customers", "300", "--if-empty")
    assert result.returncode == 0, result.stderr
    engine = create_engine(f"sqlite:///{initialised / 'cli.db'}")
    with engine.connect() as conn:
        people = conn.scalar(select(func.count()).select_from(Customer).where(Customer.kind == "person"))
        companies = conn.scalar(select(func.count()).select_from(Customer).where(Customer.kind == "company"))
        kana = conn.scalar(select(func.count()).select_from(Customer).where(Customer.name_kana.is_not(None)))
        emails = conn.scalar(select(func.count()).select_from(Identity).where(Identity.kind == "email"))
    with Session(engine) as s:
        grams = len(search_index.grams_of(s, s.scalars(select(Customer.id))))
    assert people + companies == 300 and companies == 6
    assert kana > 250 and emails == people and grams == 300
    again = kokyaku(initialised, "demo", "--customers", "300", "--if-empty")
    assert again.returncode == 0 and "exist already" in again.stderr
    ensure = kokyaku(initialised, "user", "ensure-admin")
    assert ensure.returncode == 0 and ensure.stdout.startswith("admin login: admin@example.com / ")
    assert "exists already" in kokyaku(initialised, "user", "ensure-admin").stderr


def test_bad_database_url_fails_with_one_line(tmp_path: Path) -> None:
    env_url = "postgresql+psycopg://nobody:x@127.0.0.1:1/none"
    result = subprocess.run(
        [sys.executable, "-m", "kokyaku.cli.main", "init"],
        env={**os.environ, "KOKYAKU_DATABASE_URL": env_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        result.returncode == 1 and "could not migrate" in result.stderr and "Traceback" not in result.stderr
    )


def test_commands_on_a_database_never_initialised_say_to_run_init(tmp_path: Path) -> None:
    result = kokyaku(tmp_path, "demo", "--customers", "5")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the database is not set up, or is older than this version of Kokyaku: run `kokyaku init`"
    ]
