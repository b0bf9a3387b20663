"""Plotly figures of the results and review pages, built in Python as plain figure dicts (plotly.js's own
{"data": [...], "layout": {...}} schema) and embedded as JSON; the page draws them with the plotly.js served
from /static/plotly (no CDN).

Plain dicts rather than plotly.graph_objects: building and validating the graph objects took about 40% of
the results page's CPU, and their JSON carried plotly.py's whole default template (tens of kB per chart)."""

import json
from collections.abc import Callable
from typing import Any

from kokyaku.feedback.models import SCALES
from kokyaku.feedback.results import Group, TopicTrend
from kokyaku.feedback.reviews import SourceTrend
from kokyaku.feedback.text import TOPICS
from kokyaku.i18n import gettext

RED, AMBER, GREEN, BLUE, GREY = "#d92d20", "#f2a93b", "#12805c", "#4e8fd6", "#98a2b3"
SENTIMENT_COLOURS = {"positive": GREEN, "neutral": GREY, "negative": RED}
FONT = "system-ui, 'Hiragino Sans', 'Noto Sans JP', 'IPAGothic', sans-serif"
SOURCE_COLOURS = ["#4e8fd6", "#e8743b", "#12805c", "#7a5af8", "#d92d20", "#f2a93b", "#0e9384", "#667085"]


Figure = dict[str, Any]


def _trace(kind: str, **props: Any) -> dict[str, Any]:
    return {"type": kind, **props}


def _figure(*, data: list[Any], layout: dict[str, Any]) -> Figure:
    return {"data": data, "layout": layout}


def to_json(figure: Figure) -> str:
    """A figure as JSON that is safe inside a <script> element."""
    text = json.dumps(figure, ensure_ascii=False, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _layout(title: str, height: int = 280, **extra: Any) -> dict[str, Any]:
    """The shared look; `title` names the chart for exports (the page's own heading shows it)."""
    base: dict[str, Any] = {
        "meta": {"title": title},
        "height": height,
        "margin": {"l": 50, "r": 20, "t": 16, "b": 40},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT},
        "legend": {"orientation": "h", "y": -0.2},
    }
    return {**base, **extra}


def topic_label(key: str, locale: str) -> str:
    return TOPICS.get(key, {}).get(locale, key)


def scale_colour(kind: str, value: int) -> str:
    if kind == "nps":
        return GREEN if value >= 9 else AMBER if value >= 7 else RED
    low, high = SCALES[kind]
    good = value >= (4 if kind == "csat" else 6)
    bad = value <= (2 if kind == "csat" else 3)
    return GREEN if good else RED if bad else AMBER


def distribution(kind: str, counts: dict[int, int], locale: str) -> Figure:
    """Answers per scale value (0-10, 1-5 or 1-7), coloured by what the value means."""
    low, high = SCALES[kind]
    values = list(range(low, high + 1))
    title = {"nps": "NPS answers", "csat": "CSAT answers", "ces": "CES answers"}[kind]
    bar = _trace(
        "bar",
        x=[str(v) for v in values],
        y=[counts.get(v, 0) for v in values],
        marker={"color": [scale_colour(kind, v) for v in values]},
        name=gettext(locale, "Answers"),
        hovertemplate="%{x}: %{y}<extra></extra>",
    )
    return _figure(data=[bar], layout=_layout(gettext(locale, title), height=240, xaxis={"type": "category"}))


def trend(groups: list[Group], locale: str) -> Figure:
    """NPS and CSAT % per period (lines) over the number of responses (bars)."""
    x = [g.key for g in groups]
    data: list[Any] = [
        _trace(
            "bar",
            x=x,
            y=[g.scores.responses for g in groups],
            name=gettext(locale, "Responses"),
            yaxis="y2",
            marker={"color": "#d0d5dd"},
            hovertemplate="%{x}: %{y}<extra></extra>",
        ),
    ]
    if any(g.scores.nps_n for g in groups):
        data.append(
            _trace(
                "scatter",
                x=x,
                y=[g.scores.nps for g in groups],
                name="NPS",
                mode="lines+markers",
                line={"color": "#0b6e4f", "width": 3},
            )
        )
    if any(g.scores.csat_n for g in groups):
        data.append(
            _trace(
                "scatter",
                x=x,
                y=[g.scores.csat for g in groups],
                name="CSAT %",
                mode="lines+markers",
                line={"color": BLUE, "width": 2},
            )
        )
    layout = _layout(
        gettext(locale, "Trend"),
        height=300,
        xaxis={"type": "category"},
        yaxis={"title": {"text": "NPS / CSAT %"}, "range": [-100, 100], "zeroline": True},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "rangemode": "tozero",
            "title": {"text": gettext(locale, "Responses")},
        },
    )
    return _figure(data=data, layout=layout)


def breakdown(groups: list[Group], label: Callable[[str], str], title: str, locale: str) -> Figure:
    """NPS (or, without NPS answers, CSAT %) per group, with the number of responses in the hover."""
    use_nps = any(g.scores.nps_n for g in groups)
    values = [(g.scores.nps if use_nps else g.scores.csat) for g in groups]
    bar = _trace(
        "bar",
        y=[label(g.key) for g in groups],
        x=values,
        orientation="h",
        marker={"color": [GREEN if (v or 0) >= (0 if use_nps else 80) else RED for v in values]},
        customdata=[g.scores.responses for g in groups],
        hovertemplate="%{y}: %{x} (n=%{customdata})<extra></extra>",
        name="NPS" if use_nps else "CSAT %",
    )
    layout = _layout(
        title,
        height=max(200, 60 + 28 * len(groups)),
        yaxis={"autorange": "reversed"},
        xaxis={"title": {"text": "NPS" if use_nps else "CSAT %"}},
        margin={"l": 120, "r": 20, "t": 16, "b": 40},
    )
    return _figure(data=[bar], layout=layout)


def choices(labels: list[str], counts: list[int], title: str) -> Figure:
    bar = _trace(
        "bar",
        y=labels,
        x=counts,
        orientation="h",
        marker={"color": BLUE},
        hovertemplate="%{y}: %{x}<extra></extra>",
    )
    layout = _layout(
        title,
        height=max(180, 60 + 28 * len(labels)),
        yaxis={"autorange": "reversed"},
        margin={"l": 160, "r": 20, "t": 16, "b": 30},
    )
    return _figure(data=[bar], layout=layout)


def topics_by_sentiment(t: TopicTrend, locale: str) -> Figure:
    """Mentions of each topic, stacked by sentiment."""
    names = [topic_label(k, locale) for k in t.topics]
    totals = [t.totals(k) for k in t.topics]
    data = [
        _trace(
            "bar",
            y=names,
            x=[tot[i] for tot in totals],
            name=gettext(locale, label),
            orientation="h",
            marker={"color": SENTIMENT_COLOURS[label]},
        )
        for i, label in enumerate(("positive", "neutral", "negative"))
    ]
    layout = _layout(
        gettext(locale, "Topics by sentiment"),
        height=max(220, 80 + 28 * len(names)),
        barmode="stack",
        yaxis={"autorange": "reversed"},
        margin={"l": 120, "r": 20, "t": 16, "b": 40},
    )
    return _figure(data=data, layout=layout)


def topics_over_time(t: TopicTrend, locale: str) -> Figure:
    """Net sentiment ((positive - negative) / mentions) of each topic per period; hover shows the counts."""
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for k in t.topics:
        row_z: list[float | None] = []
        row_t: list[str] = []
        for p in t.periods:
            pos, neu, neg = t.cells.get(k, {}).get(p, (0, 0, 0))
            n = pos + neu + neg
            row_z.append(round((pos - neg) / n, 2) if n else None)
            row_t.append(f"+{pos} / ={neu} / -{neg}" if n else "")
        z.append(row_z)
        text.append(row_t)
    heat = _trace(
        "heatmap",
        z=z,
        x=t.periods,
        y=[topic_label(k, locale) for k in t.topics],
        text=text,
        zmin=-1,
        zmax=1,
        zmid=0,
        colorscale=[[0, RED], [0.5, "#f2f4f7"], [1, GREEN]],
        hoverongaps=False,
        hovertemplate="%{y} %{x}: %{text}<extra></extra>",
        colorbar={"title": {"text": gettext(locale, "Net sentiment")}, "thickness": 12},
    )
    layout = _layout(
        gettext(locale, "Topics by sentiment over time"),
        height=max(220, 80 + 30 * len(t.topics)),
        xaxis={"type": "category"},
        margin={"l": 120, "r": 20, "t": 16, "b": 40},
    )
    return _figure(data=[heat], layout=layout)


def rating_trend(trends: list[SourceTrend], label: Callable[[str], str], locale: str) -> Figure:
    """Monthly average rating per source (lines) and the number of reviews (bars)."""
    data: list[Any] = []
    for i, t in enumerate(trends):
        colour = SOURCE_COLOURS[i % len(SOURCE_COLOURS)]
        data.append(
            _trace(
                "scatter",
                x=t.periods,
                y=t.average,
                name=label(t.source),
                mode="lines+markers",
                line={"color": colour, "width": 2},
                legendgroup=t.source,
            )
        )
        data.append(
            _trace(
                "bar",
                x=t.periods,
                y=t.counts,
                name=label(t.source),
                yaxis="y2",
                showlegend=False,
                marker={"color": colour, "opacity": 0.25},
                legendgroup=t.source,
                hovertemplate="%{x}: %{y}<extra></extra>",
            )
        )
    layout = _layout(
        gettext(locale, "Average rating by month"),
        height=320,
        xaxis={"type": "category"},
        barmode="group",
        yaxis={"range": [0.8, 5.2], "title": {"text": gettext(locale, "Rating")}},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "rangemode": "tozero",
            "title": {"text": gettext(locale, "Reviews")},
        },
    )
    return _figure(data=data, layout=layout)
