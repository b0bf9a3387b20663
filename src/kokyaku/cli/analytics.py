"""kokyaku analytics fit | holdout | run: model fits, their calibration/holdout check, customer scoring."""

import json
from datetime import date
from typing import Annotated

import typer

from kokyaku.analytics.features import extract
from kokyaku.analytics.fitting import fit_report
from kokyaku.analytics.holdout import holdout_check
from kokyaku.analytics.scoring import score  # also registers the score fields for `segments` commands
from kokyaku.cli.common import console, database, fail
from kokyaku.errors import KokyakuError, ValidationFailed

analytics_app = typer.Typer(help="Customer analytics: CLV and churn models.", no_args_is_help=True)


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option}: not a date (YYYY-MM-DD): {value!r}")


@analytics_app.command("fit")
def fit(
    model: Annotated[str, typer.Option(help="bgnbd, paretonbd or gammagamma.")],
    until: Annotated[str, typer.Option(help="Last day of the calibration period (YYYY-MM-DD), inclusive.")],
    unit: Annotated[str, typer.Option(help="Time unit of recency and age: day or week.")] = "week",
) -> None:
    """Fit a model on the orders up to --until and print its parameters and log-likelihood as JSON."""
    if model not in ("bgnbd", "paretonbd", "gammagamma"):
        fail(f"--model: one of bgnbd, paretonbd, gammagamma, not {model!r}")
    if unit not in ("day", "week"):
        fail(f"--unit: day or week, not {unit!r}")
    end = _day(until, "--until")
    try:
        with database().session(write=False) as session:
            features = extract(session, until=end)
        report = fit_report(features, model, unit)  # type: ignore[arg-type]
    except KokyakuError as exc:
        fail(str(exc))
    typer.echo(json.dumps(report, indent=2))


@analytics_app.command("holdout")
def holdout(
    model: Annotated[str, typer.Option(help="bgnbd or paretonbd.")],
    until: Annotated[str, typer.Option(help="Cut-off: last day of the calibration period (YYYY-MM-DD).")],
    unit: Annotated[str, typer.Option(help="Period of the curve and unit of the fit: day or week.")] = "week",
    end: Annotated[
        str | None, typer.Option(help="Last day of the holdout (YYYY-MM-DD); default the last purchase day.")
    ] = None,
) -> None:
    """Fit on the orders up to --until, predict the cumulative repeat purchases per period after it and print
    the curve (actual and predicted) with its mean absolute percentage error as JSON."""
    if model not in ("bgnbd", "paretonbd"):
        fail(f"--model: bgnbd or paretonbd, not {model!r}")
    if unit not in ("day", "week"):
        fail(f"--unit: day or week, not {unit!r}")
    cut = _day(until, "--until")
    last = _day(end, "--end") if end else None
    try:
        with database().session(write=False) as session:
            check = holdout_check(session, model=model, until=cut, unit=unit, end=last)
    except ValidationFailed as exc:
        fail("; ".join(f"--{p['field']}: {p['message']}" for p in exc.detail()))
    except KokyakuError as exc:
        fail(str(exc))
    typer.echo(json.dumps(check.as_dict(), indent=2))


@analytics_app.command("run")
def run(
    until: Annotated[
        str | None, typer.Option(help="Score as of this day (YYYY-MM-DD); default today.")
    ] = None,
) -> None:
    """Fit BG/NBD or Pareto/NBD (by holdout error) and Gamma-Gamma, score every customer, save the scores."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    end = _day(until, "--until") if until else None
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("Reading orders", total=5)

            def step(done: int, total: int, message: str) -> None:
                bar.update(task, completed=done, total=total, description=message)

            with database().session() as session:
                result = score(session, until=end, progress=step)
    except KokyakuError as exc:
        fail(f"{exc}; no scores were written")
    console.print(
        f"scored {result.scored} customers with {result.model} ({result.selection}) in {result.seconds:.1f} s"
    )
    typer.echo(json.dumps(result.as_dict(), indent=2))
