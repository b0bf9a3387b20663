"""The fast way to insert many rows: DB-API executemany of tuples on SQLite, COPY on PostgreSQL.

Values must already be in the database's form: `db_time` turns an aware datetime into what UTCDateTime
stores, so rows written here read back exactly like rows written through the ORM."""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session


def db_time(session: Session) -> Callable[[datetime], Any]:
    """Aware UTC datetime -> naive UTC; on SQLite the text SQLAlchemy stores (always with microseconds,
    so text order is time order)."""
    if session.get_bind().dialect.name == "sqlite":
        return lambda value: value.replace(tzinfo=None).isoformat(" ", "microseconds")
    return lambda value: value.replace(tzinfo=None)


def insert_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows given as tuples in `columns` order; else (other databases) a core insert."""
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
