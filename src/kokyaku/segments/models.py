"""Segments (rule-defined or frozen lists), their size history, and the per-customer RFM scores and lifecycle
stages with the history of stage changes."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from kokyaku.customers.models import DERIVED_FROM_CUSTOMER, Customer
from kokyaku.db import Base, UTCDateTime, utcnow

DYNAMIC, STATIC = "dynamic", "static"
SEGMENT_KINDS = (DYNAMIC, STATIC)


class Segment(Base):
    """A named set of customers: `dynamic` evaluates `rules` live; `static` is the member list frozen at
    `frozen_at` (its rules are kept to show how it was made)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(1000))
    kind: Mapped[str] = mapped_column(String(10), default=DYNAMIC)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the dynamic segment a snapshot was frozen from
    source_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    # last known size, so that the list page need not count every segment
    size: Mapped[int | None] = mapped_column(Integer)
    counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SegmentMember(Base):
    """A member of a static segment."""

    __tablename__ = "segment_members"
    __table_args__ = (
        Index("ix_segment_members_customer_id", "customer_id"),
        {"sqlite_with_rowid": False},
    )

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )


class SegmentSize(Base):
    """One size per segment and (local) day: written by the daily job and whenever a segment is saved."""

    __tablename__ = "segment_sizes"

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    size: Mapped[int] = mapped_column(Integer)


class CustomerRfm(Base):
    """RFM quintile scores (1-5) and named segment of a customer with at least one order; written when they
    change, so `computed_at` is the run that last changed them."""

    __tablename__ = "customer_rfm"
    __table_args__ = (Index("ix_customer_rfm_segment_customer", "segment", "customer_id"),)

    customer_id: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=False, info=DERIVED_FROM_CUSTOMER
    )
    r: Mapped[int] = mapped_column(SmallInteger)
    f: Mapped[int] = mapped_column(SmallInteger)
    m: Mapped[int] = mapped_column(SmallInteger)
    segment: Mapped[str] = mapped_column(String(24))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomerLifecycle(Base):
    """The current lifecycle stage of a customer. No row means `lead` (never bought)."""

    __tablename__ = "customer_lifecycle"
    __table_args__ = (Index("ix_customer_lifecycle_stage_customer", "stage", "customer_id"),)

    customer_id: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=False, info=DERIVED_FROM_CUSTOMER
    )
    stage: Mapped[str] = mapped_column(String(12))
    # when the customer entered this stage (the behaviour's date, not the run's)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LifecycleChange(Base):
    """One stage change of one customer: their journey, and the monthly flow chart."""

    __tablename__ = "lifecycle_changes"
    __table_args__ = (
        Index("ix_lifecycle_changes_customer_changed", "customer_id", "changed_at"),
        # covers the monthly flow query: a range on changed_at, grouped by the stage pair
        Index("ix_lifecycle_changes_changed_stages", "changed_at", "from_stage", "stage"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, info=DERIVED_FROM_CUSTOMER)
    stage: Mapped[str] = mapped_column(String(12))
    from_stage: Mapped[str | None] = mapped_column(String(12))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecomputeRun(Base):
    """One RFM + lifecycle recomputation: its timing, quintile boundaries and the R x F grid it produced."""

    __tablename__ = "segment_recompute_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seconds: Mapped[float] = mapped_column(Float)
    customers: Mapped[int] = mapped_column(Integer)
    active: Mapped[int] = mapped_column(Integer)
    rfm_written: Mapped[int] = mapped_column(Integer)
    stage_changes: Mapped[int] = mapped_column(Integer)
    # {"bounds": {...}, "grid": [[r, f, count, revenue], ...], "segments": {...}, "stages": {...}}
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# Indexes on customers for segment counts: a demographic condition pair (prefecture or gender, with an age
# range on birthday) is answered from the index alone (merged_into_id included, since every segment query
# excludes merged customers), and only the few candidates left are joined to customer_metrics by key.
_c = Customer.__table__.c
Index("ix_customers_seg_prefecture_birthday", _c.prefecture, _c.birthday, _c.merged_into_id)
Index("ix_customers_seg_gender_birthday", _c.gender, _c.birthday, _c.merged_into_id)
