"""REST routes for exports: customers and orders as CSV or XLSX, streamed."""

import itertools
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.commerce.models import ORDER_CHANNELS, ORDER_STATUSES
from kokyaku.commerce.service import OrderFilters
from kokyaku.customers.models import GENDERS
from kokyaku.customers.service import CustomerFilters
from kokyaku.deps import api_permission
from kokyaku.i18n import negotiate
from kokyaku.imports import export as exporting
from kokyaku.kit.ids import MAX_ID, QueryId

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])
Exporter = Annotated[User, Depends(api_permission(Perm.DATA_EXPORT))]
Format = Annotated[Literal["csv", "xlsx"], Query(description="csv (UTF-8 with BOM) or xlsx")]
Lang = Annotated[Literal["ja", "en"] | None, Query(description="language of the headers")]
_FILE = {"description": "The export file.", "content": {m: {} for m in exporting.MEDIA_TYPES.values()}}


def _locale(request: Request, user: User, lang: str | None) -> str:
    return negotiate(
        chosen=lang or user.locale,
        accept_language=request.headers.get("accept-language"),
        default=request.app.state.settings.default_locale,
    )


def _response(request: Request, what: str, fmt: str, **kwargs: object) -> StreamingResponse:
    body = exporting.stream(request.app.state.db, what, fmt, **kwargs)
    # Pull the first chunk now: a bad request (an unknown segment...) must fail before the response starts,
    # when it can still be a 4xx with our error shape rather than a cut-off download.
    first = next(body, b"")
    body = itertools.chain([first], body)
    name = f"{what}-{date.today():%Y%m%d}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(body, media_type=exporting.MEDIA_TYPES[fmt], headers=headers)


@router.get("/customers", response_class=StreamingResponse, responses={200: _FILE})
def export_customers(
    request: Request,
    user: Exporter,
    format: Format = "csv",
    lang: Lang = None,
    kind: Literal["person", "company"] | None = None,
    prefecture: Annotated[str | None, Query(max_length=10)] = None,
    owner_id: QueryId = None,
    company_id: QueryId = None,
    gender: Literal[GENDERS] | None = None,  # type: ignore[valid-type]
    tag: Annotated[str | None, Query(max_length=50)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    segment_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only the members of this segment")
    ] = None,
) -> StreamingResponse:
    """Customers with the customer list's filters (or a segment's members), one row each."""
    filters = CustomerFilters(
        kind=kind,
        prefecture=prefecture,
        owner_id=owner_id,
        company_id=company_id,
        gender=gender,
        tag=tag,
        q=q,
    )
    tz = request.app.state.settings.timezone
    locale = _locale(request, user, lang)
    return _response(
        request, "customers", format, filters=filters, locale=locale, tz=tz, segment_id=segment_id
    )


@router.get("/orders", response_class=StreamingResponse, responses={200: _FILE})
def export_orders(
    request: Request,
    user: Exporter,
    format: Format = "csv",
    lang: Lang = None,
    date_from: Annotated[date | None, Query(alias="from", description="orders on or after this day")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="orders on or before this day")] = None,
    status: Literal[ORDER_STATUSES] | None = None,  # type: ignore[valid-type]
    channel: Literal[ORDER_CHANNELS] | None = None,  # type: ignore[valid-type]
    customer_id: int | None = None,
) -> StreamingResponse:
    """Orders, one row per order line, newest first; days are in the shop's time zone."""
    tz = request.app.state.settings.timezone
    zone = ZoneInfo(tz)
    filters = OrderFilters(
        customer_id=customer_id, status=status, channel=channel,
        ordered_from=datetime.combine(date_from, time(0), tzinfo=zone) if date_from else None,
        ordered_to=datetime.combine(date_to + timedelta(days=1), time(0), tzinfo=zone) if date_to else None,
    )  # fmt: skip
    locale = _locale(request, user, lang)
    return _response(request, "orders", format, filters=filters, locale=locale, tz=tz)
