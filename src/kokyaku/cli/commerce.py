"""kokyaku metrics: check the per-customer purchase metrics against the orders, and rebuild them."""

import time
from typing import Annotated

import typer

from kokyaku.cli.common import console, database, fail
from kokyaku.commerce import service

metrics_app = typer.Typer(help="Per-customer purchase metrics (order count, first/last purchase, spend).")


@metrics_app.command("check")
def check(
    show: Annotated[int, typer.Option(min=1, help="How many drifting customers to list.")] = 50,
) -> None:
    """Recompute the metrics from the orders and report every customer whose stored row differs."""
    started = time.perf_counter()
    with database().session(write=False) as session:
        drifts = service.check_metrics(session)
    seconds = time.perf_counter() - started
    if not drifts:
        typer.echo(f"no drift ({seconds:.1f} s)")
        return
    for drift in drifts[:show]:
        typer.echo(drift.describe())
    if len(drifts) > show:
        typer.echo(f"... and {len(drifts) - show} more")
    fail(f"{len(drifts)} customers drift from their orders; run `kokyaku metrics recompute`")


@metrics_app.command("recompute")
def recompute(
    customer: Annotated[list[int] | None, typer.Option(help="Only these customer ids (repeatable).")] = None,
) -> None:
    """Rebuild the metrics from the orders (set-based, one transaction)."""
    started = time.perf_counter()
    with console.status("recomputing metrics"), database().session() as session:
        rows = service.recompute_metrics(session, customer or None)
    typer.echo(f"recomputed metrics: {rows} customers with orders ({time.perf_counter() - started:.1f} s)")
