"""Background work of the feedback domain: analysing the comments of each new survey response, and clearing
the public link's expired throttle rows. Importing this
module (every worker imports each domain's tasks) also registers the feedback segment fields, so that a worker
can count segments that use them."""

from datetime import timedelta
from typing import Any

from sqlalchemy import delete

import kokyaku.feedback.service  # noqa: F401  (segment fields and merge participant)
from kokyaku.config import get_settings
from kokyaku.db import utcnow
from kokyaku.feedback.models import SubmitHit
from kokyaku.feedback.responses import ANALYSE, analyse_response
from kokyaku.jobs.schedules import register_schedule
from kokyaku.jobs.service import JobContext, handler

PURGE = "feedback.purge_throttle"


@handler(ANALYSE, label="Analyse survey comments")
def analyse_comments(ctx: JobContext) -> dict[str, Any]:
    """Sentiment, key phrases and topics of one response's comments (idempotent: only unanalysed ones)."""
    with ctx.db.session() as session:
        done = analyse_response(session, int(ctx.payload["response_id"]))
    return {"analysed": done}


@handler(PURGE, label="Clear expired survey throttle entries")
def purge_throttle(ctx: JobContext) -> dict[str, Any]:
    """Delete submission counts older than the throttle window (idempotent)."""
    cutoff = utcnow() - timedelta(seconds=get_settings().survey_public_window_seconds)
    with ctx.db.session() as session:
        deleted = session.execute(delete(SubmitHit).where(SubmitHit.at <= cutoff)).rowcount  # type: ignore[attr-defined]
    return {"deleted": int(deleted or 0)}


register_schedule("feedback.purge_throttle", kind=PURGE, every_seconds=3600)
