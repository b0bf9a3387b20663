"""Bulk reads and writes for the recomputation: millions of rows in seconds.

Each write has one fast path per database behind one function, with the portable SQLAlchemy path beside it:
SQLite takes a raw executemany of an INSERT ... ON CONFLICT; PostgreSQL takes COPY into a temporary table and
one INSERT ... SELECT ... ON CONFLICT.
"""

from collections.abc import Sequence
from datetime import datetime
from itertools import count
from typing import Any

import numpy as np
from sqlalchemy import String, cast, delete, insert, text
from sqlalchemy.orm import Session

BATCH = 50_000
_temp_names = count(1)


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def db_datetime(value: datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it on SQLite (and as PostgreSQL's COPY reads it)."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def us_to_db(values: np.ndarray) -> list[str]:
    """Microseconds since the epoch (UTC) -> the stored text form, vectorised."""
    text_ = np.datetime_as_string(values.astype("datetime64[us]"), unit="us")  # 2026-11-22T10:00:00.000000
    if len(text_) == 0:
        return []
    chars = text_.view(np.uint32).reshape(len(text_), -1).copy()
    chars[:, 10] = ord(" ")  # the "T" between date and time, as SQLAlchemy writes it
    return chars.view(text_.dtype).ravel().tolist()  # type: ignore[no-any-return]


def db_to_us(values: Sequence[str | None]) -> np.ndarray:
    """Datetimes read as text (`CAST(col AS VARCHAR)`) -> microseconds since the epoch; NULL -> min int64."""
    arr = np.array([v if v else "NaT" for v in values], dtype="datetime64[us]")
    return arr.astype(np.int64)


def datetime_text(column: Any) -> Any:
    """A datetime column read as text, so that a million values parse in numpy instead of one by one."""
    return cast(column, String)


def upsert(session: Session, table: Any, key: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Insert rows, or replace the row with the same `key` (rows are tuples in `columns` order)."""
    if not rows:
        return
    name = dialect(session)
    if name == "sqlite":
        _sqlite_upsert(session, table, key, columns, rows)
    elif name == "postgresql":
        _postgres_write(session, table, key, columns, rows)
    else:
        _portable_upsert(session, table, key, columns, rows)


def insert_rows(session: Session, table: Any, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Append rows (tuples in `columns` order)."""
    if not rows:
        return
    name = dialect(session)
    if name == "sqlite":
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        for start in range(0, len(rows), BATCH):
            session.connection().exec_driver_sql(sql, rows[start : start + BATCH])
    elif name == "postgresql":
        _postgres_write(session, table, None, columns, rows)
    else:
        for start in range(0, len(rows), BATCH):
            session.execute(
                insert(table), [dict(zip(columns, r, strict=True)) for r in rows[start : start + BATCH]]
            )


def delete_keys(session: Session, table: Any, key: str, keys: Sequence[int]) -> None:
    column = table.c[key]
    for start in range(0, len(keys), 10_000):
        session.execute(delete(table).where(column.in_([int(k) for k in keys[start : start + 10_000]])))


def _sqlite_upsert(
    session: Session, table: Any, key: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )
    conn = session.connection()
    for start in range(0, len(rows), BATCH):
        conn.exec_driver_sql(sql, rows[start : start + BATCH])


def _postgres_write(
    session: Session, table: Any, key: str | None, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    """COPY into a temporary table, then one INSERT ... SELECT (with ON CONFLICT when upserting)."""
    raw = session.connection().connection.driver_connection
    temp = f"tmp_{table.name}_{next(_temp_names)}"
    cols = ", ".join(columns)
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(f"CREATE TEMP TABLE {temp} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP")
        with cur.copy(f"COPY {temp} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conflict = ""
        if key is not None:
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
            conflict = f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
        cur.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {temp}{conflict}")
        cur.execute(f"DROP TABLE {temp}")


def _portable_upsert(
    session: Session, table: Any, key: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    position = columns.index(key)
    delete_keys(session, table, key, [r[position] for r in rows])
    for start in range(0, len(rows), BATCH):
        session.execute(
            insert(table), [dict(zip(columns, r, strict=True)) for r in rows[start : start + BATCH]]
        )


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
