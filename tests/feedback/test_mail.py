"""Outgoing mail through a real SMTP server: nothing leaves before the transaction commits, Japanese and
English templates, the HTML alternative, and retries when the server is down."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from kokyaku.config import get_settings
from kokyaku.db import Database, utcnow
from kokyaku.jobs.models import Job
from kokyaku.mail.service import JOB_KIND, Message, render_mail, send_mail, send_mails
from tests.feedback.conftest import Inbox, free_port, run_mail_jobs, smtp_env


def test_mail_leaves_only_after_commit(db: Database, smtp: Inbox) -> None:
    message = render_mail(
        "survey_invitation",
        "ja",
        to="hanako@example.com",
        customer_name="佐藤 花子",
        survey_title="ご来店アンケート",
        url="https://crm.example.jp/r/abc",
        expires_on="2026年12月1日",
        sender_name="Kokyaku Shop",
    )
    with pytest.raises(RuntimeError), db.session() as s:
        send_mail(s, message)
        raise RuntimeError("the request failed after queueing the mail")
    assert run_mail_jobs(db) == {} and smtp.messages == []
    with db.session() as s:
        send_mail(s, message)
    assert smtp.messages == []  # queued, not sent inside the request
    assert run_mail_jobs(db) == {"succeeded": 1}
    (mail,) = smtp.messages
    assert mail["Subject"] == "【Kokyaku Shop】ご来店アンケートへのご協力のお願い"
    assert mail["From"] == "Kokyaku Shop <shop@example.com>" and mail["To"] == "hanako@example.com"
    plain = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "佐藤 花子 様" in plain and "https://crm.example.jp/r/abc" in plain and "2026年12月1日" in plain
    assert 'href="https://crm.example.jp/r/abc"' in html and "アンケートに回答する" in html


def test_english_template_escapes_html_and_keeps_the_subject_on_one_line() -> None:
    message = render_mail(
        "survey_invitation",
        "en",
        to="a@example.com",
        customer_name="<b>Ann</b>\nBcc: x@evil.test",
        survey_title="Visit\r\nsurvey",
        url="https://x.test/r/1",
        expires_on="Dec 1, 2026",
        sender_name="Shop",
    )
    assert message.subject == "Visit survey: a quick question from Shop"
    assert (
        message.html is not None and "&lt;b&gt;Ann&lt;/b&gt;" in message.html and "<b>Ann" not in message.html
    )
    with pytest.raises(ValueError):
        send_mails(None, [Message(to="a@example.com\nBcc: x@evil.test", subject="s", text="t")])  # type: ignore[arg-type]


def test_a_server_that_is_down_is_retried(db: Database, smtp: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    smtp_env(monkeypatch, free_port())  # nothing listens there
    with db.session() as s:
        send_mail(s, Message(to="owner@example.com", subject="Follow up", text="Please call back."))
    assert run_mail_jobs(db) == {"retrying": 1}
    with db.session(write=False) as s:
        job = s.scalar(select(Job).where(Job.kind == JOB_KIND))
        assert job is not None and job.status == "queued" and job.attempts == 1
        assert job.error and "ConnectionRefusedError" in job.error and "owner@example.com" not in job.error
    smtp_env(monkeypatch, smtp.port)  # the server is back
    with db.session() as s:
        s.execute(update(Job).where(Job.kind == JOB_KIND).values(run_at=utcnow() - timedelta(seconds=1)))
    assert run_mail_jobs(db) == {"succeeded": 1}
    assert [m["Subject"] for m in smtp.messages] == ["Follow up"]
    assert get_settings().smtp_port == smtp.port


def test_a_batch_resumes_after_the_last_message_sent(db: Database, smtp: Inbox) -> None:
    messages = [Message(to=f"c{i}@example.com", subject=f"m{i}", text="t") for i in range(3)]
    with db.session() as s:
        send_mails(s, messages)
        job = s.scalar(select(Job).where(Job.kind == JOB_KIND))
        assert job is not None
        job.state = {"next": 1}  # an earlier attempt sent the first message, then the worker died
    assert run_mail_jobs(db) == {"succeeded": 1}
    assert [m["To"] for m in smtp.messages] == ["c1@example.com", "c2@example.com"]
