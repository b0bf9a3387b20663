"""kokyaku segments list | count | create | recompute (exports: `kokyaku export customers --segment ID`)."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kokyaku.audit.service import Actor
from kokyaku.cli.common import console, database, fail, settings
from kokyaku.errors import KokyakuError, ValidationFailed
from kokyaku.segments import service
from kokyaku.segments.lifecycle import LifecycleRules
from kokyaku.segments.recompute import recompute_all
from kokyaku.segments.schemas import SegmentIn

segments_app = typer.Typer(help="Segments, RFM and lifecycle stages.", no_args_is_help=True)
CLI = Actor.system("cli")


def _problems(exc: KokyakuError) -> str:
    if isinstance(exc, ValidationFailed):
        return "; ".join(f"{f}: {m.format(**p) if p else m}" for f, m, p in exc.problems)
    return str(exc)


def _read_rules(source: str) -> Any:
    """Rules as JSON text, or @path to a JSON file."""
    try:
        text = Path(source[1:]).read_text(encoding="utf-8") if source.startswith("@") else source
        return json.loads(text)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the rules: {exc}")


@segments_app.command("list")
def list_segments() -> None:
    """The saved segments with their last known size."""
    with database().session(write=False) as session:
        table = Table("id", "name", "kind", "size", "counted at")
        cursor = None
        while True:
            page = service.list_segments(session, cursor=cursor, limit=200)
            for s in page.items:
                size = "" if s.size is None else str(s.size)
                table.add_row(
                    str(s.id), s.name, s.kind, size, s.counted_at.isoformat() if s.counted_at else ""
                )
            if not (cursor := page.next_cursor):
                break
    console.print(table)


@segments_app.command()
def count(
    segment_id: Annotated[int | None, typer.Argument(help="A saved segment.")] = None,
    rules: Annotated[
        str | None, typer.Option(help="Count these rules instead (JSON, or @file.json).")
    ] = None,
) -> None:
    """Print the number of members of a segment, or of rules not saved (only the number goes to stdout)."""
    tz = settings().timezone
    try:
        with database().session(write=False) as session:
            if rules is not None:
                n = service.count_rules(session, _read_rules(rules), tz)
            elif segment_id is not None:
                n = service.count_segment(session, service.get_segment(session, segment_id), tz)
            else:
                fail("give a segment id or --rules")
    except KokyakuError as exc:
        fail(_problems(exc))
    typer.echo(n)


@segments_app.command()
def create(
    name: Annotated[str, typer.Option(help="The segment's name.")],
    rules: Annotated[str, typer.Option(help="Rules as JSON, or @file.json.")],
    static: Annotated[bool, typer.Option("--static", help="Freeze today's members (a snapshot).")] = False,
) -> None:
    """Save a segment; prints its id."""
    tz = settings().timezone
    try:
        data = SegmentIn(name=name, rules=_read_rules(rules), kind="static" if static else "dynamic")
        with database().session() as session:
            segment = service.create_segment(session, actor=CLI, data=data, tz=tz)
            console.print(f"segment {segment.id}: {segment.size} members")
            typer.echo(segment.id)
    except KokyakuError as exc:
        fail(_problems(exc))
    except ValueError as exc:  # pydantic
        fail(str(exc).splitlines()[0])


@segments_app.command()
def recompute() -> None:
    """Recompute RFM scores and lifecycle stages for every customer now, then every segment's size.
    Prints the run as JSON."""
    s = settings()
    db = database()
    with console.status("scoring customers"), db.session() as session:
        run = recompute_all(session, rules=LifecycleRules.from_settings(s), tz=s.timezone, trigger="cli")
        out = {
            "run_id": run.id,
            "customers": run.customers,
            "active": run.active,
            "rfm_written": run.rfm_written,
            "stage_changes": run.stage_changes,
            "seconds": run.seconds,
            "stages": run.summary["stages"],
        }
    with console.status("counting segments"), db.session() as session:
        out["segments_counted"] = service.refresh_sizes(session, s.timezone)
    typer.echo(json.dumps(out, ensure_ascii=False))
