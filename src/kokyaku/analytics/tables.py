"""customer_scores: the latest CLV/churn scores per customer, written by `kokyaku analytics run`."""

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from kokyaku.db import Base, UTCDateTime

CHURN_BANDS = ("low", "medium", "high")


class CustomerScore(Base):
    """One row per customer with counted orders: model predictions as of `scored_at`."""

    __tablename__ = "customer_scores"
    # No secondary index: every scoring run rewrites every row, and without one PostgreSQL updates rows within
    # their page (fillfactor 70, set by the migration) instead of adding index entries. Segment conditions on
    # scores scan the table, ~1M rows of fixed-width columns.

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    p_alive: Mapped[float] = mapped_column(Float)  # probability the customer is still active, 0..1
    expected_90d: Mapped[float] = mapped_column(Float)  # expected purchase days in the next 90 days
    expected_365d: Mapped[float] = mapped_column(Float)
    clv_12m: Mapped[int] = mapped_column(BigInteger)  # discounted 12-month value, minor units
    churn_band: Mapped[str] = mapped_column(String(6))  # low | medium | high
    model: Mapped[str] = mapped_column(String(12))  # bgnbd | paretonbd
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime)
