"""Roles and what each may do. Every route names the permission it needs."""

from enum import StrEnum


class Perm(StrEnum):
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    CUSTOMERS_DELETE = "customers:delete"
    CUSTOMERS_MERGE = "customers:merge"  # see duplicate candidates, merge and undo merges
    USERS_MANAGE = "users:manage"
    FIELDS_MANAGE = "fields:manage"
    AUDIT_READ = "audit:read"
    TOKENS_OWN = "tokens:own"
    TOUCHPOINTS_WRITE = "touchpoints:write"
    EVENTS_INGEST = "events:ingest"
    SEGMENTS_READ = "segments:read"
    SEGMENTS_WRITE = "segments:write"
    JOBS_OWN = "jobs:own"  # see, cancel and retry the jobs one started
    JOBS_ALL = "jobs:all"  # the same for everyone's jobs
    ORDERS_READ = "orders:read"  # orders, products and purchase metrics
    ORDERS_WRITE = "orders:write"  # place orders, change status, returns and refunds
    PRODUCTS_MANAGE = "products:manage"
    DATA_EXPORT = "data:export"  # download customers and orders as CSV/XLSX (imports need customers:write)
    FEEDBACK_READ = "feedback:read"  # survey results, reviews, follow-ups (owners close their own)
    FEEDBACK_WRITE = "feedback:write"  # build and send surveys, import and acknowledge reviews, any follow-up
    ANALYTICS_READ = "analytics:read"  # scores, KPIs, cohorts and model checks


ROLES = ("admin", "manager", "sales", "support", "marketing", "viewer")

# Every role reads customers, orders, segments, feedback and analytics.
_READ = {
    Perm.CUSTOMERS_READ,
    Perm.TOKENS_OWN,
    Perm.SEGMENTS_READ,
    Perm.JOBS_OWN,
    Perm.ORDERS_READ,
    Perm.FEEDBACK_READ,
    Perm.ANALYTICS_READ,
}
_EDIT = _READ | {
    Perm.CUSTOMERS_WRITE,
    Perm.AUDIT_READ,
    Perm.TOUCHPOINTS_WRITE,
    Perm.EVENTS_INGEST,
    Perm.ORDERS_WRITE,
    Perm.DATA_EXPORT,
}

ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    "admin": frozenset(Perm),
    "manager": frozenset(
        _EDIT
        | {
            Perm.CUSTOMERS_DELETE,
            Perm.CUSTOMERS_MERGE,
            Perm.SEGMENTS_WRITE,
            Perm.JOBS_ALL,
            Perm.PRODUCTS_MANAGE,
            Perm.FEEDBACK_WRITE,
        }
    ),
    "sales": frozenset(_EDIT),
    "support": frozenset(_EDIT | {Perm.FEEDBACK_WRITE}),
    "marketing": frozenset(_EDIT | {Perm.SEGMENTS_WRITE, Perm.FEEDBACK_WRITE}),
    "viewer": frozenset(_READ | {Perm.AUDIT_READ}),
}


def can(role: str, perm: Perm) -> bool:
    return perm in ROLE_PERMISSIONS.get(role, frozenset())
