"""Rendering pages: templates with the user's language, escaped output and localized error messages."""

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from kokyaku.auth.permissions import Perm, can
from kokyaku.deps import csrf_token
from kokyaku.i18n import gettext, negotiate
from kokyaku.kit.money import format_money
from kokyaku.kit.normalize import format_phone_national
from kokyaku.kit.prefectures import prefecture_label
from kokyaku.kit.time import to_local

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.autoescape = True


def locale_of(request: Request) -> str:
    user = getattr(request.state, "user", None)
    chosen = request.session.get("locale") or (user.locale if user else None)
    return negotiate(
        chosen=chosen,
        accept_language=request.headers.get("accept-language"),
        default=request.app.state.settings.default_locale,
    )


def _formatters(locale: str, tz: str) -> dict[str, Any]:
    def fmt_dt(value: datetime | None) -> str:
        local = to_local(value, tz)
        return local.strftime("%Y-%m-%d %H:%M") if local else ""

    def fmt_date(value: date | str | None) -> str:
        if not value:
            return ""
        if isinstance(value, str):
            return value
        return value.strftime("%Y年%-m月%-d日") if locale == "ja" else value.strftime("%b %-d, %Y")

    return {
        "fmt_dt": fmt_dt,
        "fmt_date": fmt_date,
        "fmt_money": lambda amount, currency="JPY": format_money(amount, currency, locale),
        "fmt_phone": lambda v: format_phone_national(v) if v else "",
        "pref": lambda v: prefecture_label(v, locale),
    }


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    locale = locale_of(request)
    user = getattr(request.state, "user", None)

    def _(message: str, **params: Any) -> str:
        return gettext(locale, message, **params)

    ctx = {
        "request": request,
        "_": _,
        "locale": locale,
        "user": user,
        "can": (lambda perm: user is not None and can(user.role, Perm(perm))),
        "csrf": csrf_token(request),
        **_formatters(locale, user.timezone if user else request.app.state.settings.timezone),
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, ctx, status_code=status)


def render_error(request: Request, status: int, message: str, params: dict[str, Any]) -> HTMLResponse:
    return render(request, "error.html", {"status": status, "message": message, "params": params}, status)


# pydantic error types -> our gettext msgids, so that pages can show them in the user's language
_PYDANTIC_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field.",
    "string_too_long": "At most {max_length} characters.",
    "string_too_short": "This field is required.",
    "too_long": "At most {max_length} items.",
    "int_parsing": "Must be a whole number.",
    "float_parsing": "Must be a number.",
    "date_from_datetime_parsing": "Must be a date (YYYY-MM-DD).",
    "date_parsing": "Must be a date (YYYY-MM-DD).",
    "date_from_datetime_inexact": "Must be a date (YYYY-MM-DD).",
    "literal_error": "Not one of the allowed values.",
    "enum": "Not one of the allowed values.",
    "string_pattern_mismatch": "Use lower-case letters, digits and _ only, starting with a letter.",
    "bool_parsing": "Must be true or false.",
    "string_type": "Must be text.",
    "json_invalid": "The request body is not valid JSON.",
    "greater_than_equal": "Must be at least {ge}.",
    "less_than_equal": "Must be at most {le}.",
}


def validation_problems(errors: Sequence[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(field path, msgid, params) for each pydantic error, dropping the body/query location prefix."""
    problems = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        kind = err.get("type", "")
        params: dict[str, Any] = {}
        if err.get("input") is None and kind.endswith("_type"):
            # an empty form field arrives as None: to the user it is a missing value, not a wrong type
            message = "This field is required."
        elif kind == "value_error":
            # Our validators raise ValueError with a msgid; pydantic prefixes it.
            message = str(err.get("msg", "")).removeprefix("Value error, ")
        else:
            message = _PYDANTIC_MESSAGES.get(kind, str(err.get("msg", "Not valid.")))
            params = {k: v for k, v in (err.get("ctx") or {}).items() if isinstance(v, int | float | str)}
        problems.append((field, message, params))
    return problems
