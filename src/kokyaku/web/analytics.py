"""Analytics pages: the KPI board (/analytics), cohort retention (/analytics/cohorts) and the customer
page's "Predictions" section."""

import json
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from kokyaku.analytics.cohorts import channels, cohorts
from kokyaku.analytics.kpis import KPIS, board, default_period
from kokyaku.analytics.scoring import HIGH_RISK, LOW_RISK
from kokyaku.analytics.tables import CustomerScore
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.commerce.metrics import base_currency
from kokyaku.commerce.models import CustomerMetrics
from kokyaku.config import get_settings
from kokyaku.customers.models import Customer
from kokyaku.deps import DB, page_permission
from kokyaku.i18n import gettext
from kokyaku.web.customers import Section, register_section
from kokyaku.web.render import locale_of, render

router = APIRouter()
Reader = Annotated[User, Depends(page_permission(Perm.ORDERS_READ))]
BAND_LABELS = {"low": "Low", "medium": "Medium", "high": "High"}


def explain(metrics: CustomerMetrics | None, score: CustomerScore, today: datetime) -> dict[str, Any]:
    """The figures of the plain-language explanation: orders, days since the last, usual gap, % alive."""
    percent = round(score.p_alive * 100)
    if metrics is None or not metrics.order_count or metrics.last_order_at is None:
        return {"orders": 0, "percent": percent}
    days = max((today - metrics.last_order_at).days, 0)
    gap = None
    if metrics.order_count > 1 and metrics.first_order_at is not None:
        gap = round((metrics.last_order_at - metrics.first_order_at).days / (metrics.order_count - 1))
    return {"orders": metrics.order_count, "days": days, "gap": gap, "percent": percent}


def _section(session: Session, customer: Customer) -> dict[str, Any]:
    score = session.get(CustomerScore, customer.id)
    if score is None:
        return {"score": None}
    metrics = session.get(CustomerMetrics, customer.id)
    now = datetime.now(ZoneInfo(get_settings().timezone))
    return {
        "score": score,
        "p_alive_percent": round(score.p_alive * 100),
        "band_label": BAND_LABELS.get(score.churn_band, score.churn_band),
        "currency": base_currency(),
        "why": explain(metrics, score, now),
        "low_risk": round(LOW_RISK * 100),
        "high_risk": round(HIGH_RISK * 100),
    }


register_section(
    Section(
        key="predictions", title="Predictions", template="analytics/section.html", load=_section, order=50
    )
)


def _json(value: Any) -> str:
    """JSON for an inline script: "</" cannot close the script element."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


@router.get("/analytics/cohorts", response_class=HTMLResponse)
def cohorts_page(request: Request, db: DB, user: Reader) -> Response:
    """Retention and revenue by monthly acquisition cohort, as a heatmap and a table."""
    known = channels(db)
    channel = request.query_params.get("channel") or None
    if channel not in known:
        channel = None
    raw_months = request.query_params.get("months", "12")
    months = min(max(int(raw_months), 1), 36) if raw_months.isdigit() else 12
    rows = cohorts(db, months=months, channel=channel)
    width = max((len(c.retained) for c in rows), default=0)
    locale = locale_of(request)
    heat = {
        "data": [{
            "type": "heatmap", "colorscale": "Blues", "zmin": 0, "zmax": 100,
            "x": list(range(width)), "y": [c.month for c in rows],
            "z": [[round(c.percent(k), 1) if k < len(c.retained) else None for k in range(width)]
                  for c in rows],
            "hovertemplate": "%{y} +%{x}: %{z}%<extra></extra>",
        }],
        "layout": {
            "margin": {"l": 70, "r": 10, "t": 10, "b": 40}, "height": 60 + 28 * max(len(rows), 1),
            "xaxis": {"title": gettext(locale, "Months since first purchase"), "dtick": 1},
            "yaxis": {"autorange": "reversed", "type": "category"},
        },
    }  # fmt: skip
    ctx = {
        "rows": rows,
        "width": width,
        "channels": known,
        "channel": channel,
        "months": months,
        "heat": _json(heat),
        "currency": base_currency(),
    }
    return render(request, "analytics/cohorts.html", ctx)


def _day_param(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name) or ""
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


@router.get("/analytics", response_class=HTMLResponse)
def kpi_page(request: Request, db: DB, user: Reader) -> Response:
    """The KPI board over a chosen period (default: the last 90 days)."""
    tz = get_settings().timezone
    today = datetime.now(ZoneInfo(tz)).date()
    start, end = default_period(today)
    first, last = _day_param(request, "from"), _day_param(request, "to")
    error = None
    if first and last and first > last:
        error = "The start of the period must not be after its end."
    elif first or last:
        start = first or start
        end = (last + timedelta(days=1)) if last else end
    result = board(db, start=start, end=end, tz=tz)
    dist = result.clv
    hist = None
    if dist.get("count"):
        hist = _json({
            "data": [{"type": "bar", "x": dist["edges"][:-1], "y": dist["counts"],
                      "marker": {"color": "#3a6ea5"}}],
            "layout": {"margin": {"l": 50, "r": 10, "t": 10, "b": 40}, "height": 260, "bargap": 0.05,
                       "xaxis": {"title": gettext(locale_of(request), "Predicted 12-month value")}},
        })  # fmt: skip
    ctx = {
        "board": result,
        "kpis": KPIS,
        "start": start,
        "last": end - timedelta(days=1),
        "error": error,
        "hist": hist,
        "currency": base_currency(),
    }
    return render(request, "analytics/kpis.html", ctx, 422 if error else 200)
