"""Background jobs of the segments domain: the daily RFM + lifecycle recomputation (also run on demand), which
then appends every segment's size to its history."""

from typing import Any

from kokyaku.config import get_settings
from kokyaku.jobs.schedules import register_schedule
from kokyaku.jobs.service import JobContext, handler
from kokyaku.segments import service
from kokyaku.segments.lifecycle import LifecycleRules
from kokyaku.segments.recompute import recompute_all

RECOMPUTE = "segments.recompute"
DAILY = 24 * 60 * 60


@handler(RECOMPUTE, label="RFM and lifecycle recomputation")
def run_recompute(ctx: JobContext) -> dict[str, Any]:
    """Rescore RFM and lifecycle for everyone, then record today's segment sizes. Idempotent: a second run
    writes only what changed since the first."""
    settings = get_settings()
    ctx.progress(0, 2, "Scoring customers")
    with ctx.db.session() as session:
        run = recompute_all(
            session,
            rules=LifecycleRules.from_settings(settings),
            tz=settings.timezone,
            trigger=str(ctx.payload.get("trigger", "job")),
        )
        result = {
            "run_id": run.id,
            "active": run.active,
            "rfm_written": run.rfm_written,
            "stage_changes": run.stage_changes,
            "seconds": run.seconds,
        }
    ctx.check()
    ctx.progress(1, 2, "Counting segments")
    with ctx.db.session() as session:
        result["segments_counted"] = service.refresh_sizes(session, settings.timezone)
    ctx.progress(2, 2, "Done")
    return result


register_schedule("segments.daily", kind=RECOMPUTE, every_seconds=DAILY, payload={"trigger": "schedule"})
