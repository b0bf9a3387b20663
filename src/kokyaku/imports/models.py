"""Saved column mappings and import runs (the progress record that makes a killed import resumable)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kokyaku.db import Base, UTCDateTime, utcnow

KINDS = ("customers", "companies", "products", "orders", "touchpoints")
MODES = ("dry_run", "all_or_nothing", "skip_invalid")
# uploaded: waiting for the user's mapping; queued/running: a job has it; then one of the last three.
STATUSES = ("uploaded", "queued", "running", "done", "invalid", "failed")
# check: validating without writing (a dry run, or pass 1 of all-or-nothing); write: committing batches.
PHASES = ("check", "write")


class ImportMapping(Base):
    """A named header -> field mapping the user saved for files of one kind."""

    __tablename__ = "import_mappings"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_import_mappings_kind_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    # {"header as in the file": "field" or "" (ignore)}
    columns: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportRun(Base):
    """One execution of an import over one file. In the write phase `rows_done` and the counts change in the
    same transaction as each batch, so they always describe exactly what has been committed."""

    __tablename__ = "import_runs"
    __table_args__ = (Index("ix_import_runs_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(16), default="all_or_nothing")
    status: Mapped[str] = mapped_column(String(10), default="uploaded")
    phase: Mapped[str | None] = mapped_column(String(8))
    filename: Mapped[str] = mapped_column(String(255))
    # where the file is: under the data directory for uploads, the user's path for the CLI
    path: Mapped[str] = mapped_column(String(1000))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    encoding: Mapped[str | None] = mapped_column(String(20))
    columns: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    locale: Mapped[str] = mapped_column(String(5), default="ja")
    rows_total: Mapped[int | None] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    # the first problems, [{"row", "field", "message" (msgid), "params"}]; all of them are in the error file
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    errors_path: Mapped[str | None] = mapped_column(String(1000))
    # a file-level error (msgid + params), shown translated
    message: Mapped[str | None] = mapped_column(String(500))
    message_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
