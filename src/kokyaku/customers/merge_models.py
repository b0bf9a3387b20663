"""Merge records (enough to undo a merge exactly) and duplicate candidates found by the scanner."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kokyaku.db import Base, UTCDateTime, utcnow

OPEN, DISMISSED = "open", "dismissed"


class CustomerMerge(Base):
    """One merge of `merged_id` into `survivor_id`: who, when, why, and every row it moved."""

    __tablename__ = "customer_merges"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    automatic: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(254))
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_by_label: Mapped[str | None] = mapped_column(String(254))
    # {participant: {table: [row ids]}} as returned by each registered participant's move()
    moved: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # ids of the merged customer's identities now on the survivor
    identity_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # {"moved": [tags moved to the survivor], "dropped": [tags both had, removed from the merged one]}
    interests: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # people whose company was the merged company, now pointing at the survivor
    contact_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # survivor fields that were empty and were filled from the merged customer: {field: [old, new]}
    filled: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DuplicateCandidate(Base):
    """A pair of customers that look like one person or company; `customer_a_id` < `customer_b_id`."""

    __tablename__ = "duplicate_candidates"
    __table_args__ = (
        UniqueConstraint("customer_a_id", "customer_b_id", name="uq_duplicate_candidates_pair"),
        # the page: open candidates, best first, keyset on (score, id)
        Index("ix_duplicate_candidates_status_score_id", "status", "score", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_a_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    customer_b_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    # 0..100
    score: Mapped[int] = mapped_column(Integer)
    # [{"code": "same_email", "value": "..."}, ...]
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(10), default=OPEN)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dismissed_by_label: Mapped[str | None] = mapped_column(String(254))
