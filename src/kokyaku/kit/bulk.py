"""The fast way to write many rows: ids reserved up front, then DB-API executemany of tuples on SQLite and
COPY on PostgreSQL (a core insert elsewhere).

Values must already be in the database's form: `db_formats` gives the functions that put an aware datetime
and a JSON object in the form SQLAlchemy itself would store, so rows written here read back exactly like rows
written through the ORM."""

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session


def reserve_ids(session: Session, table: Table, n: int) -> list[int] | None:
    """n fresh ids of `table`, or None where there is no safe way to take a block (other databases)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # SQLite gives a new row max(id) + 1 too, and our writing transaction holds the database's only write
        # lock (BEGIN IMMEDIATE) until commit, so no one else can take these ids meanwhile.
        start = int(session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0) + 1
        return list(range(start, start + n))
    if dialect == "postgresql":
        # nextval never hands the same value out twice, whatever runs beside us.
        stmt = text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)")
        return [int(i) for i in session.scalars(stmt, {"t": table.name, "n": n})]
    return None


def db_formats(session: Session) -> tuple[Callable[[datetime], Any], Callable[[dict[str, Any]], str]]:
    """How the fast writers take an aware UTC datetime and a JSON object: on SQLite the text SQLAlchemy
    stores (naive UTC, always with microseconds, so text order is time order); on PostgreSQL naive UTC."""
    if session.get_bind().dialect.name == "sqlite":

        def when(value: datetime) -> Any:
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

    else:

        def when(value: datetime) -> Any:
            return value.replace(tzinfo=None)

    def as_json(value: dict[str, Any]) -> str:
        return json.dumps(value) if value else "{}"

    return when, as_json


def insert_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows given as tuples in `columns` order, values as `db_formats` makes them."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    names = ", ".join(columns)
    if dialect == "sqlite":
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' for _ in columns)})"
        session.connection().exec_driver_sql(sql, list(rows))
    elif dialect == "postgresql":
        cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
