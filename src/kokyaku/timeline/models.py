"""The timeline (one row per thing that happened to a customer) and touchpoints.

Every ingested event becomes one touchpoint, so `touchpoints.source_event_id` (unique) is the table of seen
event ids that makes ingestion idempotent."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kokyaku.db import Base, UTCDateTime, utcnow

TOUCHPOINT_CHANNELS = ("email", "phone", "chat", "store", "web", "sns", "ad", "inquiry", "other")
# Kinds written by the constructors in entries.py; templates label each one.
ENTRY_KINDS = (
    "order_placed",
    "order_status_changed",
    "touchpoint",
    "survey_answered",
    "customers_merged",
    "customers_unmerged",
)


class TimelineEntry(Base):
    """One line of a customer's timeline; written only through the constructors in entries.py."""

    __tablename__ = "timeline_entries"
    __table_args__ = (
        # Newest first per customer, keyset on (at, id). A channel or kind filter walks the same index and
        # skips other rows: cheap for thousands of entries per customer, and a second index would cost every
        # ingested event another random page write.
        Index("ix_timeline_entries_customer_at_id", "customer_id", "at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(30))
    channel: Mapped[str | None] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(String(500), default="")
    # what the entry points at: ("order", 12), ("touchpoint", 5), ("survey_response", 3), ("customer", 9)
    ref_type: Mapped[str | None] = mapped_column(String(30))
    ref_id: Mapped[int | None] = mapped_column(Integer)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Touchpoint(Base):
    """A contact on any channel: an email opened, a call, a store visit, a web visit, an inquiry."""

    __tablename__ = "touchpoints"
    __table_args__ = (Index("ix_touchpoints_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(12))
    type: Mapped[str] = mapped_column(String(50))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(String(500), default="")
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the ingested event this came from: a re-sent event never makes a second touchpoint
    source_event_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
