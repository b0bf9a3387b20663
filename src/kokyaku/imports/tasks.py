"""The background job that runs an uploaded import (kind "imports.run", payload {"run_id": ...}).

A retried job (after a crash or a lost lease) continues the same run: the run row knows how many rows its
committed batches held, and the import resumes after them; upserts make any overlap harmless."""

from typing import Any

from kokyaku.audit.service import Actor
from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.errors import KokyakuError
from kokyaku.imports.kinds import Context
from kokyaku.imports.service import Options, Progress, get_run, run_import
from kokyaku.jobs.service import JobContext, JobInterrupted, handler

KIND = "imports.run"
_MESSAGES = {"check": "Checking rows", "write": "Importing rows"}


def enqueue_run(session: Any, *, run_id: int, path: str, actor: Actor, context: Context) -> int:
    """Queue the job for run `run_id` (its file at `path`) in the caller's transaction; returns the job id."""
    from kokyaku.jobs.service import enqueue

    payload = {"run_id": run_id, "path": path, "timezone": context.timezone, "currency": context.currency}
    job = enqueue(session, kind=KIND, payload=payload, actor=actor, dedupe_key=f"{KIND}:{run_id}")
    return int(job.id)


@handler(KIND, label="CSV import")
def run_job(ctx: JobContext) -> dict[str, Any]:
    run_id = int(ctx.payload["run_id"])
    with ctx.db.session(write=False) as s:
        run = get_run(s, run_id)
        user = s.get(User, run.user_id) if run.user_id else None
        actor = auth.actor_of(user) if user else Actor.system("import")
        kind, mode, columns, locale = run.kind, run.mode, dict(run.columns), run.locale
        path = ctx.payload.get("path") or run.path
    context = Context(ctx.payload.get("timezone", "Asia/Tokyo"), ctx.payload.get("currency", "JPY"))
    options = Options(mode=mode, columns=columns or None, locale=locale, context=context)

    def progress(p: Progress) -> None:
        ctx.progress(p.bytes_read, p.size, _MESSAGES[p.phase])

    try:
        finished = run_import(
            ctx.db, kind=kind, path=path, actor=actor, options=options, run_id=run_id, on_progress=progress,
            check_cancel=ctx.check,
        )  # fmt: skip
    except KokyakuError:
        # A problem with the file itself: the run records it, and trying again would find the same.
        with ctx.db.session(write=False) as s:
            failed = get_run(s, run_id)
            return {"run_id": run_id, "status": failed.status}
    except JobInterrupted:
        if not ctx.worker.stopping:  # cancelled by the user: the run ends here, with its whole batches
            _mark_cancelled(ctx, run_id)
        raise
    return {
        "run_id": run_id, "status": finished.status, "created": finished.created, "updated": finished.updated,
        "unchanged": finished.unchanged, "invalid": finished.invalid,
    }  # fmt: skip


def _mark_cancelled(ctx: JobContext, run_id: int) -> None:
    from kokyaku.db import utcnow

    with ctx.db.session() as s:
        run = get_run(s, run_id)
        run.status = "failed"
        run.message = "The import was cancelled."
        run.message_params = {}
        run.finished_at = utcnow()
