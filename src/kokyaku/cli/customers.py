"""kokyaku customers: duplicates, merge, unmerge, merge-shared-identities."""

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import kokyaku.domains  # noqa: F401  (every merge participant registered before a merge runs)
from kokyaku.audit.service import Actor
from kokyaku.cli.common import console, database, fail
from kokyaku.customers import duplicates, merge
from kokyaku.errors import KokyakuError

customers_app = typer.Typer(help="Customers: duplicates and merges.", no_args_is_help=True)
CLI = Actor.system("cli")
out = Console()  # results on stdout; progress and messages go to stderr (console)


def _error(exc: KokyakuError) -> str:
    detail = exc.detail()
    if isinstance(detail, list):
        return "; ".join(f"{d['field']}: {d['message']}" for d in detail)
    return str(detail)


@customers_app.command("duplicates")
def duplicates_cmd(
    scan: Annotated[bool, typer.Option("--scan/--no-scan", help="Scan all customers first.")] = True,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many pairs to show.")] = 50,
) -> None:
    """Find possible duplicates (stored for the /duplicates page) and print the best pairs."""
    db = database()
    if scan:
        with db.session() as session:
            r = duplicates.scan(session)
        console.print(
            f"{r.found} pairs found ({r.added} new, {r.removed} gone, {r.dismissed} dismissed) "
            f"in {r.seconds:.1f} s"
        )
    with db.session(write=False) as session:
        page = duplicates.list_candidates(session, limit=limit)
        table = Table("candidate", "score", "customer", "customer", "reasons")
        for cand, a, b in page.items:
            reasons = ", ".join(f"{r['code']}={r['value']}" for r in cand.reasons)
            table.add_row(str(cand.id), str(cand.score), f"#{a.id} {a.name}", f"#{b.id} {b.name}", reasons)
    if page.items:
        out.print(table)
    else:
        console.print("no open duplicate candidates")


@customers_app.command("merge")
def merge_cmd(
    survivor: Annotated[int, typer.Argument(help="The customer that stays.")],
    merged: Annotated[int, typer.Argument(help="The customer merged into it.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept with the merge).")] = None,
) -> None:
    """Merge customer MERGED into customer SURVIVOR; prints the merge id (for unmerge)."""
    try:
        with database().session() as session:
            record = merge.merge_customers(
                session, actor=CLI, survivor_id=survivor, merged_id=merged, reason=reason
            )
            merge_id = record.id
    except KokyakuError as exc:
        fail(_error(exc))
    console.print(f"merged #{merged} into #{survivor}")
    typer.echo(merge_id)


@customers_app.command("unmerge")
def unmerge_cmd(merge_id: Annotated[int, typer.Argument(help="The merge to undo.")]) -> None:
    """Undo a merge: both customers come back exactly as they were."""
    try:
        with database().session() as session:
            merge.undo_merge(session, actor=CLI, merge_id=merge_id)
    except KokyakuError as exc:
        fail(_error(exc))
    console.print(f"merge {merge_id} undone")


@customers_app.command("merge-shared-identities")
def merge_shared(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list the merges.")] = False,
    include_phone: Annotated[
        bool, typer.Option("--include-phone", help="Also merge on a shared phone (families share phones).")
    ] = False,
) -> None:
    """Automatically merge customers that share an email or external id (into the oldest of each group)."""
    try:
        with database().session() as session:
            plan = duplicates.merge_shared_identities(
                session, actor=CLI, include_phone=include_phone, dry_run=dry_run
            )
    except KokyakuError as exc:
        fail(_error(exc))
    for step in plan:
        typer.echo(f"#{step.merged_id} -> #{step.survivor_id}  ({step.reason})")
    verb = "would merge" if dry_run else "merged"
    console.print(f"{verb} {len(plan)} customers")
