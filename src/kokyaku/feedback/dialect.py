"""INSERT ... ON CONFLICT, which SQLite and PostgreSQL both have but spell through different SQLAlchemy
dialect modules: the one database-specific construct the feedback domain uses, behind one function."""

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert(session: Session, target: Any) -> Any:
    """An INSERT for `target` (a model or table) that supports on_conflict_do_nothing / _do_update."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(target)
