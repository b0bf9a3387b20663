"""Roles and what each may do. Every route names the permission it needs."""

from enum import StrEnum


class Perm(StrEnum):
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    CUSTOMERS_DELETE = "customers:delete"
    USERS_MANAGE = "users:manage"
    FIELDS_MANAGE = "fields:manage"
    AUDIT_READ = "audit:read"
    TOKENS_OWN = "tokens:own"


ROLES = ("admin", "manager", "sales", "support", "marketing", "viewer")

_READ = {Perm.CUSTOMERS_READ, Perm.TOKENS_OWN}
_EDIT = _READ | {Perm.CUSTOMERS_WRITE, Perm.AUDIT_READ}

ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    "admin": frozenset(Perm),
    "manager": frozenset(_EDIT | {Perm.CUSTOMERS_DELETE}),
    "sales": frozenset(_EDIT),
    "support": frozenset(_EDIT),
    "marketing": frozenset(_EDIT),
    "viewer": frozenset(_READ | {Perm.AUDIT_READ}),
}


def can(role: str, perm: Perm) -> bool:
    return perm in ROLE_PERMISSIONS.get(role, frozenset())
