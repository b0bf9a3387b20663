"""The fast way to write many rows: ids reserved up front, then DB-API executemany of tuples on SQLite and
COPY on PostgreSQL (a core insert elsewhere); upserts by key the same way, through a temporary table on
PostgreSQL.

Values must already be in the database's form: `db_formats` gives the functions that put an aware datetime
and a JSON object in the form SQLAlchemy itself would store, so rows written here read back exactly like rows
written through the ORM."""

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import count
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, text
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


def fill_empty(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> bool:
    """Insert many rows into `table` if it is empty, building its indexes once at the end instead of entry
    by entry (on PostgreSQL the primary key and unique constraints too), which is several times faster for a
    first fill of many rows. The table stays locked until commit. Returns False, having written nothing, when
    the table has rows (or on other databases): the caller then writes the usual way."""
    dialect = session.get_bind().dialect.name
    has_rows = text(f"SELECT EXISTS (SELECT 1 FROM {table.name})")
    if dialect not in ("postgresql", "sqlite") or session.scalar(has_rows):
        return False
    if dialect == "postgresql":
        # Locked only once it looked empty, then looked at again: a writer may have come in between. (On
        # SQLite our transaction holds the database's write lock already.)
        session.execute(text(f"LOCK TABLE {table.name} IN ACCESS EXCLUSIVE MODE"))
        if session.scalar(has_rows):
            return False
    drops, builds = _index_ddl(session, table.name)
    for statement in drops:
        session.execute(text(statement))
    insert_tuples(session, table, columns, rows)
    for statement in builds:
        session.execute(text(statement))
    if dialect == "postgresql":
        session.execute(text(f"ANALYZE {table.name}"))  # the planner's figures for the new rows, at once
    return True


def _index_ddl(session: Session, name: str) -> tuple[list[str], list[str]]:
    """The statements that drop a table's indexes, and those that build them again as they were."""
    if session.get_bind().dialect.name == "sqlite":
        # those declared by CREATE INDEX; a UNIQUE constraint's own index (no sql) cannot be dropped
        indexes = session.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql NOT NULL"
            ),
            {"t": name},
        ).all()
        return [f'DROP INDEX "{index}"' for index, _ in indexes], [sql for _, sql in indexes]
    constraints = session.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u')"
        ),
        {"t": name},
    ).all()
    indexes = session.execute(
        text(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = CAST(:t AS regclass) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        ),
        {"t": name},
    ).all()
    drops = [f'ALTER TABLE {name} DROP CONSTRAINT "{c}"' for c, _ in constraints]
    drops += [f'DROP INDEX "{index}"' for index, _ in indexes]
    builds = [f'ALTER TABLE {name} ADD CONSTRAINT "{c}" {definition}' for c, definition in constraints]
    builds += [definition for _, definition in indexes]
    return drops, builds


_temp_names = count(1)


def upsert(
    session: Session, table: Table, key: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows, or update the row with the same `key` (tuples in `columns` order, values as `db_formats`
    makes them). An update keeps the key, so it needs no foreign-key check, unlike a delete and re-insert."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    if dialect == "sqlite":
        sql = (
            f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
        )
        session.connection().exec_driver_sql(sql, list(rows))
    elif dialect == "postgresql":
        temp = f"tmp_{table.name}_{next(_temp_names)}"
        cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(f"CREATE TEMP TABLE {temp} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP")
        with cursor.copy(f"COPY {temp} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        # An UPDATE joined to the new rows, then an INSERT of the rest: 3.0 s where INSERT ... ON CONFLICT
        # took 4.0 s for 780,000 existing rows (it tries each row against the key index before updating).
        sets = ", ".join(f"{c} = {temp}.{c}" for c in columns if c != key)
        cursor.execute(f"UPDATE {table.name} SET {sets} FROM {temp} WHERE {table.name}.{key} = {temp}.{key}")
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {temp} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table.name} WHERE {table.name}.{key} = {temp}.{key}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}"  # a row someone else inserted meanwhile
        )
        cursor.execute(f"DROP TABLE {temp}")
    else:
        delete_keys(session, table, key, [row[columns.index(key)] for row in rows])
        insert_tuples(session, table, columns, rows)


def delete_keys(session: Session, table: Table, key: str, keys: Sequence[int]) -> None:
    """Delete the rows whose `key` is one of `keys`, in chunks the databases' parameter limits allow."""
    column = table.c[key]
    for start in range(0, len(keys), 10_000):
        session.execute(delete(table).where(column.in_([int(k) for k in keys[start : start + 10_000]])))
