"""The fast way to write many rows: ids reserved up front, then multi-row INSERTs through the driver's
executemany on SQLite and COPY on PostgreSQL (a core insert elsewhere); upserts by key the same way, through
a temporary table on PostgreSQL; a first fill of an empty table from numpy columns, its indexes built once at
the end (`fill_empty`); and the reverse, a million rows read as numpy arrays packed by PostgreSQL
(`read_packed`).

Values must already be in the database's form: `db_formats` gives the functions that put an aware datetime
and a JSON object in the form SQLAlchemy itself would store, so rows written here read back exactly like rows
written through the ORM."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, count
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, SmallInteger, Table, TextClause, delete, func, insert, select, text
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


_MAX_MARKS = 999  # bound parameters per statement that every SQLite build accepts
_ROWS_PER_INSERT = 200  # rows per multi-row INSERT on SQLite: fewer statement steps, ~30% less per row


def insert_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert rows given as tuples in `columns` order, values as `db_formats` makes them: COPY on
    PostgreSQL; on SQLite multi-row INSERTs through one driver executemany (SQLAlchemy's executemany costs
    ~15 us a row, this ~1 us)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    names = ", ".join(f'"{c}"' for c in columns)
    if dialect == "sqlite":
        width = len(columns)
        one = "(" + ", ".join("?" for _ in columns) + ")"
        per = max(1, min(_ROWS_PER_INSERT, _MAX_MARKS // width))
        full = len(rows) - len(rows) % per
        head = f'INSERT INTO "{table.name}" ({names}) VALUES '
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if full:
                flat = list(chain.from_iterable(rows[:full]))
                step = per * width
                chunks = [flat[i : i + step] for i in range(0, len(flat), step)]
                cursor.executemany(head + ", ".join([one] * per), chunks)
            if full < len(rows):
                cursor.executemany(head + one, rows[full:])
        finally:
            cursor.close()
    elif dialect == "postgresql":
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
    else:
        session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


@dataclass(frozen=True)
class Labels:
    """A text column given as small-integer codes into `names` (RFM segments, lifecycle stages)."""

    codes: np.ndarray
    names: Sequence[str]


@dataclass(frozen=True)
class Micros:
    """A datetime column given as microseconds since 1970-01-01 UTC."""

    values: np.ndarray


# A column for fill_empty: an integer array, Labels or Micros, one value per row, no NULLs.
FillColumn = np.ndarray | Labels | Micros


def fill_empty(session: Session, table: Table, columns: dict[str, FillColumn]) -> bool:
    """Write many rows, given column by column, into `table` if it is empty, building its indexes once at
    the end instead of entry by entry (on PostgreSQL the primary key and unique constraints too): several
    times faster for a first fill. The table stays locked until commit. Returns False, having written
    nothing, when the table has rows (or on other databases): the caller then writes the usual way.

    PostgreSQL takes the rows as binary COPY built by numpy, grouped by their labels in text order (so an
    index led by a label column is built from sorted input), each group in the given order; SQLite takes
    them in the given order."""
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
    if dialect == "postgresql":
        _copy_binary(session, table, columns)
    else:
        values = [python_values(column) for column in columns.values()]
        insert_tuples(session, table, list(columns), list(zip(*values, strict=True)))
    for statement in builds:
        session.execute(text(statement))
    if dialect == "postgresql":
        session.execute(text(f"ANALYZE {table.name}"))  # the planner's figures for the new rows, at once
    return True


def _array(column: FillColumn) -> np.ndarray:
    if isinstance(column, Labels):
        return column.codes
    return column.values if isinstance(column, Micros) else column


def python_values(column: FillColumn) -> list[Any]:
    """A fill column as the values SQLite's driver takes."""
    if isinstance(column, Labels):
        return [column.names[c] for c in column.codes.tolist()]
    if isinstance(column, Micros):
        return us_to_db(column.values)
    return column.tolist()  # type: ignore[no-any-return]


_PG_EPOCH_US = 946_684_800_000_000  # PostgreSQL's binary timestamps count from 2000-01-01


def _copy_binary(session: Session, table: Table, columns: dict[str, FillColumn]) -> None:
    """COPY the rows in PostgreSQL's binary format, each group of rows with the same labels as one numpy
    record array: no text for the server to parse, no Python object per value."""
    names = list(columns)
    n = len(_array(columns[names[0]]))
    if n == 0:
        return
    labels = [c for c in columns.values() if isinstance(c, Labels)]
    # group rows by the text order of their labels, keeping the given order within a group
    ranks = [np.argsort(np.argsort(np.array(c.names)))[c.codes] for c in labels]
    order = np.lexsort([np.arange(n), *reversed(ranks)]) if ranks else np.arange(n)
    keys = np.stack([c.codes[order] for c in labels], axis=1) if labels else np.zeros((n, 0), np.int64)
    starts = (np.flatnonzero(np.any(keys[1:] != keys[:-1], axis=1)) + 1).tolist()
    payload = [b"PGCOPY\n\xff\r\n\x00" + bytes(8)]  # signature, flags, header extension length
    for lo, hi in zip([0, *starts], [*starts, n], strict=True):
        rows = order[lo:hi]
        fields: list[tuple[str, Any]] = [("count", ">i2")]
        values: dict[str, Any] = {"count": len(names)}
        for i, (name, column) in enumerate(columns.items()):
            if isinstance(column, Labels):
                encoded = column.names[int(column.codes[rows[0]])].encode()
                fields += [(f"n{i}", ">i4"), (f"v{i}", f"S{len(encoded)}")]
                values |= {f"n{i}": len(encoded), f"v{i}": encoded}
                continue
            if isinstance(column, Micros):
                kind, data = ">i8", column.values[rows] - _PG_EPOCH_US
            else:
                kind, data = _int_kind(table.c[name].type), column[rows]
            fields += [(f"n{i}", ">i4"), (f"v{i}", kind)]
            values |= {f"n{i}": np.dtype(kind).itemsize, f"v{i}": data}
        block = np.empty(hi - lo, dtype=np.dtype(fields))
        for field, value in values.items():
            block[field] = value
        payload.append(block.tobytes())
    payload.append(b"\xff\xff")  # end of data
    blob = b"".join(payload)
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy:
        for start in range(0, len(blob), 1 << 20):
            copy.write(blob[start : start + (1 << 20)])


def _int_kind(type_: Any) -> str:
    if isinstance(type_, SmallInteger):
        return ">i2"
    return ">i8" if isinstance(type_, BigInteger) else ">i4"


def us_to_db(values: np.ndarray) -> list[str]:
    """Microseconds since the epoch (UTC) -> the text SQLAlchemy stores on SQLite, vectorised."""
    text_ = np.datetime_as_string(values.astype("datetime64[us]"), unit="us")  # 2026-11-22T10:00:00.000000
    if len(text_) == 0:
        return []
    chars = text_.view(np.uint32).reshape(len(text_), -1).copy()
    chars[:, 10] = ord(" ")  # the "T" between date and time, as SQLAlchemy writes it
    return chars.view(text_.dtype).ravel().tolist()  # type: ignore[no-any-return]


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


def read_packed(session: Session, sql: TextClause, params: dict[str, Any], dtype: np.dtype) -> np.ndarray:
    """PostgreSQL: rows the server packed into byte strings (`string_agg(int8send(a) || int4send(b) ...)`
    grouped by blocks of keys), as one numpy record array. A few dozen values cross the wire instead of a
    million rows: receiving rows one by one (even by COPY) costs the client ~1 us each, this ~0.1 us."""
    parts = [np.frombuffer(packed, dtype=dtype) for (packed,) in session.execute(sql, params) if packed]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def delete_keys(session: Session, table: Table, key: str, keys: Sequence[int]) -> None:
    """Delete the rows whose `key` is one of `keys`, in chunks the databases' parameter limits allow."""
    column = table.c[key]
    for start in range(0, len(keys), 10_000):
        session.execute(delete(table).where(column.in_([int(k) for k in keys[start : start + 10_000]])))
