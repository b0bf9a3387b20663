"""Bulk reads for the recomputation (a million rows as numpy arrays in a second) and its locks; the writes go
through kokyaku.kit.bulk."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import String, cast, text
from sqlalchemy.orm import Session


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def db_to_us(values: Sequence[str | None]) -> np.ndarray:
    """Datetimes read as text (`CAST(col AS VARCHAR)`) -> microseconds since the epoch; NULL -> min int64."""
    arr = np.array([v if v else "NaT" for v in values], dtype="datetime64[us]")
    return arr.astype(np.int64)


def datetime_text(column: Any) -> Any:
    """A datetime column read as text, so that a million values parse in numpy instead of one by one."""
    return cast(column, String)


def lock(session: Session, name: str) -> None:
    """Serialise a job across processes for this transaction (SQLite's writer lock already does)."""
    if dialect(session) == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})


def analytics_memory(session: Session) -> None:
    """PostgreSQL: more work_mem for this transaction, so that hashing a few hundred thousand customer ids
    (IN subqueries of a count, the recomputation's reads) stays in memory; nothing to do on SQLite."""
    if dialect(session) == "postgresql":
        session.execute(text("SET LOCAL work_mem = '64MB'"))


def read_columns(session: Session, stmt: Any) -> list[list[Any]]:
    """A query's result as one list per column."""
    # The driver's plain tuples: no ORM loading nor Row objects for a million rows (the columns read this
    # way are integers and text, which need no type processing).
    result = session.connection().execute(stmt)
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    width = len(stmt.selected_columns)
    # one comprehension per column: zip(*rows) would build an iterator per row, several times slower
    return [[row[i] for row in rows] for i in range(width)]
