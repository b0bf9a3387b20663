"""Prospects for event ingestion written through the database's fast path.

The same rows as `kokyaku.customers.bulk.create_prospects` (customers, identities, one audit row each), but
with reserved ids and plain tuples (executemany on SQLite, COPY on PostgreSQL) instead of an INSERT ...
RETURNING that SQLite must run one row at a time to keep the ids in order. It lives here only while
customers/bulk.py is being reworked; it belongs there, beside create_prospects.
"""

import json
from functools import lru_cache
from typing import cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from kokyaku.audit.models import AuditEntry
from kokyaku.audit.service import Actor
from kokyaku.commerce.bulk import _formats, _reserve_ids, _write
from kokyaku.customers.bulk import Prospect
from kokyaku.customers.models import PERSON, Customer, Identity
from kokyaku.customers.service import search_text_of
from kokyaku.db import utcnow

CUSTOMERS = cast(Table, Customer.__table__)
IDENTITIES = cast(Table, Identity.__table__)
AUDIT = cast(Table, AuditEntry.__table__)
CUSTOMER_COLUMNS = (
    "id", "kind", "name", "email", "phone", "source", "channel", "custom", "search_text", "created_at",
    "updated_at",
)  # fmt: skip
IDENTITY_COLUMNS = ("customer_id", "kind", "value", "source", "created_at")
AUDIT_COLUMNS = ("at", "actor_id", "actor_label", "entity_type", "entity_id", "action", "changes")

# prospects are named after a key or "Anonymous visitor": the same few names recur
_search_text = lru_cache(maxsize=4096)(search_text_of)


def create_prospects(session: Session, *, actor: Actor, prospects: list[Prospect]) -> list[int]:
    """Create person customers with their identities and audit rows; returns their ids in input order."""
    if not prospects:
        return []
    ids = _reserve_ids(session, len(prospects), CUSTOMERS)
    assert ids is not None, "ingestion runs on SQLite or PostgreSQL"
    when, _as_json = _formats(session)
    now = when(utcnow())
    customers, identities, audits = [], [], []
    for cid, p in zip(ids, prospects, strict=True):
        email = next((v for k, v, _s in p.identities if k == "email"), None)
        phone = next((v for k, v, _s in p.identities if k == "phone"), None)
        customers.append(
            (
                cid,
                PERSON,
                p.name,
                email,
                phone,
                p.source,
                p.channel,
                "{}",
                _search_text(p.name, None),
                now,
                now,
            )
        )
        identities += [(cid, kind, value, src, now) for kind, value, src in p.identities]
        changes = {
            "name": [None, p.name],
            "source": [None, p.source],
            "identities": [None, [f"{kind}:{value}" for kind, value, _src in p.identities]],
        }
        audits.append((now, actor.user_id, actor.label, "customer", cid, "create", json.dumps(changes)))
    _write(session, CUSTOMERS, CUSTOMER_COLUMNS, customers)
    _write(session, IDENTITIES, IDENTITY_COLUMNS, identities)
    _write(session, AUDIT, AUDIT_COLUMNS, audits)
    return ids
