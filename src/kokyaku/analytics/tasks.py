"""Background jobs of analytics: `analytics.run` (nightly, and on demand) scores every customer."""

from datetime import date
from typing import Any

from kokyaku.analytics.models import FitError
from kokyaku.analytics.scoring import score
from kokyaku.jobs.schedules import register_schedule
from kokyaku.jobs.service import JobContext, JobFailed, handler

RUN = "analytics.run"
DAILY = 24 * 60 * 60


@handler(RUN, label="CLV and churn scoring")
def run_scoring(ctx: JobContext) -> dict[str, Any]:
    """Fit, score and write customer_scores in one transaction; idempotent (a rerun overwrites the scores)."""
    until = ctx.payload.get("until")
    try:
        with ctx.db.session() as session:
            result = score(
                session,
                until=date.fromisoformat(until) if until else None,
                progress=lambda done, total, message: ctx.progress(done, total, message, session=session),
            )
    except FitError as exc:
        # The message names the model and the reason; it carries no personal data.
        raise JobFailed(str(exc)) from exc
    return result.as_dict()


register_schedule("analytics.nightly", kind=RUN, every_seconds=DAILY)
