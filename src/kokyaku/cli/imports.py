"""kokyaku import KIND FILE and kokyaku export KIND FILE."""

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from kokyaku.audit.service import Actor
from kokyaku.cli.common import console, database, fail, settings
from kokyaku.commerce.models import ORDER_CHANNELS, ORDER_STATUSES
from kokyaku.commerce.service import OrderFilters
from kokyaku.customers.service import CustomerFilters
from kokyaku.errors import KokyakuError
from kokyaku.i18n import gettext
from kokyaku.imports import export as exporting
from kokyaku.imports.kinds import Context
from kokyaku.imports.models import KINDS
from kokyaku.imports.service import BadMapping, Options, run_import
from kokyaku.imports.service import Progress as ImportProgress

CLI = Actor.system("cli")
SHOWN_ERRORS = 20


def _columns(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        header, sep, fld = pair.partition("=")
        if not sep:
            fail(f"--map takes HEADER=FIELD, not {pair!r}")
        out[header.strip()] = fld.strip()
    return out


def import_command(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KINDS)}, reviews.")],
    file: Annotated[Path, typer.Argument(help="The CSV file (UTF-8, UTF-8 with BOM or Shift_JIS).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row; write nothing.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows and report the others.")
    ] = False,
    mapping: Annotated[str | None, typer.Option("--mapping", help="A saved column mapping, by name.")] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="HEADER=FIELD (repeatable; FIELD empty to ignore a column)."),
    ] = None,
    errors: Annotated[
        Path | None, typer.Option("--errors", help="Write the invalid rows to this CSV.")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, max=100_000, help="Rows per transaction (default: per kind)."),
    ] = None,
    max_size: Annotated[int | None, typer.Option("--max-size", min=1, help="Refuse files over N MB.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the messages: en or ja.")] = "en",
) -> None:
    """Import customers, companies, products, orders, touchpoints or reviews from a CSV file.

    Without options the import is all-or-nothing: every row is checked first, and one invalid row means
    nothing is written. Re-importing the same file changes nothing."""
    if kind == "reviews":
        # Reviews belong to the feedback domain, which reads them with this domain's reader.
        from kokyaku.cli.feedback import import_reviews

        import_reviews(file=file, source=None, dry_run=dry_run, skip_invalid=skip_invalid, lang=lang)
        return
    if kind not in KINDS:
        fail(f"unknown kind {kind!r}; use one of: {', '.join(KINDS)}, reviews")
    if not file.is_file():
        fail(f"no such file: {file}")
    s = settings()
    mode = "dry_run" if dry_run else "skip_invalid" if skip_invalid else "all_or_nothing"
    options = Options(
        mode=mode, columns=_columns(map_ or []) or None, mapping_name=mapping, batch_rows=batch_size,
        max_bytes=max_size * 1024 * 1024 if max_size else None, locale=lang if lang in ("ja", "en") else "en",
        errors_path=errors, context=Context(timezone=s.timezone, currency=s.default_currency, source="csv"),
    )  # fmt: skip
    db = database()
    bar = Progress(
        TextColumn("[bold]{task.description}[/bold]"), BarColumn(), DownloadColumn(),
        TextColumn("{task.fields[rows]:,} rows"), TimeRemainingColumn(), console=console, transient=False,
    )  # fmt: skip
    labels = {"check": "checking", "write": "importing"}
    tasks: dict[str, TaskID] = {}

    def on_progress(p: ImportProgress) -> None:
        if p.phase not in tasks:
            tasks[p.phase] = bar.add_task(labels[p.phase], total=p.size, rows=0)
        bar.update(tasks[p.phase], completed=p.bytes_read, rows=p.rows)

    try:
        with bar:
            run = run_import(db, kind=kind, path=file, actor=CLI, options=options, on_progress=on_progress)
            for task in tasks.values():
                bar.update(task, completed=bar.tasks[task].total)
    except BadMapping as exc:
        problems = "; ".join(f"{f}: {gettext(lang, m, **p)}" for f, m, p in exc.problems)
        fail(f"the column mapping is not usable: {problems}")
    except KokyakuError as exc:
        fail(gettext(lang, exc.message, **exc.params))
    finally:
        db.dispose()
    _summary(run, lang)
    # exit 1 when the import (or, for a dry run, the import it rehearses) writes nothing for invalid rows
    if run.invalid and not skip_invalid:
        where = f"; see {errors}" if errors else "; --errors FILE writes them all"
        nothing = "nothing was imported" if mode == "all_or_nothing" else "the import would write nothing"
        fail(f"{run.invalid:,} invalid rows, so {nothing}{where}")


def _summary(run: object, lang: str) -> None:
    r = run  # an ImportRun
    verb = "would be " if r.mode == "dry_run" else ""  # type: ignore[attr-defined]
    console.print(
        f"{r.filename} ({r.encoding}): {r.rows_done:,} rows: {verb}created {r.created:,}, "  # type: ignore[attr-defined]
        f"{verb}updated {r.updated:,}, unchanged {r.unchanged:,}, invalid {r.invalid:,}",  # type: ignore[attr-defined]
        highlight=False,
    )
    unknown = [h for h, f in (r.columns or {}).items() if h and not f]  # type: ignore[attr-defined]
    if unknown:
        console.print(f"columns not imported: {', '.join(unknown)}", highlight=False)
    for e in (r.errors or [])[:SHOWN_ERRORS]:  # type: ignore[attr-defined]
        message = gettext(lang, e["message"], **(e.get("params") or {}))
        console.print(f"  row {e['row']}, {e.get('column') or e['field']}: {message}", highlight=False)
    if r.invalid > SHOWN_ERRORS:  # type: ignore[attr-defined]
        console.print(f"  ... and more (first {SHOWN_ERRORS} shown)", highlight=False)


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--{name} must be a date like 2025-04-01")


def export_command(
    kind: Annotated[str, typer.Argument(help="customers or orders.")],
    file: Annotated[Path, typer.Argument(help="Where to write the export.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx.")] = "csv",
    lang: Annotated[str, typer.Option("--lang", help="Language of the headers: ja or en.")] = "ja",
    customer_kind: Annotated[str | None, typer.Option("--kind", help="person or company.")] = None,
    prefecture: Annotated[str | None, typer.Option(help="Only this prefecture (東京都).")] = None,
    owner_id: Annotated[int | None, typer.Option(help="Only customers of this owner.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only customers with this interest.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Search by name, kana, email or phone.")] = None,
    segment: Annotated[int | None, typer.Option(help="Only the members of this segment.")] = None,
    since: Annotated[str | None, typer.Option("--from", help="Orders on or after this date.")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Orders on or before this date.")] = None,
    status: Annotated[str | None, typer.Option(help="Orders in this status.")] = None,
    channel: Annotated[str | None, typer.Option(help="Orders from this channel.")] = None,
    customer_id: Annotated[int | None, typer.Option(help="Orders of this customer.")] = None,
) -> None:
    """Export customers or orders to CSV (UTF-8 with BOM, for Excel) or XLSX."""
    if kind not in ("customers", "orders"):
        fail("export KIND is customers or orders")
    if fmt not in exporting.FORMATS:
        fail("--format is csv or xlsx")
    s = settings()
    locale = lang if lang in ("ja", "en") else "ja"
    kwargs: dict[str, object] = {"locale": locale, "tz": s.timezone}
    if kind == "customers":
        if customer_kind not in (None, "person", "company"):
            fail("--kind is person or company")
        kwargs["filters"] = CustomerFilters(
            kind=customer_kind, prefecture=prefecture, owner_id=owner_id, tag=tag, q=q
        )
        kwargs["segment_id"] = segment
    else:
        if status and status not in ORDER_STATUSES:
            fail(f"--status is one of: {', '.join(ORDER_STATUSES)}")
        if channel and channel not in ORDER_CHANNELS:
            fail(f"--channel is one of: {', '.join(ORDER_CHANNELS)}")
        zone = ZoneInfo(s.timezone)
        start, end = _day(since, "from"), _day(until, "to")
        kwargs["filters"] = OrderFilters(
            customer_id=customer_id, status=status, channel=channel,
            ordered_from=datetime.combine(start, time(0), tzinfo=zone) if start else None,
            ordered_to=datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone) if end else None,
        )  # fmt: skip
    db = database()
    try:
        count = exporting.write_file(db, kind, fmt, str(file), **kwargs)
    except KokyakuError as exc:
        fail(gettext(locale, exc.message, **exc.params))
    except OSError as exc:
        fail(f"cannot write {file}: {exc.strerror}")
    finally:
        db.dispose()
    console.print(f"exported {count:,} rows to {file}", highlight=False)
