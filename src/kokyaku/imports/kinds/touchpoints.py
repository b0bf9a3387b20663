"""Touchpoints (calls, visits, emails, inquiries, ...) of existing customers, written through the timeline's
event ingestion: each row is an event (timeline.schemas.EventIn, the API's rules) whose id is the file's
touchpoint ID or, without one, a digest of the row, so that importing the same file twice adds nothing."""

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.customers import bulk
from kokyaku.i18n import gettext
from kokyaku.imports import values as v
from kokyaku.imports.kinds import (
    NO_CUSTOMER,
    Cells,
    Importer,
    Key,
    KnownKeys,
    Outcome,
    Problem,
    first,
    pydantic_problems,
)
from kokyaku.timeline import ingest
from kokyaku.timeline.models import Touchpoint
from kokyaku.timeline.schemas import EventIn

CHANNELS = {
    "メール": "email", "email": "email", "mail": "email", "電話": "phone", "phone": "phone", "tel": "phone",
    "チャット": "chat", "chat": "chat", "line": "chat", "店舗": "store", "来店": "store", "店頭": "store",
    "store": "store", "ウェブ": "web", "web": "web", "サイト": "web", "sns": "sns", "広告": "ad", "ad": "ad",
    "問い合わせ": "inquiry", "問合せ": "inquiry", "お問い合わせ": "inquiry", "inquiry": "inquiry",
    "その他": "other", "other": "other",
}  # fmt: skip
_KEY_FIELDS = {"email": "customer_email", "phone": "customer_phone", "external": "customer_external_id"}


@dataclass
class TouchRow:
    row: int
    event: EventIn
    key: Key


class TouchpointImporter(Importer):
    kind = "touchpoints"
    grows = ("touchpoints",)

    def parse(self, row: int, cells: Cells) -> tuple[Any | None, list[Problem]]:
        problems: list[Problem] = []
        data: dict[str, Any] = {"type": first(cells, "type"), "summary": first(cells, "summary") or ""}
        text = first(cells, "at")
        if text:
            try:
                data["at"] = v.parse_datetime(text, self.context.timezone)
            except ValueError as exc:
                problems.append((row, "at", str(exc), {}))
        if text := first(cells, "channel"):
            data["channel"] = CHANNELS.get(text.strip().lower(), text)
        for kind, fld in _KEY_FIELDS.items():
            if value := first(cells, fld):
                data[kind if kind != "external" else "external_id"] = value
        if "external_id" in data:
            data["source"] = self.context.source
        given = first(cells, "event_id")
        data["event_id"] = given or "pending"
        try:
            event = EventIn.model_validate(data)
        except ValidationError as exc:
            rename = {"email": "customer_email", "phone": "customer_phone"}
            rename["external_id"] = "customer_external_id"
            return None, problems + pydantic_problems(row, exc, rename)
        if problems:
            return None, problems
        if event.channel is None:
            return None, [(row, "channel", "This field is required.", {})]
        keys = (("external", event.external_id), ("email", event.email), ("phone", event.phone))
        key: Key = next((k, val) for k, val in keys if val)
        if not given:
            parts = [key[0], key[1], event.at.isoformat(), event.channel, event.type, event.summary]
            digest = "|".join(parts)
            event.event_id = "import:" + hashlib.sha256(digest.encode()).hexdigest()[:40]
        return TouchRow(row, event, key), []

    def apply(
        self, session: Session, *, actor: Actor, records: list[Any], write: bool, known: KnownKeys | None
    ) -> Outcome:
        out = Outcome()
        owners = bulk.lookup_keys(session, {r.key for r in records})
        ids = sorted({r.event.event_id for r in records})
        stmt = select(Touchpoint.source_event_id).where(Touchpoint.source_event_id.in_(ids))
        seen = set(session.scalars(stmt))
        fresh: list[TouchRow] = []
        for r in records:
            if r.key not in owners:
                out.errors.append((r.row, _KEY_FIELDS[r.key[0]], NO_CUSTOMER[r.key[0]], {}))
            elif r.event.event_id in seen:
                out.unchanged += 1
            else:
                seen.add(r.event.event_id)
                fresh.append(r)
        if write:
            placeholder = gettext("en", "Anonymous visitor")
            for start in range(0, len(fresh), ingest.MAX_BATCH):
                chunk = fresh[start : start + ingest.MAX_BATCH]
                events = [r.event.model_dump(exclude_none=True) for r in chunk]
                result = ingest.ingest(session, actor=actor, events=events, placeholder_name=placeholder)
                for r, res in zip(chunk, result.results, strict=True):
                    if res.status == "created":
                        out.created += 1
                    elif res.status == "duplicate":
                        out.unchanged += 1
                    else:
                        out.errors += [(r.row, e.field, e.message, {}) for e in res.errors]
        else:
            out.created += len(fresh)
        return out
