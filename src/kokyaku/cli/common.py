"""What every command shares: settings, the database, failing with a one-line reason."""

from typing import NoReturn

import typer
from rich.console import Console

from kokyaku.config import Settings, get_settings
from kokyaku.db import Database

console = Console(stderr=True)


def settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic's message is long; the first line says enough
        fail(str(exc).splitlines()[0])


def database() -> Database:
    s = settings()
    return Database(s.database_url, busy_timeout_ms=s.sqlite_busy_timeout_ms)


def fail(reason: str) -> NoReturn:
    console.print(f"[red]error:[/red] {reason}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
