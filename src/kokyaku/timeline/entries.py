"""Typed constructors for timeline entries: the only way any domain writes to the timeline.

Each adds one row in the caller's transaction and returns it (flushed lazily with the session). What a
template needs to show the entry in the reader's language goes into `properties`; `summary` holds free
text written by a person or an event source, shown as it is.
"""

import json
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from kokyaku.kit.bulk import db_formats, insert_tuples
from kokyaku.timeline.models import TimelineEntry

_SUMMARY_MAX = 500


def _add(
    session: Session,
    *,
    customer_id: int,
    at: datetime,
    kind: str,
    channel: str | None,
    summary: str = "",
    ref_type: str | None,
    ref_id: int | None,
    properties: dict[str, Any],
) -> TimelineEntry:
    if at.tzinfo is None:
        raise ValueError("timeline entries need a timezone-aware time")
    entry = TimelineEntry(
        customer_id=customer_id,
        at=at,
        kind=kind,
        channel=channel,
        summary=(summary or "")[:_SUMMARY_MAX],
        ref_type=ref_type,
        ref_id=ref_id,
        properties=properties,
    )
    session.add(entry)
    return entry


def order_placed(
    session: Session,
    *,
    customer_id: int,
    order_id: int,
    at: datetime,
    channel: str,
    total: int,
    currency: str,
) -> TimelineEntry:
    """An order was placed (total in minor units)."""
    return _add(
        session,
        customer_id=customer_id,
        at=at,
        kind="order_placed",
        channel=channel,
        ref_type="order",
        ref_id=order_id,
        properties={"order_id": order_id, "total": total, "currency": currency},
    )


def order_status_changed(
    session: Session,
    *,
    customer_id: int,
    order_id: int,
    at: datetime,
    status: str,
    total: int,
    currency: str,
) -> TimelineEntry:
    """An order moved to a new status (paid, shipped, returned, refunded, cancelled); total after it."""
    return _add(
        session,
        customer_id=customer_id,
        at=at,
        kind="order_status_changed",
        channel=None,
        ref_type="order",
        ref_id=order_id,
        properties={"order_id": order_id, "status": status, "total": total, "currency": currency},
    )


def touchpoint_recorded(
    session: Session,
    *,
    customer_id: int,
    touchpoint_id: int,
    at: datetime,
    channel: str,
    type: str,  # noqa: A002 - the field is called type everywhere else
    summary: str,
) -> TimelineEntry:
    """A touchpoint (call, visit, email, web visit, inquiry) was recorded."""
    return _add(
        session,
        customer_id=customer_id,
        at=at,
        kind="touchpoint",
        channel=channel,
        summary=summary,
        ref_type="touchpoint",
        ref_id=touchpoint_id,
        properties={"type": type},
    )


def survey_answered(
    session: Session,
    *,
    customer_id: int,
    response_id: int,
    at: datetime,
    survey_name: str,
    score: int | float | None,
    channel: str = "web",
) -> TimelineEntry:
    """A survey (NPS, CSAT, CES) was answered."""
    return _add(
        session,
        customer_id=customer_id,
        at=at,
        kind="survey_answered",
        channel=channel,
        summary=survey_name,
        ref_type="survey_response",
        ref_id=response_id,
        properties={"survey_name": survey_name, "score": score},
    )


def customers_merged(
    session: Session,
    *,
    customer_id: int,
    merged_id: int,
    at: datetime,
    actor_label: str,
    undone: bool = False,
) -> TimelineEntry:
    """Another customer record was merged into this one, or (`undone`) that merge was undone: the timeline
    keeps both lines, so its history stays true."""
    return _add(
        session,
        customer_id=customer_id,
        at=at,
        kind="customers_unmerged" if undone else "customers_merged",
        channel=None,
        ref_type="customer",
        ref_id=merged_id,
        properties={"merged_id": merged_id, "actor": actor_label},
    )


TIMELINE_COLUMNS = ("customer_id", "at", "kind", "channel", "summary", "ref_type", "ref_id", "properties")


def bulk_add(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert many entries in one batched write (imports, ingestion, demo data)."""
    if not rows:
        return
    when, as_json = db_formats(session)
    clean = []
    for row in rows:
        at = row["at"]
        if at.tzinfo is None:
            raise ValueError("timeline entries need a timezone-aware time")
        clean.append(
            (
                row["customer_id"],
                when(at.astimezone(UTC)),
                row["kind"],
                row.get("channel"),
                (row.get("summary") or "")[:_SUMMARY_MAX],
                row.get("ref_type"),
                row.get("ref_id"),
                as_json(row.get("properties") or {}),
            )
        )
    insert_tuples(session, cast(Table, TimelineEntry.__table__), TIMELINE_COLUMNS, clean)


def touchpoints_recorded(session: Session, rows: list[tuple[int, datetime, str, str, int, str]]) -> None:
    """Many touchpoints were recorded (event ingestion): one entry each, in one batched write.

    Each row is (customer_id, at, channel, summary, touchpoint_id, touchpoint type), `at` aware.
    """
    if not rows:
        return
    when, _as_json = db_formats(session)
    props: dict[str, str] = {}  # a handful of types per batch: their JSON is made once
    clean = []
    for customer_id, at, channel, summary, touchpoint_id, type_ in rows:
        if at.tzinfo is None:
            raise ValueError("timeline entries need a timezone-aware time")
        shown = props.get(type_)
        if shown is None:
            shown = props[type_] = json.dumps({"type": type_})
        clean.append(
            (customer_id, when(at.astimezone(UTC)), "touchpoint", channel, (summary or "")[:_SUMMARY_MAX],
             "touchpoint", touchpoint_id, shown)
        )  # fmt: skip
    insert_tuples(session, cast(Table, TimelineEntry.__table__), TIMELINE_COLUMNS, clean)
