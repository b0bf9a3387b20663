"""kokyaku worker, and kokyaku jobs list | show | retry | cancel | schedules | purge."""

import json
import signal
import threading
from datetime import timedelta
from types import FrameType
from typing import Annotated, Any

import typer
from rich.table import Table

from kokyaku.audit.service import Actor
from kokyaku.cli.common import console, database, fail
from kokyaku.db import utcnow
from kokyaku.errors import KokyakuError
from kokyaku.jobs import schedules, service
from kokyaku.jobs.models import STATUSES
from kokyaku.jobs.schemas import JobOut
from kokyaku.jobs.worker import Worker

jobs_app = typer.Typer(help="Background jobs: list, inspect, retry, cancel.", no_args_is_help=True)
CLI = Actor.system("cli")


def _install_signals(worker: Worker) -> None:
    """First SIGTERM/SIGINT: finish or hand back the running jobs, then exit. A second SIGINT: leave now."""
    if threading.current_thread() is not threading.main_thread():
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        console.print("stopping: finishing the running jobs (press Ctrl+C again to quit at once)")
        worker.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def worker(
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Jobs to run at the same time.")] = 1,
    once: Annotated[bool, typer.Option("--once", help="Run the jobs that are due now, then exit.")] = False,
    poll_interval: Annotated[float, typer.Option(min=0.05, help="Seconds between looks at the queue.")] = 1.0,
) -> None:
    """Run background jobs until stopped (SIGTERM or Ctrl+C); several workers may share one database."""
    db = database()
    try:
        handlers = service.load_handlers()
        w = Worker(db, handlers=handlers, poll_interval=poll_interval, concurrency=concurrency)
        _install_signals(w)
        if once:
            outcomes = w.drain()
            summary = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "no jobs were due"
            console.print(f"worker {w.worker_id}: {summary}", highlight=False)
            if outcomes.get("failed"):
                fail(f"{outcomes['failed']} job(s) failed; see `kokyaku jobs list --status failed`")
            return
        console.print(
            f"worker {w.worker_id} running {concurrency} at a time; kinds: {', '.join(sorted(handlers))}"
        )
        w.run()
    finally:
        db.dispose()


def _print_table(rows: list[JobOut]) -> None:
    table = Table("id", "kind", "status", "progress", "attempts", "created", "finished")
    for j in rows:
        done = (
            f"{j.progress}/{j.progress_total}"
            if j.progress_total
            else (str(j.progress) if j.progress else "")
        )
        table.add_row(
            str(j.id), j.kind, j.status, done, f"{j.attempts}/{j.max_attempts}",
            j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            j.finished_at.strftime("%Y-%m-%d %H:%M:%S") if j.finished_at else "",
        )  # fmt: skip
    console.print(table)


@jobs_app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help=f"One of: {', '.join(STATUSES)}.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """The newest jobs first."""
    if status is not None and status not in STATUSES:
        fail(f"--status must be one of: {', '.join(STATUSES)}")
    with database().session(write=False) as s:
        rows = [JobOut.of(j) for j in service.list_jobs(s, status=status, kind=kind, limit=limit).items]
    if as_json:
        for row in rows:
            typer.echo(row.model_dump_json())
    else:
        _print_table(rows)


def _job_dict(job_id: int) -> dict[str, Any]:
    with database().session(write=False) as s:
        return JobOut.of(service.get_job(s, job_id)).model_dump(mode="json")


@jobs_app.command("show")
def show(job_id: Annotated[int, typer.Argument(help="The job's id.")]) -> None:
    """One job as JSON: status, progress, result, error."""
    try:
        typer.echo(json.dumps(_job_dict(job_id), ensure_ascii=False, indent=2))
    except KokyakuError as exc:
        fail(str(exc))


@jobs_app.command("retry")
def retry(job_id: Annotated[int, typer.Argument(help="The job's id.")]) -> None:
    """Queue a failed or cancelled job again (it resumes from its last checkpoint)."""
    try:
        with database().session() as s:
            service.retry(s, job_id, actor=CLI)
    except KokyakuError as exc:
        fail(str(exc))
    console.print(f"job {job_id} queued again")


@jobs_app.command("cancel")
def cancel(job_id: Annotated[int, typer.Argument(help="The job's id.")]) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    try:
        with database().session() as s:
            job = service.cancel(s, job_id, actor=CLI)
            status = job.status
    except KokyakuError as exc:
        fail(str(exc))
    console.print(f"job {job_id}: {'cancelled' if status == 'cancelled' else 'asked to stop'}")


@jobs_app.command("schedules")
def list_schedules(
    enable: Annotated[str | None, typer.Option(help="Enable the schedule with this name.")] = None,
    disable: Annotated[str | None, typer.Option(help="Disable the schedule with this name.")] = None,
) -> None:
    """Periodic schedules and when each runs next; --enable/--disable NAME switches one."""
    service.load_handlers()  # declared schedules live beside the handlers
    with database().session() as s:
        schedules.sync_declared(s)
        try:
            if enable:
                schedules.set_enabled(s, name=enable, enabled=True)
            if disable:
                schedules.set_enabled(s, name=disable, enabled=False)
        except KokyakuError as exc:
            fail(str(exc))
        table = Table("name", "kind", "every (s)", "next run (UTC)", "last run (UTC)", "enabled")
        for row in schedules.list_schedules(s):
            table.add_row(
                row.name, row.kind, str(row.every_seconds), row.next_run_at.strftime("%Y-%m-%d %H:%M:%S"),
                row.last_run_at.strftime("%Y-%m-%d %H:%M:%S") if row.last_run_at else "",
                "yes" if row.enabled else "no",
            )  # fmt: skip
    console.print(table)


@jobs_app.command("purge")
def purge(
    older_than_days: Annotated[int, typer.Option(min=1, help="Delete finished jobs older than this.")] = 30,
) -> None:
    """Delete finished jobs (succeeded, failed, cancelled) that finished more than N days ago."""
    with database().session() as s:
        n = service.purge(s, finished_before=utcnow() - timedelta(days=older_than_days))
    console.print(f"deleted {n} finished job(s)")
