"""Feedback test fixtures: a real SMTP server (aiosmtpd on 127.0.0.1 and a free port), the app configured to
send through it, and running the queued mail jobs with the real worker."""

import email
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from kokyaku.app import create_app
from kokyaku.config import Settings, get_settings
from kokyaku.db import Database
from kokyaku.jobs.service import load_handlers
from kokyaku.jobs.worker import Worker
from kokyaku.mail.service import JOB_KIND


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """What the SMTP server received, as parsed messages."""

    messages: list[EmailMessage] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))  # type: ignore[arg-type]
        return "250 Message accepted"


def smtp_env(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """The worker reads its SMTP settings from the environment, as a separate worker process would."""
    for key, value in {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_TLS": "none",
        "SMTP_SENDER": "Kokyaku Shop <shop@example.com>",
    }.items():
        monkeypatch.setenv(f"KOKYAKU_{key}", value)
    get_settings.cache_clear()


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    inbox = Inbox(port=free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    smtp_env(monkeypatch, inbox.port)
    yield inbox
    controller.stop()
    get_settings.cache_clear()


@pytest.fixture
def mail_settings(settings: Settings, smtp: Inbox) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_tls": "none",
            "smtp_sender": "Kokyaku Shop <shop@example.com>",
        }
    )


@pytest.fixture
def mail_app(mail_settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    return create_app(mail_settings, db)


def run_mail_jobs(db: Database) -> dict[str, int]:
    """Run the due mail jobs now, with the real worker (the tests run no background worker); a failed
    attempt is retried after the worker's backoff, not in this call."""
    spec = load_handlers()[JOB_KIND]
    worker = Worker(db, handlers={JOB_KIND: spec}, run_schedules=False)
    return dict(worker.drain())


def run_feedback_jobs(db: Database) -> dict[str, int]:
    """Run the due comment-analysis jobs now, with the real worker."""
    from kokyaku.feedback.responses import ANALYSE

    worker = Worker(db, handlers={ANALYSE: load_handlers()[ANALYSE]}, run_schedules=False)
    return dict(worker.drain())


@pytest.fixture
def mail_page_as(mail_app, db: Database, settings: Settings):  # type: ignore[no-untyped-def]
    """Like page_as, on the app that sends mail through the test SMTP server."""
    from fastapi.testclient import TestClient

    from tests.conftest import PASSWORD, csrf_of, make_user

    def factory(role: str = "marketing", locale: str | None = "en") -> TestClient:
        user = make_user(db, settings, role=role, email=f"{role}.mail@example.com", locale=locale)
        client = TestClient(mail_app, follow_redirects=False)
        token = csrf_of(client.get("/login").text)
        resp = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token})
        assert resp.status_code == 303, resp.text
        return client

    return factory
