"""Rendering and sending email.

    from kokyaku.mail.service import render_mail, send_mail

    message = render_mail("survey_invitation", locale, to=email, survey_title=..., url=...)
    send_mail(session, message)           # queued in the caller's transaction; leaves only after commit

`send_mail` (and `send_mails` for many) enqueues a `mail.send` job (kokyaku/mail/tasks.py): the job row
commits with the caller's transaction, so a rolled-back request sends nothing, and a failed SMTP conversation
is retried with backoff; the job checkpoints after each message, so a retry does not send a message twice.
Without the jobs domain, messages are sent by an after-commit hook instead.
"""

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from kokyaku.config import Settings, get_settings
from kokyaku.db import after_commit
from kokyaku.errors import KokyakuError

JOB_KIND = "mail.send"
MAX_ATTEMPTS = 6
BATCH = 100  # messages per job
LOCALES = ("ja", "en")
TEMPLATES = Path(__file__).parent / "templates"

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class MailNotConfigured(KokyakuError):
    code = "mail_not_configured"
    status = 409
    message = "Email is not set up: set KOKYAKU_SMTP_HOST (and the other KOKYAKU_SMTP_ settings)."


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    text: str
    html: str | None = None


def render_mail(name: str, locale: str, *, to: str, **context: Any) -> Message:
    """The message `name` in `locale`: subject and text from `<name>.<locale>.txt` (blocks `subject` and
    `text`), HTML from `<name>.<locale>.html` when that file exists."""
    locale = locale if locale in LOCALES else "ja"
    template = _env.get_template(f"{name}.{locale}.txt")
    subject = "".join(template.blocks["subject"](template.new_context(context)))
    text = "".join(template.blocks["text"](template.new_context(context))).strip() + "\n"
    html = None
    if (TEMPLATES / f"{name}.{locale}.html").exists():
        html = _env.get_template(f"{name}.{locale}.html").render(**context)
    # A subject never spans lines: a line break in a name would start a new header.
    return Message(to=to, subject=" ".join(subject.split()), text=text, html=html)


def is_configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def _check_address(to: str) -> None:
    if "\n" in to or "\r" in to or "@" not in parseaddr(to)[1]:
        raise ValueError("not an email address")


def send_mail(session: Session, message: Message) -> None:
    """Queue one message in the caller's transaction; it is sent only if that transaction commits."""
    send_mails(session, [message])


def send_mails(session: Session, messages: Sequence[Message]) -> None:
    """Queue many messages (one job per BATCH) in the caller's transaction."""
    for m in messages:
        _check_address(m.to)
    try:
        from kokyaku.jobs.service import enqueue
    except ImportError:  # pragma: no cover - only without the jobs domain

        def send_all() -> None:
            for m in messages:
                deliver(get_settings(), m)

        after_commit(session, send_all)
        return
    for i in range(0, len(messages), BATCH):
        payload = {"messages": [asdict(m) for m in messages[i : i + BATCH]]}
        enqueue(session, kind=JOB_KIND, payload=payload, max_attempts=MAX_ATTEMPTS)


def build(settings: Settings, message: Message) -> EmailMessage:
    """The MIME message: plain text, with an HTML alternative when there is one."""
    mail = EmailMessage()
    mail["From"] = settings.smtp_sender
    mail["To"] = message.to
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False)
    domain = parseaddr(settings.smtp_sender)[1].partition("@")[2] or "localhost"
    mail["Message-ID"] = make_msgid(domain=domain)
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


def connect(settings: Settings) -> smtplib.SMTP:
    """An open, authenticated connection to the configured SMTP server."""
    if not is_configured(settings):
        raise MailNotConfigured()
    timeout = settings.smtp_timeout_seconds
    if settings.smtp_tls == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    try:
        if settings.smtp_tls == "starttls":
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password)
    except BaseException:
        client.close()
        raise
    return client


def deliver(settings: Settings, message: Message) -> None:
    """Send one message now, on its own connection."""
    with connect(settings) as client:
        client.send_message(build(settings, message))
