"""kokyaku surveys (list, send personal links) and kokyaku reviews (import a CSV of reviews)."""

from pathlib import Path
from typing import Annotated

import typer

from kokyaku.audit.service import Actor
from kokyaku.cli.common import console, database, fail, settings
from kokyaku.errors import KokyakuError, ValidationFailed
from kokyaku.feedback import csvimport, stats, surveys
from kokyaku.feedback import service as _service  # noqa: F401  (segment fields used by --segment rules)
from kokyaku.feedback.schemas import InvitationsIn
from kokyaku.i18n import gettext

surveys_app = typer.Typer(help="Surveys: list them and send personal links.", no_args_is_help=True)
reviews_app = typer.Typer(help="Reviews from review sites and social networks.", no_args_is_help=True)
CLI = Actor.system("cli")
SHOWN_ERRORS = 20


def _message(exc: KokyakuError, lang: str) -> str:
    if isinstance(exc, ValidationFailed):
        return "; ".join(f"{f}: {gettext(lang, m, **p)}" for f, m, p in exc.problems)
    return gettext(lang, exc.message, **exc.params)


@surveys_app.command("list")
def list_surveys() -> None:
    """Print the surveys: id, status, responses, name."""
    db = database()
    try:
        with db.session(write=False) as session:
            page = surveys.list_surveys(session, limit=200)
            counts = surveys.response_counts(session, [s.id for s in page.items])
            for s in page.items:
                typer.echo(f"{s.id}\t{s.status}\t{counts.get(s.id, 0)}\t{s.name}")
    finally:
        db.dispose()


@surveys_app.command("send")
def send(
    survey_id: Annotated[int, typer.Argument(help="The survey's id (see `kokyaku surveys list`).", min=1)],
    segment: Annotated[
        int | None, typer.Option("--segment", min=1, help="Every member of this segment.")
    ] = None,
    customer: Annotated[
        list[int] | None, typer.Option("--customer", min=1, help="A customer id (repeatable).")
    ] = None,
    channel: Annotated[str, typer.Option(help="email (sent by the worker) or link (printed).")] = "email",
    lang: Annotated[str, typer.Option("--lang", help="Language of the messages: en or ja.")] = "en",
) -> None:
    """Create personal links for a segment or customers; email them, or print them (--channel link)."""
    if channel not in ("email", "link"):
        fail("--channel must be email or link")
    s = settings()
    try:
        data = InvitationsIn(channel=channel, customer_ids=customer or [], segment_id=segment)  # type: ignore[arg-type]
    except ValueError:
        fail("give --segment or at least one --customer")
    db = database()
    try:
        with db.session() as session:
            done = surveys.invite(
                session, s, actor=CLI, survey_id=survey_id, data=data, base_url=surveys.base_url_of(s)
            )
            links = [(inv.customer_id, url) for inv, url in done.created]
    except KokyakuError as exc:
        fail(_message(exc, lang))
    finally:
        db.dispose()
    if channel == "link":
        for customer_id, url in links:
            typer.echo(f"{customer_id}\t{url}")
    skipped = ", ".join(f"{reason} {n}" for reason, n in done.skipped.items()) or "none"
    console.print(f"{len(links)} personal links created, {done.emailed} emails queued; skipped: {skipped}")


@reviews_app.command("import")
def import_reviews(
    file: Annotated[Path, typer.Argument(help="The CSV file (UTF-8, UTF-8 with BOM or Shift_JIS).")],
    source: Annotated[
        str | None, typer.Option(help="The review site, for files without a source column.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row; write nothing.")] = False,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Import the valid rows.")] = False,
    lang: Annotated[str, typer.Option("--lang", help="Language of the messages: en or ja.")] = "en",
) -> None:
    """Import reviews from a CSV file (all or nothing unless --skip-invalid); importing twice is harmless."""
    if not file.is_file():
        fail(f"no such file: {file}")
    s = settings()
    db = database()
    try:
        with db.session() as session:
            out = csvimport.import_csv(
                session,
                s,
                actor=CLI,
                path=file,
                source=source,
                dry_run=dry_run,
                skip_invalid=skip_invalid,
                base_url=surveys.base_url_of(s),
            )
    except KokyakuError as exc:
        fail(_message(exc, lang))
    finally:
        db.dispose()
    r = out.result
    verb = "checked" if dry_run else "imported" if out.written else "not imported"
    console.print(
        f"{file.name}: {out.rows:,} rows {verb}: created {r.created:,}, updated {r.updated:,}, "
        f"unchanged {r.unchanged:,}, alerts {r.alerts:,}, follow-ups {r.followups:,}, "
        f"invalid {len({e[0] for e in out.errors}):,}",
        highlight=False,
    )
    for row, field, message, params in out.errors[:SHOWN_ERRORS]:
        console.print(f"  row {row}, {field}: {gettext(lang, message, **params)}", highlight=False)
    if out.errors and not skip_invalid:
        fail(
            "invalid rows, so nothing was imported"
            if not dry_run
            else "invalid rows; the import would write nothing"
        )


@surveys_app.command("rebuild-stats")
def rebuild_stats(
    survey_id: Annotated[int, typer.Argument(help="The survey's id.", min=1)],
) -> None:
    """Recount a survey's daily figures from its responses (after a bulk load or a time zone change)."""
    s = settings()
    db = database()
    try:
        with db.session() as session:
            surveys.get_survey(session, survey_id)
            rows = stats.rebuild(session, survey_id, s.timezone)
    except KokyakuError as exc:
        fail(_message(exc, "en"))
    finally:
        db.dispose()
    console.print(f"survey {survey_id}: {rows:,} daily rows recounted")
