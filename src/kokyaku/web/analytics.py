"""Analytics pages: the KPI board (/analytics), cohort retention (/analytics/cohorts), the models'
calibration/holdout check (/analytics/validation) and the customer page's "Predictions" section."""

import json
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kokyaku.analytics.cohorts import channels, cohorts, segment_members
from kokyaku.analytics.fitting import LABELS
from kokyaku.analytics.holdout import REPEAT_MODELS, UNITS, HoldoutCheck, holdout_check
from kokyaku.analytics.kpis import KPIS, board, default_period
from kokyaku.analytics.models import FitError
from kokyaku.analytics.scoring import HIGH_RISK, LOW_RISK
from kokyaku.analytics.tables import CustomerScore
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.commerce.metrics import base_currency
from kokyaku.commerce.models import CustomerMetrics, Order
from kokyaku.config import get_settings
from kokyaku.customers.models import Customer
from kokyaku.deps import DB, page_permission
from kokyaku.errors import NotFound, ValidationFailed
from kokyaku.i18n import gettext
from kokyaku.segments import service as segments
from kokyaku.web.customers import Section, register_section
from kokyaku.web.render import locale_of, render

router = APIRouter()
Reader = Annotated[User, Depends(page_permission(Perm.ANALYTICS_READ))]
BAND_LABELS = {"low": "Low", "medium": "Medium", "high": "High"}
SEGMENT_CHOICES = 200  # the newest segments offered in the cohort filter


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


def _segment_param(request: Request, db: Session) -> tuple[int | None, Any]:
    """The chosen segment's id and member query, or (None, None) for all customers or an unknown segment."""
    raw = request.query_params.get("segment_id") or ""
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        return None, None
    try:
        return int(raw), segment_members(db, int(raw), get_settings().timezone)
    except NotFound:
        return None, None


@router.get("/analytics/cohorts", response_class=HTMLResponse)
def cohorts_page(request: Request, db: DB, user: Reader) -> Response:
    """Retention and revenue by monthly acquisition cohort, as a heatmap and a table."""
    known = channels(db)
    channel = request.query_params.get("channel") or None
    if channel not in known:
        channel = None
    raw_months = request.query_params.get("months", "12")
    months = min(max(int(raw_months), 1), 36) if raw_months.isdigit() else 12
    segment_id, members = _segment_param(request, db)
    rows = cohorts(db, months=months, channel=channel, members=members)
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
            "xaxis": {"title": {"text": gettext(locale, "Months since first purchase")}, "dtick": 1},
            "yaxis": {"autorange": "reversed", "type": "category"},
        },
    }  # fmt: skip
    ctx = {
        "rows": rows,
        "width": width,
        "channels": known,
        "channel": channel,
        "months": months,
        "segments": segments.list_segments(db, limit=SEGMENT_CHOICES).items,
        "segment_id": segment_id,
        # a stale link or bookmark to a deleted segment: say so rather than silently count everyone
        "error": "That segment does not exist (any more): all customers are shown."
        if request.query_params.get("segment_id") and segment_id is None
        else None,
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
                       "xaxis": {"title": {"text": gettext(locale_of(request), "Predicted 12-month value")}}},
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


def _holdout_figure(check: HoldoutCheck, locale: str) -> dict[str, Any]:
    """Actual and predicted cumulative repeat purchases per period, with the cut-off as a dotted line."""
    x = [p.index for p in check.periods]
    dates = [p.start.isoformat() for p in check.periods]
    axis = gettext(locale, "Week") if check.unit == "week" else gettext(locale, "Day")
    return {
        "data": [
            {"type": "scatter", "mode": "lines", "name": gettext(locale, "Actual"), "x": x,
             "y": [p.actual for p in check.periods], "customdata": dates, "line": {"color": "#222"},
             "hovertemplate": "%{customdata}: %{y:,.0f}<extra></extra>"},
            {"type": "scatter", "mode": "lines", "name": gettext(locale, "Predicted ({model})",
                                                                  model=LABELS[check.model]),
             "x": x, "y": [round(p.predicted, 1) for p in check.periods], "customdata": dates,
             "line": {"color": "#3a6ea5", "dash": "dash"},
             "hovertemplate": "%{customdata}: %{y:,.1f}<extra></extra>"},
        ],
        "layout": {
            "margin": {"l": 60, "r": 10, "t": 30, "b": 50}, "height": 380,
            "legend": {"orientation": "h", "y": 1.12},
            "xaxis": {"title": {"text": axis}, "rangemode": "tozero"},
            "yaxis": {"title": {"text": gettext(locale, "Cumulative repeat purchases")},
                      "rangemode": "tozero"},
            "shapes": [{"type": "line", "x0": check.cutoff, "x1": check.cutoff, "yref": "paper", "y0": 0,
                        "y1": 1, "line": {"color": "#888", "dash": "dot"}}],
            "annotations": [{"x": check.cutoff, "yref": "paper", "y": 1, "xanchor": "left",
                             "showarrow": False,
                             "text": gettext(locale, "Cut-off {day}", day=check.until.isoformat())}],
        },
    }  # fmt: skip


def _suggested_cutoff(db: Session) -> date | None:
    """Halfway between the first and the last order: a cut-off that leaves a holdout as long as the fit."""
    first, last = db.execute(select(func.min(Order.ordered_at), func.max(Order.ordered_at))).one()
    if first is None or last is None:
        return None
    tz = ZoneInfo(get_settings().timezone)
    return (first + (last - first) / 2).astimezone(tz).date()


@router.get("/analytics/validation", response_class=HTMLResponse)
def validation_page(request: Request, db: DB, user: Reader) -> Response:
    """The calibration/holdout check: fit up to a cut-off, compare the predicted repeat purchases after it
    with the actual ones, as a chart and one number."""
    q = request.query_params
    model = q.get("model") if q.get("model") in REPEAT_MODELS else "bgnbd"
    unit = q.get("unit") if q.get("unit") in UNITS else "week"
    until, end = _day_param(request, "until"), _day_param(request, "end")
    errors: list[tuple[str, dict[str, Any]]] = []
    check, figure, status = None, None, 200
    if q.get("until") and until is None:
        message = "The cut-off date must be a date (YYYY-MM-DD)."
        errors.append((message, {}))
    if q.get("end") and end is None:
        message = "The end date must be a date (YYYY-MM-DD)."
        errors.append((message, {}))
    if errors:
        status = 422
    elif until is not None:
        try:
            check = holdout_check(db, model=str(model), until=until, unit=str(unit), end=end)
        except ValidationFailed as exc:
            errors, status = [(m, p) for _f, m, p in exc.problems], exc.status
        except FitError as exc:
            message = "Try another cut-off date, the other model, or weeks instead of days."
            errors, status = [(exc.message, exc.params), (message, {})], exc.status
        else:
            figure = _json(_holdout_figure(check, locale_of(request)))
    ctx = {
        "models": [(m, LABELS[m]) for m in REPEAT_MODELS],
        "model": model,
        "unit": unit,
        "until": until or (None if q.get("until") else _suggested_cutoff(db)),
        "end": end,
        "errors": errors,
        "check": check,
        "figure": figure,
        "label": LABELS.get(str(model), ""),
    }
    return render(request, "analytics/validation.html", ctx, status)
