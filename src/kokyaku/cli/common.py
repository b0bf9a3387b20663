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
    """The configured database, refused with a one-line reason unless `kokyaku init` has set it up."""
    from kokyaku.migrate import is_current

    s = settings()
    db = Database(s.database_url, busy_timeout_ms=s.sqlite_busy_timeout_ms)
    try:
        current = is_current(db.engine)
    except Exception as exc:  # an unreachable server, a wrong password: the driver's first line says which
        fail(f"could not open the database: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    if not current:
        fail("the database is not set up, or is older than this version of Kokyaku: run `kokyaku init`")
    return db


def fail(reason: str) -> NoReturn:
    console.print(f"[red]error:[/red] {reason}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
