"""Alembic environment: the URL comes from the caller's config or KOKYAKU_DATABASE_URL."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from kokyaku.config import get_settings
from kokyaku.customers.search_index import is_fts_table
from kokyaku.models import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url


def include_name(name, type_, parent_names) -> bool:  # type: ignore[no-untyped-def]
    # SQLite's FTS5 search index and the shadow tables FTS5 makes for it are created by a migration with raw
    # DDL and described by no model: without this, autogenerate would offer to drop them.
    return not (type_ == "table" and name is not None and is_fts_table(name))


def run_migrations_offline() -> None:
    context.configure(
        url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True, include_name=include_name
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = engine_from_config({"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # Batch mode lets later migrations alter columns on SQLite, which has no ALTER COLUMN.
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
