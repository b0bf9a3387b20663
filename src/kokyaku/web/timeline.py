"""The Timeline section of the customer page: newest first, channel chips and "more" through htmx, and a
form to log a touchpoint (a phone call, a store visit)."""

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.customers.models import Customer
from kokyaku.customers.service import get_customer
from kokyaku.db import utcnow
from kokyaku.deps import DB, actor, check_csrf, page_permission
from kokyaku.errors import KokyakuError
from kokyaku.i18n import gettext
from kokyaku.kit.ids import PathId
from kokyaku.kit.time import to_local
from kokyaku.timeline import service
from kokyaku.timeline.models import TOUCHPOINT_CHANNELS
from kokyaku.timeline.schemas import TouchpointIn
from kokyaku.web.customers import Section, register_section
from kokyaku.web.forms import errors_of, form_dict, parse
from kokyaku.web.render import locale_of, render

router = APIRouter(include_in_schema=False)
Reader = Annotated[User, Depends(page_permission(Perm.CUSTOMERS_READ))]
Writer = Annotated[User, Depends(page_permission(Perm.TOUCHPOINTS_WRITE))]
Csrf = Depends(check_csrf)

# English msgids; templates pass them through _().
# Channel msgids differ from the profile's "Email"/"Phone" (an address, a number) on purpose.
CHANNEL_LABELS = {
    "email": "E-mail", "phone": "Telephone", "chat": "Chat", "store": "In store", "web": "Web", "sns": "SNS",
    "ad": "Ads", "inquiry": "Inquiry", "other": "Other channel", "online": "Online shop",
    "marketplace": "Marketplace", "event": "Event",
}  # fmt: skip
KIND_LABELS = {
    "order_placed": "Order placed", "order_status_changed": "Order updated", "touchpoint": "Touchpoint",
    "survey_answered": "Survey answered", "customers_merged": "Customers merged",
    "customers_unmerged": "Merge undone",
}  # fmt: skip
STATUS_LABELS = {
    "placed": "Placed", "paid": "Paid", "shipped": "Shipped", "returned": "Returned", "refunded": "Refunded",
    "cancelled": "Cancelled",
}  # fmt: skip
# Common touchpoint types get a label; any other type is shown as it was sent.
TYPE_LABELS = {
    "call": "Phone call", "visit": "Store visit", "meeting": "Meeting", "note": "Note",
    "email_open": "Email opened", "email_click": "Email link clicked", "email_sent": "Email sent",
    "page_view": "Page view", "login": "Login", "signup": "Sign-up", "inquiry": "Inquiry", "chat": "Chat",
    "ad_click": "Ad clicked", "sns_like": "SNS like", "sns_comment": "SNS comment",
    "sns_follow": "SNS follow", "cart_add": "Added to cart", "purchase": "Purchase",
}  # fmt: skip


def register_kind(kind: str, label: str) -> None:
    """Name an entry kind that another domain writes (an English msgid, translated in its .po file), e.g.
    `register_kind("ticket_opened", "Ticket opened")` from web/support.py; unnamed kinds show as words."""
    KIND_LABELS[kind] = label


# What the form suggests for each channel when a person logs a touchpoint by hand.
FORM_TYPES = ("call", "visit", "meeting", "email_sent", "inquiry", "chat", "note")
FORM_CHANNELS = tuple(c for c in TOUCHPOINT_CHANNELS if c not in ("web", "ad"))
LABELS = {"channel": CHANNEL_LABELS, "kind": KIND_LABELS, "status": STATUS_LABELS, "type": TYPE_LABELS}


def _now_local(tz: str) -> str:
    local = to_local(utcnow(), tz)
    return local.strftime("%Y-%m-%dT%H:%M") if local else ""


def _data(
    session: Session,
    customer_id: int,
    *,
    channel: str | None = None,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    saved: bool = False,
    tz: str = "Asia/Tokyo",
) -> dict[str, Any]:
    channel = channel if channel and len(channel) <= 20 else None
    page = service.list_timeline(session, customer_id, channel=channel)
    return {
        "page": page,
        "channel": channel,
        "channels": service.channels_of(session, customer_id),
        "more_url": _url(customer_id, channel, page.next_cursor),
        "form_values": values or {"channel": "phone", "type": "call", "at": _now_local(tz)},
        "errors": errors or {},
        "saved": saved,
        "labels": LABELS,
        "form_channels": FORM_CHANNELS,
        "form_types": FORM_TYPES,
    }


def _url(customer_id: int, channel: str | None, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = {k: v for k, v in (("channel", channel), ("cursor", cursor)) if v}
    return f"/customers/{customer_id}/timeline?{urlencode(query)}"


def _load(session: Session, customer: Customer) -> dict[str, Any]:
    return _data(session, customer.id)


register_section(
    Section(key="timeline", title="Timeline", template="timeline/section.html", load=_load, order=50)
)


def _tz(user: User) -> str:
    return user.timezone or "Asia/Tokyo"


@router.get("/customers/{customer_id}/timeline", response_class=HTMLResponse)
def timeline(request: Request, db: DB, user: Reader, customer_id: PathId) -> Response:
    """htmx: the next rows (with a cursor) or the whole section body (a channel chip); else a full page."""
    customer = get_customer(db, customer_id)
    p = request.query_params
    channel = p.get("channel") or None
    ctx = {"c": {"id": customer.id, "name": customer.name}}
    if p.get("cursor"):
        page = service.list_timeline(db, customer_id, channel=channel, cursor=p.get("cursor"))
        ctx["data"] = {
            "page": page,
            "more_url": _url(customer_id, channel, page.next_cursor),
            "labels": LABELS,
        }
        if request.headers.get("hx-request") == "true":
            return render(request, "timeline/_rows.html", ctx)
    else:
        ctx["data"] = _data(db, customer_id, channel=channel, tz=_tz(user))
        if request.headers.get("hx-request") == "true":
            return render(request, "timeline/_body.html", ctx)
    return render(request, "timeline/page.html", ctx)


def _parse_local(value: str | None, tz: str) -> datetime | None:
    """A datetime-local field, read in the user's time zone."""
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(tz))


@router.post("/customers/{customer_id}/touchpoints", response_class=HTMLResponse, dependencies=[Csrf])
async def log_touchpoint(request: Request, db: DB, user: Writer, customer_id: PathId) -> Response:
    customer = get_customer(db, customer_id)
    locale = locale_of(request)
    raw = form_dict(await request.form())
    data: dict[str, Any] = {k: raw.get(k) for k in ("channel", "type", "summary")}
    bad_at = False
    try:
        data["at"] = _parse_local(raw.get("at"), _tz(user))
    except ValueError:
        bad_at = True
    parsed, errors = parse(TouchpointIn, data, locale)
    if bad_at:
        errors["at"] = gettext(locale, "Must be a date and time.")
    if not errors:
        try:
            service.record_touchpoint(db, actor=actor(user), customer_id=customer_id, data=parsed)
        except KokyakuError as exc:
            db.rollback()  # nothing half-written: the form comes back with the message at the field
            errors = errors_of(exc, locale)
    htmx = request.headers.get("hx-request") == "true"
    if not errors and not htmx:
        return RedirectResponse(f"/customers/{customer_id}#h-timeline", status_code=303)
    ctx = {
        "c": {"id": customer.id, "name": customer.name},
        "data": _data(
            db, customer_id, values=None if not errors else raw, errors=errors, saved=not errors, tz=_tz(user)
        ),
    }
    if htmx:
        # 200 even with errors: htmx swaps only successful responses, and the errors belong in the form.
        return render(request, "timeline/_body.html", ctx)
    return render(request, "timeline/page.html", ctx, 422)
