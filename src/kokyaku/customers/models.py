"""Customers (people and companies in one table, so that orders, timelines and metrics key on one id),
their identities, interests, search grams and admin-defined custom fields."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kokyaku.db import Base, UTCDateTime, utcnow

PERSON, COMPANY = "person", "company"
GENDERS = ("female", "male", "other", "unknown")
COMPANY_SIZES = ("1-9", "10-49", "50-249", "250-999", "1000+")
IDENTITY_KINDS = ("email", "phone", "external", "anonymous")

# Marks a customer_id column that has no foreign key: derived tables rewritten in bulk (RFM scores, lifecycle
# stages and their history), where the per-row key check would cost more than the write itself. Deleting a
# customer deletes their rows in these tables explicitly (customers.service.delete_customer).
DERIVED_FROM_CUSTOMER = {"derived_from": "customers.id"}
# The same, for the search grams, whose rows customers.search_index removes by their whole key.
DERIVED_FOR_SEARCH = {**DERIVED_FROM_CUSTOMER, "removed_by": "customers.search_index"}


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_kind_id", "kind", "id"),
        Index("ix_customers_prefecture_id", "prefecture", "id"),
        Index("ix_customers_owner_id_id", "owner_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default=PERSON)
    name: Mapped[str] = mapped_column(String(200))
    name_kana: Mapped[str | None] = mapped_column(String(200))
    # Primary email and phone, copied from identities for lists; identities are the truth.
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    birthday: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(10))
    postal_code: Mapped[str | None] = mapped_column(String(8))
    prefecture: Mapped[str | None] = mapped_column(String(10))
    city: Mapped[str | None] = mapped_column(String(100))
    street: Mapped[str | None] = mapped_column(String(200))
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    job_title: Mapped[str | None] = mapped_column(String(100))
    industry: Mapped[str | None] = mapped_column(String(100))
    company_size: Mapped[str | None] = mapped_column(String(10))
    website: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str | None] = mapped_column(String(30))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    locale: Mapped[str | None] = mapped_column(String(5))
    note: Mapped[str | None] = mapped_column(String(2000))
    # search_key(name) + U+0001 + search_key(name_kana): checked after the gram index narrows the rows
    search_text: Mapped[str] = mapped_column(String(402), default="")
    custom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when this customer was merged into another (customers/merge.py): the row stays, hidden from lists
    # and search, so that the merge can be undone exactly; deleting the survivor deletes it too.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )


class Identity(Base):
    """A normalised key that identifies one customer: an email, a phone, an id in another system."""

    __tablename__ = "customer_identities"
    __table_args__ = (
        UniqueConstraint("kind", "value", name="uq_customer_identities_kind_value"),
        # covers prefix search: the matching customer ids come from the index alone
        Index("ix_customer_identities_kind_value_customer", "kind", "value", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    value: Mapped[str] = mapped_column(String(254))
    # for external ids: the system they come from (shopify, pos, ...)
    source: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Interest(Base):
    __tablename__ = "customer_interests"
    __table_args__ = (Index("ix_customer_interests_tag_customer", "tag", "customer_id"),)

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(50), primary_key=True)


class SearchGram(Base):
    """Unigrams and bigrams of each customer's name and kana, so that short Japanese queries use an index.

    PostgreSQL (and any database but SQLite) keeps them here. SQLite keeps them in the FTS5 table
    customer_search_fts instead, one document per customer, which is several times cheaper to write; this
    table stays empty there. Read and write them only through customers.search_index. No foreign key: it
    cost 18 checks per customer written, and its cascade looked for a deleted customer's rows through all of
    them (the key leads with the gram)."""

    __tablename__ = "customer_search_grams"
    __table_args__ = ({"sqlite_with_rowid": False},)

    gram: Mapped[str] = mapped_column(String(2), primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=False, info=DERIVED_FOR_SEARCH
    )


class CustomFieldDef(Base):
    __tablename__ = "custom_field_defs"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    label_ja: Mapped[str] = mapped_column(String(100))
    label_en: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(10))
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    applies_to: Mapped[str] = mapped_column(String(10), default=PERSON)
    required: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
