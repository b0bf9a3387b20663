"""INSERT ... ON CONFLICT, which SQLite and PostgreSQL both have but spell through different SQLAlchemy
dialect modules: the one database-specific construct the feedback domain uses, behind one function, and the
same statement as portable SQL text for the hot paths.

SQLAlchemy 2.0 never caches the compiled form of its dialect INSERTs (`inherit_cache = False`), so each
execution compiles the statement again: on a survey answer that was a third of the request's CPU. The
`upsert` texts below are built once, are cached like any text, and mean the same on both databases (SQLite
3.35+ and PostgreSQL share the ON CONFLICT and RETURNING syntax)."""

from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert(session: Session, target: Any) -> Any:
    """An INSERT for `target` (a model or table) that supports on_conflict_do_nothing / _do_update."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(target)


def _q(name: str) -> str:
    return f'"{name}"'


@cache
def upsert(
    table: Table,
    columns: tuple[str, ...],
    *,
    conflict: tuple[str, ...] = (),
    add: tuple[str, ...] = (),
    replace: tuple[str, ...] = (),
    newer: str | None = None,
    returning: str | None = None,
) -> Any:
    """INSERT `columns` of `table`; on a conflict (on `conflict`, or any unique key when empty) add to the
    `add` columns, overwrite the `replace` columns (only where the row's `newer` column is not later than
    the new one), or, with neither, do nothing. Bind parameters carry the columns' types."""
    names = ", ".join(_q(c) for c in columns)
    values = ", ".join(f":{c}" for c in columns)
    sql = f"INSERT INTO {_q(table.name)} ({names}) VALUES ({values}) ON CONFLICT"
    if conflict:
        sql += f" ({', '.join(_q(c) for c in conflict)})"
    sets = [f"{_q(c)} = {_q(table.name)}.{_q(c)} + excluded.{_q(c)}" for c in add]
    sets += [f"{_q(c)} = excluded.{_q(c)}" for c in replace]
    if sets:
        sql += " DO UPDATE SET " + ", ".join(sets)
        if newer:
            sql += f" WHERE excluded.{_q(newer)} >= {_q(table.name)}.{_q(newer)}"
    else:
        sql += " DO NOTHING"
    stmt = text(sql + (f" RETURNING {_q(returning)}" if returning else ""))
    stmt = stmt.bindparams(*[bindparam(c, type_=table.c[c].type) for c in columns])
    if returning:
        return stmt.columns(table.c[returning])
    return stmt
