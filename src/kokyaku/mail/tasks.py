"""The job that sends queued email; the worker retries it with backoff when the server is unreachable."""

from typing import Any

from kokyaku.config import get_settings
from kokyaku.jobs.service import JobContext, JobFailed, handler
from kokyaku.mail.service import JOB_KIND, Message, build, connect, is_configured


@handler(JOB_KIND, label="Send email")
def send(ctx: JobContext) -> dict[str, Any]:
    """Send the payload's messages over one connection, checkpointing after each, so that a retry resumes
    after the last message the server accepted."""
    settings = get_settings()  # the worker's own settings: SMTP credentials never enter the queue
    if not is_configured(settings):
        raise JobFailed("mail_not_configured: KOKYAKU_SMTP_HOST is empty")
    messages = ctx.payload.get("messages", [])
    start = int(ctx.state.get("next", 0))
    if start >= len(messages):
        return {"sent": len(messages)}
    with connect(settings) as client:
        for i in range(start, len(messages)):
            m = messages[i]
            client.send_message(build(settings, Message(m["to"], m["subject"], m["text"], m.get("html"))))
            ctx.checkpoint({"next": i + 1})
            ctx.progress(i + 1, len(messages))
    return {"sent": len(messages)}
