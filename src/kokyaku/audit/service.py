"""Recording and reading audit rows."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.audit.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user, or the system (imports, jobs, the CLI)."""

    user_id: int | None
    label: str

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls(None, label)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """Per-field old -> new for the keys whose values differ."""
    return {
        key: [_jsonable(old.get(key)), _jsonable(new.get(key))]
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def record(
    session: Session, *, actor: Actor, entity_type: str, entity_id: int, action: str, changes: dict[str, Any]
) -> None:
    session.add(
        AuditEntry(
            actor_id=actor.user_id,
            actor_label=actor.label,
            entity_type=entity_type,
            entity_id=entity_id,
            action=action,
            changes=changes,
        )
    )


def history(session: Session, *, entity_type: str, entity_id: int, limit: int = 50) -> list[AuditEntry]:
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.entity_type == entity_type, AuditEntry.entity_id == entity_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))
