"""REST routes: a customer's touchpoints and timeline, and the event ingestion endpoint."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.customers.service import get_customer
from kokyaku.deps import DB, actor, api_permission
from kokyaku.errors import KokyakuError, ValidationFailed
from kokyaku.i18n import gettext
from kokyaku.kit.ids import PathId
from kokyaku.timeline import ingest, service
from kokyaku.timeline.schemas import (
    MAX_BATCH,
    EventIn,
    IngestResult,
    TimelineEntryOut,
    TimelinePage,
    TouchpointIn,
    TouchpointOut,
    TouchpointPage,
)

router = APIRouter(prefix="/api/v1", tags=["timeline"])
Reader = Annotated[User, Depends(api_permission(Perm.CUSTOMERS_READ))]
Writer = Annotated[User, Depends(api_permission(Perm.TOUCHPOINTS_WRITE))]
Cursor = Annotated[str | None, Query(max_length=200)]
# 1,000 events of at most 8 KB of properties each, plus their keys: anything larger is not a valid batch.
MAX_BODY_BYTES = 16 * 1024 * 1024


@router.post(
    "/customers/{customer_id}/touchpoints",
    response_model=TouchpointOut,
    status_code=201,
    name="create_touchpoint",
)
def create_touchpoint(db: DB, user: Writer, customer_id: PathId, body: TouchpointIn) -> TouchpointOut:
    tp = service.record_touchpoint(db, actor=actor(user), customer_id=customer_id, data=body)
    db.flush()
    return TouchpointOut.model_validate(tp)


@router.get("/customers/{customer_id}/touchpoints", response_model=TouchpointPage, name="list_touchpoints")
def list_touchpoints(
    db: DB,
    _user: Reader,
    customer_id: PathId,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TouchpointPage:
    get_customer(db, customer_id)
    page = service.list_touchpoints(db, customer_id, channel=channel, cursor=cursor, limit=limit)
    return TouchpointPage(
        items=[TouchpointOut.model_validate(t) for t in page.items], next_cursor=page.next_cursor
    )


@router.get("/customers/{customer_id}/timeline", response_model=TimelinePage, name="customer_timeline")
def timeline(
    db: DB,
    _user: Reader,
    customer_id: PathId,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    kind: Annotated[str | None, Query(max_length=30)] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> TimelinePage:
    """Everything that happened to a customer, newest first; pass `next_cursor` back as `cursor`."""
    get_customer(db, customer_id)
    page = service.list_timeline(db, customer_id, channel=channel, kind=kind, cursor=cursor, limit=limit)
    return TimelinePage(
        items=[TimelineEntryOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )


def _ingester(request: Request) -> User:
    """The bearer-token user, checked in a read transaction: on SQLite a write session would take the write
    lock here and hold it while the batch is parsed and validated."""
    with request.app.state.db.session(write=False) as session:
        return _can_ingest(request, session)


_can_ingest = api_permission(Perm.EVENTS_INGEST)


class BodyTooLarge(KokyakuError):
    code = "body_too_large"
    status = 413
    message = "The request body is larger than {limit} MB."


async def _events_body(request: Request) -> list[Any]:
    """The `events` list of the body, read with a size cap; each event is checked later, one by one."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(limit=MAX_BODY_BYTES // (1024 * 1024))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(limit=MAX_BODY_BYTES // (1024 * 1024))
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed([("body", "The request body is not valid JSON.", {})]) from exc
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ValidationFailed([("events", "The body must be an object with a list of events.", {})])
    extra = sorted(set(body) - {"events"})
    if extra:
        raise ValidationFailed([(extra[0], "Unknown field.", {})])
    events: list[Any] = body["events"]
    if len(events) > MAX_BATCH:
        raise ingest.BatchTooLarge(field="events", limit=MAX_BATCH, count=len(events))
    return events


_BATCH_SCHEMA = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["events"],
                "additionalProperties": False,
                "properties": {
                    "events": {
                        "type": "array",
                        "maxItems": MAX_BATCH,
                        "items": EventIn.model_json_schema(),
                    }
                },
            }
        }
    },
}


@router.post(
    "/events",
    response_model=IngestResult,
    name="ingest_events",
    openapi_extra={"requestBody": _BATCH_SCHEMA},
    responses={413: {"description": "More than 1,000 events, or a body over 16 MB: nothing was stored."}},
)
def ingest_events(
    request: Request,
    user: Annotated[User, Depends(_ingester)],
    events: Annotated[list[Any], Depends(_events_body)],
) -> Response:
    """Store a batch of up to 1,000 events in one transaction.

    Always **200** when the batch itself is well formed, even if some events are invalid: `results` holds
    one entry per event, in order, with `status` `created`, `duplicate` (this `event_id` was stored before;
    nothing new is written) or `invalid` (with `errors` naming each field). Valid events are stored even
    when others are invalid; re-sending a batch is always safe. Each event resolves to the customer owning
    any of its keys, or to a new prospect; an anonymous visitor seen with a known customer's key is merged
    into that customer.
    """
    checked = ingest.validate(events)
    placeholder = gettext(request.app.state.settings.default_locale, "Anonymous visitor")
    # The write transaction starts only now: validation above holds no lock.
    with request.app.state.db.session() as db:
        outcome = ingest.store(db, actor=actor(user), checked=checked, placeholder_name=placeholder)
    return Response(content=outcome.json(), media_type="application/json")
