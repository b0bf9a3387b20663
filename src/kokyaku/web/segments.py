"""Segment pages: the list with sizes and trends, the builder (htmx: edit conditions and groups in place, the
count follows as you type), the segment page (members, breakdown chart, size history), the RFM page (R x F
grid and the segment mapping), the lifecycle page (stages and monthly flows), and the customer page section
"Segments & lifecycle"."""

import json
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.config import get_settings
from kokyaku.customers.models import Customer, CustomFieldDef
from kokyaku.deps import DB, actor, check_csrf, page_permission
from kokyaku.errors import KokyakuError, ValidationFailed
from kokyaku.i18n import gettext
from kokyaku.jobs.service import enqueue
from kokyaku.segments import form as F
from kokyaku.segments import rules as R
from kokyaku.segments import service
from kokyaku.segments.api import rfm_summary
from kokyaku.segments.labels import choice_label, value_label
from kokyaku.segments.lifecycle import STAGE_INFO, STAGES, LifecycleRules
from kokyaku.segments.models import DYNAMIC, STATIC, LifecycleChange, Segment
from kokyaku.segments.recompute import latest_run
from kokyaku.segments.rfm import RFM_SEGMENTS, SEGMENT_GRID, SEGMENT_INFO
from kokyaku.segments.schemas import SegmentIn, SegmentUpdate
from kokyaku.segments.tasks import RECOMPUTE
from kokyaku.web.customers import Section, register_section
from kokyaku.web.forms import field_errors
from kokyaku.web.render import locale_of, render

router = APIRouter(include_in_schema=False)
Reader = Annotated[User, Depends(page_permission(Perm.SEGMENTS_READ))]
Writer = Annotated[User, Depends(page_permission(Perm.SEGMENTS_WRITE))]
Csrf = Depends(check_csrf)
PAGE_SIZE = 50
CATEGORIES = (
    ("demographic", "Demographic"),
    ("psychographic", "Psychographic"),
    ("behavioural", "Behavioural"),
)
BREAKDOWN_LABELS = {
    "prefecture": "Prefecture", "lifecycle_stage": "Lifecycle stage", "rfm_segment": "RFM segment",
    "gender": "Gender", "kind": "Customer type",
}  # fmt: skip
# One colour per named RFM segment and lifecycle stage, shared by the grid and the charts.
SEGMENT_COLOURS = {
    "champions": "#0b6e4f", "loyal": "#2e9e6f", "potential_loyalists": "#7cc4a0", "new_customers": "#4e8fd6",
    "promising": "#9cc3ec", "need_attention": "#f2c94c", "about_to_sleep": "#f2a93b", "at_risk": "#e8743b",
    "cant_lose": "#c2410c", "hibernating": "#a3a3a3", "lost": "#6b7280",
}  # fmt: skip
STAGE_COLOURS = {
    "lead": "#c7ccd4", "new": "#4e8fd6", "repeat": "#2e9e6f", "loyal": "#0b6e4f", "at_risk": "#e8743b",
    "churned": "#6b7280", "won_back": "#7a5af8",
}  # fmt: skip


def _tz(request: Request) -> str:
    return str(request.app.state.settings.timezone)


def _chart(figure: dict[str, Any]) -> str:
    """A Plotly figure as JSON that is safe inside a <script> element."""
    text = json.dumps(figure, ensure_ascii=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ---------------------------------------------------------------- the builder


def _custom_labels(session: Session, locale: str) -> dict[str, str]:
    rows = session.execute(select(CustomFieldDef.key, CustomFieldDef.label_ja, CustomFieldDef.label_en)).all()
    return {f"custom.{k}": (ja if locale == "ja" else en) for k, ja, en in rows}


def _field_options(ctx: R.Context, locale: str, custom_labels: dict[str, str]) -> list[tuple[str, list[Any]]]:
    groups: list[tuple[str, list[Any]]] = []
    customs = [R.custom_field_spec(k, kind, ch) for k, (kind, ch) in ctx.custom.items()]
    for key, label in CATEGORIES:
        specs = [s for s in [*R.FIELDS.values(), *customs] if s.category == key]
        options = [(s.key, custom_labels.get(s.key) or gettext(locale, s.label)) for s in specs]
        groups.append((gettext(locale, label), options))
    return groups


def _decorate(node: F.Node, ctx: R.Context, locale: str) -> None:
    """Add what the template needs to draw each condition: operators, the value widget, choices."""
    if node["type"] == "group":
        for child in node["children"]:
            _decorate(child, ctx, locale)
        return
    spec = R.resolve_field(node["field"], ctx)
    ui: dict[str, Any] = {"operators": [], "widget": "none", "choices": [], "days": False, "step": "any"}
    node["ui"] = ui
    if spec is None:
        return
    op = node["operator"]
    ui["operators"] = [(o, gettext(locale, R.OPERATORS[o])) for o in spec.allowed_operators()]
    ui["days"] = spec.days
    ui["step"] = "1" if spec.integer else "any"
    ui["unit"] = spec.unit
    if spec.choices is not None:
        ui["choices"] = [(v, choice_label(spec.key, v, locale)) for v in spec.choices()]
    base = "date" if spec.kind == R.DATE else "number" if spec.kind == R.NUMBER else "text"
    value = node.get("value")
    if op in R.NO_VALUE or op not in spec.allowed_operators():
        ui["widget"] = "none"
    elif op in R.DAY_COUNT_OPS:
        ui["widget"], ui["step"] = "number", "1"
    elif op in R.RANGE_OPS:
        ui["widget"] = f"range-{base}"
        pair = value if isinstance(value, list) and len(value) == 2 else [None, None]
        ui["low"], ui["high"] = ("" if v is None else v for v in pair)
    elif op in R.LIST_OPS:
        ui["widget"] = "multi" if spec.choices is not None else "list"
        items = value if isinstance(value, list) else ([] if value in (None, "") else [value])
        ui["selected"] = [str(v) for v in items]
        ui["text"] = ", ".join(str(v) for v in items)
    else:
        ui["widget"] = "select" if spec.choices is not None else base
        ui["text"] = "" if value is None or isinstance(value, list) else str(value)


def _builder_context(
    request: Request, session: Session, tree: F.Node, problems: list[tuple[str, str, dict[str, Any]]],
    values: dict[str, Any], segment: Segment | None, *, show_live_problems: bool = False,
) -> dict[str, Any]:  # fmt: skip
    locale = locale_of(request)
    ctx = service.context(session, _tz(request))
    _decorate(tree, ctx, locale)
    live = _live(session, tree, ctx, locale)
    if show_live_problems:
        problems = [*problems, *live["problems"]]
    errors = {k: gettext(locale, m, **p) for k, (m, p) in F.problem_slots(problems).items()}
    return {
        "tree": tree,
        "errors": errors,
        "slot": F.slot,
        "field_groups": _field_options(ctx, locale, _custom_labels(session, locale)),
        "values": values,
        "segment": segment,
        "max_depth": R.MAX_DEPTH,
        "live": live,
        "oob": show_live_problems,
    }


def _live(session: Session, tree: F.Node, ctx: R.Context, locale: str) -> dict[str, Any]:
    """The live count (or the problems that prevent it) of the tree being edited."""
    raw = F.rules_from_tree(tree)
    try:
        compiled = R.compile_rules(raw, ctx)
        count = service.count_compiled(session, compiled)
        words = R.describe(raw, ctx, lambda m: gettext(locale, m), lambda s, v: value_label(s, v, locale))
        return {"count": count, "problems": [], "description": words}
    except ValidationFailed as exc:
        return {"count": None, "problems": exc.problems, "description": ""}


def _page_values(form: Any) -> dict[str, Any]:
    return {k: (form.get(k) or "").strip() for k in ("name", "description", "kind")}


@router.get("/segments", response_class=HTMLResponse)
def segment_list(request: Request, db: DB, _user: Reader) -> Response:
    page = service.list_segments(db, cursor=request.query_params.get("cursor"), limit=PAGE_SIZE)
    history = service.size_history(db, [s.id for s in page.items], days=90)
    ctx = {
        "page": page,
        "sparks": {sid: _sparkline(points) for sid, points in history.items()},
        "more_query": urlencode({"cursor": page.next_cursor or ""}),
    }
    partial = request.headers.get("hx-request") == "true" and request.query_params.get("cursor")
    return render(request, "segments/_list_rows.html" if partial else "segments/list.html", ctx)


def _sparkline(points: list[tuple[date, int]], width: int = 120, height: int = 28) -> dict[str, Any] | None:
    """An SVG polyline of a size history (drawn server-side: dozens on one page cost no script)."""
    if len(points) < 2:
        return None
    sizes = [n for _, n in points]
    low, high = min(sizes), max(sizes)
    span = (high - low) or 1
    first, last = points[0][0], points[-1][0]
    days = (last - first).days or 1
    coords = [
        f"{(d - first).days / days * (width - 2) + 1:.1f},{height - 1 - (n - low) / span * (height - 2):.1f}"
        for d, n in points
    ]
    return {"points": " ".join(coords), "width": width, "height": height, "change": sizes[-1] - sizes[0]}


@router.get("/segments/new", response_class=HTMLResponse)
def new_segment(request: Request, db: DB, _user: Writer) -> Response:
    tree = F.empty_tree()
    field, value = request.query_params.get("field"), request.query_params.get("value")
    if field in ("rfm_segment", "lifecycle_stage") and value:
        tree = F.tree_from_rules(
            {"op": "and", "conditions": [{"field": field, "operator": "in", "value": [value]}]}
        )
    ctx = _builder_context(request, db, tree, [], {"kind": DYNAMIC}, None)
    return render(request, "segments/builder.html", ctx)


@router.post("/segments/builder", response_class=HTMLResponse, dependencies=[Csrf])
async def builder_action(request: Request, db: DB, _user: Writer) -> Response:
    """An edit of the tree (add/remove a condition or group, change a field or operator): the new tree."""
    form = await request.form()
    ctx = service.context(db, _tz(request))
    tree = F.tree_from_form(form, ctx)
    action = str(form.get("action") or "")
    tree = F.apply(tree, action, ctx)
    out = _builder_context(request, db, tree, [], {}, None, show_live_problems=True)
    return render(request, "segments/_tree.html", out)


@router.post("/segments/builder/count", response_class=HTMLResponse, dependencies=[Csrf])
async def builder_count(request: Request, db: DB, _user: Writer) -> Response:
    """The live count while editing, with each condition's problem swapped in beside it."""
    form = await request.form()
    locale = locale_of(request)
    ctx = service.context(db, _tz(request))
    tree = F.tree_from_form(form, ctx)
    live = _live(db, tree, ctx, locale)
    errors = {k: gettext(locale, m, **p) for k, (m, p) in F.problem_slots(live["problems"]).items()}
    return render(
        request, "segments/_count.html", {"live": live, "errors": errors, "slots": F.all_slots(tree)}
    )


async def _save(request: Request, db: Session, user: User, segment: Segment | None) -> Response:
    form = await request.form()
    ctx = service.context(db, _tz(request))
    tree = F.tree_from_form(form, ctx)
    action = str(form.get("action") or "save")
    values = _page_values(form)
    if action != "save":  # the builder without JavaScript: every button posts the whole form
        tree = F.apply(tree, action, ctx)
        return render(
            request, "segments/builder.html", _builder_context(request, db, tree, [], values, segment)
        )
    rules = F.rules_from_tree(tree)
    problems: list[tuple[str, str, dict[str, Any]]] = []
    try:
        if segment is None:
            data = SegmentIn(
                name=values["name"] or "", description=values["description"] or None, rules=rules,
                kind="static" if values["kind"] == STATIC else "dynamic",
            )  # fmt: skip
            segment = service.create_segment(db, actor=actor(user), data=data, tz=_tz(request))
        else:
            update = SegmentUpdate(name=values["name"] or None, description=values["description"] or None,
                                   rules=rules if segment.kind == DYNAMIC else None)  # fmt: skip
            service.update_segment(db, actor=actor(user), segment_id=segment.id, data=update, tz=_tz(request))
        return RedirectResponse(f"/segments/{segment.id}", status_code=303)
    except ValidationFailed as exc:
        db.rollback()
        problems = exc.problems
    except KokyakuError as exc:
        db.rollback()
        problems = [(exc.field or "rules", exc.message, exc.params)]
    except ValueError as exc:  # pydantic: the name
        db.rollback()
        problems = [("name", _first_message(exc), {})]
    ctx_out = _builder_context(request, db, tree, problems, values, segment)
    ctx_out["form_errors"] = field_errors(
        [p for p in problems if p[0] in ("name", "description")], locale_of(request)
    )
    return render(request, "segments/builder.html", ctx_out, 422)


def _first_message(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        for err in errors():
            if err.get("type") in ("string_too_short", "missing") or "required" in str(err.get("msg", "")):
                return "This field is required."
            return (
                "At most {max_length} characters." if err.get("type") == "string_too_long" else "Not valid."
            )
    return "Not valid."


@router.post("/segments/new", response_class=HTMLResponse, dependencies=[Csrf])
async def create(request: Request, db: DB, user: Writer) -> Response:
    return await _save(request, db, user, None)


@router.get("/segments/{segment_id}/edit", response_class=HTMLResponse)
def edit_form(request: Request, db: DB, _user: Writer, segment_id: int) -> Response:
    segment = service.get_segment(db, segment_id)
    values = {"name": segment.name, "description": segment.description or "", "kind": segment.kind}
    tree = F.tree_from_rules(segment.rules)
    return render(request, "segments/builder.html", _builder_context(request, db, tree, [], values, segment))


@router.post("/segments/{segment_id}/edit", response_class=HTMLResponse, dependencies=[Csrf])
async def edit(request: Request, db: DB, user: Writer, segment_id: int) -> Response:
    return await _save(request, db, user, service.get_segment(db, segment_id))


# ---------------------------------------------------------------- one segment


@router.get("/segments/{segment_id}", response_class=HTMLResponse)
def detail(request: Request, db: DB, _user: Reader, segment_id: int) -> Response:
    segment = service.get_segment(db, segment_id)
    locale, tz = locale_of(request), _tz(request)
    try:
        page = service.members(db, segment, tz, cursor=request.query_params.get("cursor"), limit=PAGE_SIZE)
        words = R.describe(segment.rules, service.context(db, tz), lambda m: gettext(locale, m),
                           lambda s, v: value_label(s, v, locale))  # fmt: skip
        invalid = None
    except ValidationFailed as exc:  # a custom field the rules use has been deleted
        page, words = None, ""
        invalid = [gettext(locale, m, **p) + f" ({f})" for f, m, p in exc.problems]
    ctx = {
        "segment": segment,
        "page": page,
        "description_words": words,
        "invalid": invalid,
        "more_query": urlencode({"cursor": page.next_cursor or ""}) if page else "",
        "history_chart": _chart(_history_figure(db, segment, locale)),
        "breakdowns": [(k, gettext(locale, v)) for k, v in BREAKDOWN_LABELS.items()],
        "source": db.get(Segment, segment.source_id) if segment.source_id else None,
    }
    if request.headers.get("hx-request") == "true" and request.query_params.get("cursor"):
        return render(request, "segments/_members.html", ctx)
    return render(request, "segments/detail.html", ctx)


def _history_figure(session: Session, segment: Segment, locale: str) -> dict[str, Any]:
    points = service.size_history(session, [segment.id], days=365)[segment.id]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": [d.isoformat() for d, _ in points],
                "y": [n for _, n in points],
                "line": {"color": "#0b6e4f"},
                "name": gettext(locale, "Members"),
            }
        ],  # fmt: skip
        "layout": _layout(gettext(locale, "Size over time"), height=240, xaxis=_days_axis(points),
                          yaxis={"rangemode": "tozero", "tickformat": ",d"}),
    }  # fmt: skip


def _days_axis(points: list[tuple[date, int]]) -> dict[str, Any]:
    """A date axis in whole days (a single point would otherwise be drawn on a millisecond scale)."""
    axis: dict[str, Any] = {"type": "date", "tickformat": "%Y-%m-%d"}
    if points:
        first, last = points[0][0], points[-1][0]
        pad = timedelta(days=3) if first == last else timedelta(days=0)
        axis["range"] = [(first - pad).isoformat(), (last + pad).isoformat()]
    return axis


def _layout(title: str, height: int = 320, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}}, "height": height,
        "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": "system-ui, 'Hiragino Sans', 'Noto Sans JP', 'IPAGothic', sans-serif"}, **extra,
    }  # fmt: skip


@router.get("/segments/{segment_id}/breakdown", response_class=HTMLResponse)
def breakdown(
    request: Request,
    db: DB,
    _user: Reader,
    segment_id: int,
    by: Annotated[str, Query(max_length=30)] = "prefecture",
) -> Response:
    segment = service.get_segment(db, segment_id)
    locale = locale_of(request)
    by = by if by in service.BREAKDOWNS else "prefecture"
    rows = service.breakdown(db, segment, _tz(request), by)
    key = {"lifecycle_stage": "lifecycle_stage", "rfm_segment": "rfm_segment"}.get(by, by)
    labels = [choice_label(key, k, locale) if k is not None else gettext(locale, "Unknown") for k, _ in rows]
    colours = [(SEGMENT_COLOURS if by == "rfm_segment" else STAGE_COLOURS).get(k or "", "#4e8fd6")
               if by in ("rfm_segment", "lifecycle_stage") else "#4e8fd6" for k, _ in rows]  # fmt: skip
    figure = {
        "data": [{"type": "bar", "x": labels, "y": [n for _, n in rows], "marker": {"color": colours}}],
        "layout": _layout(
            gettext(locale, "Members by {what}", what=gettext(locale, BREAKDOWN_LABELS[by])),
            yaxis={"rangemode": "tozero", "tickformat": ",d"},
        ),
    }
    return render(
        request,
        "segments/_breakdown.html",
        {"chart": _chart(figure), "rows": list(zip(labels, rows, strict=True)), "by": by},
    )


@router.post("/segments/{segment_id}/freeze", dependencies=[Csrf])
def freeze(request: Request, db: DB, user: Writer, segment_id: int) -> Response:
    snapshot = service.freeze_segment(db, actor=actor(user), segment_id=segment_id, tz=_tz(request))
    return RedirectResponse(f"/segments/{snapshot.id}", status_code=303)


@router.post("/segments/{segment_id}/delete", dependencies=[Csrf])
def delete(db: DB, user: Writer, segment_id: int) -> Response:
    service.delete_segment(db, actor=actor(user), segment_id=segment_id)
    return RedirectResponse("/segments", status_code=303)


# ---------------------------------------------------------------- RFM and lifecycle


@router.get("/rfm", response_class=HTMLResponse)
def rfm_page(request: Request, db: DB, _user: Reader) -> Response:
    summary = rfm_summary(db)
    top = max((c.customers for c in summary.grid), default=0) or 1
    rows = [[c for c in summary.grid if c.r == r] for r in range(5, 0, -1)]
    mapping: dict[str, list[tuple[int, int]]] = {key: [] for key in RFM_SEGMENTS}  # segment -> its cells
    for r in range(1, 6):
        for f in range(1, 6):
            mapping[SEGMENT_GRID[r - 1][f - 1]].append((r, f))
    ctx = {
        "summary": summary,
        "rows": rows,
        "top": top,
        "colours": SEGMENT_COLOURS,
        "info": SEGMENT_INFO,
        "mapping": mapping,
        "bounds": summary.bounds,
        "queued": request.query_params.get("queued"),
    }
    return render(request, "segments/rfm.html", ctx)


@router.post("/rfm/recompute", dependencies=[Csrf])
def rfm_recompute(request: Request, db: DB, user: Writer) -> Response:
    job = enqueue(db, kind=RECOMPUTE, payload={"trigger": "manual"}, dedupe_key=RECOMPUTE, actor=actor(user))
    back = request.headers.get("referer") or "/rfm"
    target = "/lifecycle" if back.endswith("/lifecycle") else "/rfm"
    return RedirectResponse(f"{target}?queued={job.id}", status_code=303)


def monthly_flows(
    session: Session, tz: str, months: int = 12
) -> tuple[list[str], dict[tuple[str, str], list[int]]]:
    """(month labels, {(from, to): moves per month}) over the last `months` local calendar months; one query
    over the changed_at index, bucketed by CASE on bounds computed here (portable, no date functions)."""
    zone = ZoneInfo(tz)
    today = datetime.now(UTC).astimezone(zone).date()
    starts = []
    year, month = today.year, today.month
    for _ in range(months):
        starts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    starts.reverse()
    bounds = [datetime(d.year, d.month, 1, tzinfo=zone).astimezone(UTC) for d in starts]
    col = LifecycleChange.changed_at
    bucket = case(*[(col < b, i - 1) for i, b in enumerate(bounds[1:], start=1)], else_=months - 1)
    rows = session.execute(
        select(bucket.label("m"), LifecycleChange.from_stage, LifecycleChange.stage, func.count())
        .where(col >= bounds[0])
        .group_by(bucket, LifecycleChange.from_stage, LifecycleChange.stage)
    ).all()
    flows: dict[tuple[str, str], list[int]] = {}
    for m, src, dst, n in rows:
        flows.setdefault((src or "lead", dst), [0] * months)[int(m)] += int(n)
    return [d.strftime("%Y-%m") for d in starts], flows


@router.get("/lifecycle", response_class=HTMLResponse)
def lifecycle_page(request: Request, db: DB, _user: Reader) -> Response:
    locale, tz = locale_of(request), _tz(request)
    run = latest_run(db)
    stages = (run.summary or {}).get("stages", {}) if run else {}
    months, flows = monthly_flows(db, tz)
    label = {s: gettext(locale, STAGE_INFO[s][0]) for s in STAGES}
    into = {s: [0] * len(months) for s in STAGES}
    for (_src, dst), counts in flows.items():
        into[dst] = [a + b for a, b in zip(into[dst], counts, strict=True)]
    bars = {
        "data": [{"type": "bar", "name": label[s], "x": months, "y": into[s],
                  "marker": {"color": STAGE_COLOURS[s]}} for s in STAGES if any(into[s])],
        "layout": _layout(gettext(locale, "Moves into each stage per month"), barmode="stack", height=340,
                          yaxis={"tickformat": ",d"}),
    }  # fmt: skip
    nodes_from = [f"{label[s]} " for s in STAGES]
    pairs = [(src, dst, sum(c)) for (src, dst), c in flows.items() if sum(c)]
    sankey = {
        "data": [{
            "type": "sankey",
            "node": {"label": nodes_from + [label[s] for s in STAGES],
                     "color": [STAGE_COLOURS[s] for s in STAGES] * 2, "pad": 12},
            "link": {"source": [STAGES.index(a) for a, _, _ in pairs],
                     "target": [len(STAGES) + STAGES.index(b) for _, b, _ in pairs],
                     "value": [n for _, _, n in pairs]},
        }],
        "layout": _layout(gettext(locale, "From which stage to which, last 12 months"), height=380),
    }  # fmt: skip
    rules = LifecycleRules.from_settings(request.app.state.settings)
    ctx = {
        "run": run,
        "stages": [(s, label[s], gettext(locale, STAGE_INFO[s][1]), stages.get(s, 0)) for s in STAGES],
        "colours": STAGE_COLOURS,
        "bars": _chart(bars),
        "sankey": _chart(sankey) if pairs else None,
        "rules": rules,
        "queued": request.query_params.get("queued"),
        "table": [(m, [into[s][i] for s in STAGES]) for i, m in enumerate(months)],
        "stage_labels": [label[s] for s in STAGES],
    }
    return render(request, "segments/lifecycle.html", ctx)


# ---------------------------------------------------------------- the customer page


def _section(session: Session, customer: Customer) -> dict[str, Any]:
    journey = service.journey(session, customer.id, limit=20)
    tz = get_settings().timezone
    return {
        "journey": journey,
        "stage_info": STAGE_INFO,
        "segment_info": SEGMENT_INFO,
        "colours": STAGE_COLOURS,
        "segments": service.segments_of_customer(session, customer.id, tz),
    }


register_section(
    Section(
        key="segments",
        title="Segments & lifecycle",
        template="segments/section.html",
        load=_section,
        order=45,
    )
)
