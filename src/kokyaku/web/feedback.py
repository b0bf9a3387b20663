"""Feedback pages: the public survey pages (no login; their own light layout), the survey list, builder and
results, the review monitoring page, follow-up tasks, and the customer page section "Feedback"."""

import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm, can
from kokyaku.config import Settings
from kokyaku.customers.models import Customer
from kokyaku.deps import DB, SettingsDep, actor, check_csrf, page_permission
from kokyaku.errors import KokyakuError, ValidationFailed
from kokyaku.feedback import charts, csvimport, followups, responses, results, reviews, surveys
from kokyaku.feedback import service as _service  # noqa: F401  (segment fields, merge participant)
from kokyaku.feedback.models import (
    CES,
    CLOSED,
    CSAT,
    DRAFT,
    FOLLOWUP_OPEN,
    MULTIPLE,
    NPS,
    OPEN,
    QUESTION_KINDS,
    SCALES,
    SINGLE,
    Followup,
    Question,
    Survey,
)
from kokyaku.feedback.schemas import InvitationsIn, SurveyIn, SurveyUpdate
from kokyaku.feedback.scores import latest_nps
from kokyaku.feedback.text import TOPICS
from kokyaku.i18n import LOCALES, gettext, negotiate
from kokyaku.kit.ids import PathId
from kokyaku.web.customers import Section, register_section
from kokyaku.web.render import locale_of, render, templates, validation_problems
from kokyaku.web.timeline import register_kind

router = APIRouter(include_in_schema=False)
register_kind("followup_closed", "Follow-up closed")
Reader = Annotated[User, Depends(page_permission(Perm.FEEDBACK_READ))]
Writer = Annotated[User, Depends(page_permission(Perm.FEEDBACK_WRITE))]
Csrf = Depends(check_csrf)

KIND_LABELS = {
    NPS: "NPS (0-10)",
    CSAT: "CSAT (1-5)",
    CES: "CES (1-7)",
    SINGLE: "Single choice",
    MULTIPLE: "Multiple choice",
    "text": "Free text",
}
# the words under the two ends of each scale (English msgids)
SCALE_ENDS = {
    NPS: ("Not at all likely", "Extremely likely"),
    CSAT: ("Very dissatisfied", "Very satisfied"),
    CES: ("Very difficult", "Very easy"),
}
STATUS_LABELS = {DRAFT: "Draft", OPEN: "Open", CLOSED: "Closed"}
SENTIMENT_LABELS = {"positive": "positive", "neutral": "neutral", "negative": "negative"}
SOURCE_LABELS = {
    "google": "Google",
    "tabelog": "食べログ",
    "amazon": "Amazon",
    "rakuten": "楽天",
    "instagram": "Instagram",
    "x": "X",
    "facebook": "Facebook",
    "yahoo": "Yahoo!",
    "other": "Other",
}
CHANNEL_LABELS = {
    "store": "Store",
    "online": "Online shop",
    "phone": "Telephone",
    "marketplace": "Marketplace",
    "sns": "Social media",
    "event": "Event",
    "other": "Other",
    "email": "E-mail",
    "web": "Website",
    "ad": "Advertising",
}
STAGE_LABELS = {
    "lead": "Lead",
    "new": "New",
    "repeat": "Repeat",
    "loyal": "Loyal",
    "at_risk": "At risk",
    "churned": "Churned",
    "won_back": "Won back",
}
MAX_UPLOAD = 20 * 1024 * 1024


async def form_data(request: Request) -> AsyncIterator[FormData]:
    """The posted form, read before the (synchronous) route runs in the thread pool, and closed after it
    (an uploaded file's spooled temporary file with it)."""
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


Form = Annotated[FormData, Depends(form_data)]


def _base(request: Request, settings: Settings) -> str:
    return surveys.base_url_of(settings, str(request.base_url))


def _tz(request: Request) -> str:
    return str(request.app.state.settings.timezone)


# ================================================================ public pages (no login)


def _public_locale(
    request: Request, settings: Settings, chosen: str | None, customer: Customer | None
) -> str:
    """?lang= (the switch) first, then the customer's language (personal links), then the browser's."""
    if chosen in LOCALES:
        return str(chosen)
    if customer is not None and customer.locale in LOCALES:
        return str(customer.locale)
    return negotiate(
        chosen=None, accept_language=request.headers.get("accept-language"), default=settings.default_locale
    )


def _public(request: Request, name: str, locale: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
    """Render a public page: its own layout, no session cookie, never cached (forms carry one-time tokens)."""

    def _(message: str, **params: Any) -> str:
        return gettext(locale, message, **params)

    switch = {k: v for k, v in request.query_params.items() if k != "lang"}
    other = "en" if locale == "ja" else "ja"
    context = {
        "request": request,
        "_": _,
        "locale": locale,
        "switch_url": f"?{urlencode({**switch, 'lang': other})}",
        "other_locale": other,
        **ctx,
    }
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _link_error(request: Request, settings: Settings, exc: KokyakuError, chosen: str | None) -> HTMLResponse:
    locale = _public_locale(request, settings, chosen, None)
    return _public(
        request,
        "feedback/public/message.html",
        locale,
        {"message": exc.message, "params": exc.params, "status": exc.status},
        exc.status,
    )


def _survey_title(survey: Survey, locale: str) -> str:
    return (
        (survey.title_ja if locale == "ja" else survey.title_en)
        or survey.title_ja
        or survey.title_en
        or survey.name
    )


def _form_page(
    request: Request,
    opened: responses.Opened,
    locale: str,
    *,
    action: str,
    nonce: str | None,
    values: dict[str, list[str]] | None = None,
    problems: responses.Problems | None = None,
    status: int = 200,
) -> HTMLResponse:
    problems = problems or {}
    messages = {qid: gettext(locale, msg, **params) for qid, (msg, params) in problems.items()}
    ctx = {
        "survey": opened.survey,
        "title": _survey_title(opened.survey, locale),
        "questions": opened.questions,
        "values": values or {},
        "errors": messages,
        "action": action,
        "nonce": nonce,
        "scales": SCALES,
        "ends": SCALE_ENDS,
        "customer": opened.customer,
    }
    return _public(request, "feedback/public/form.html", locale, ctx, status)


def _thanks(request: Request, survey: Survey, locale: str) -> HTMLResponse:
    text = survey.thank_you_ja if locale == "ja" else survey.thank_you_en
    ctx = {
        "title": _survey_title(survey, locale),
        "thank_you": text or survey.thank_you_ja or survey.thank_you_en,
    }
    return _public(request, "feedback/public/thanks.html", locale, ctx)


def _values(form: FormData) -> dict[str, list[str]]:
    return {key: [v for v in form.getlist(key) if isinstance(v, str)] for key in form}


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/s/{slug}", response_class=HTMLResponse)
def public_form(request: Request, db: DB, settings: SettingsDep, slug: str) -> Response:
    chosen = request.query_params.get("lang")
    try:
        opened = responses.open_public(db, slug)
    except responses.LinkError as exc:
        return _link_error(request, settings, exc, chosen)
    locale = _public_locale(request, settings, chosen, None)
    nonce = responses.issue_nonce(settings, opened.survey.id)
    return _form_page(request, opened, locale, action=f"/s/{slug}", nonce=nonce)


@router.post("/s/{slug}", response_class=HTMLResponse)
def public_submit(request: Request, db: DB, settings: SettingsDep, slug: str, form: Form) -> Response:
    chosen = request.query_params.get("lang") or _str(form.get("lang"))
    locale = _public_locale(request, settings, chosen, None)
    try:
        opened = responses.open_public(db, slug)
        responses.throttle(db, settings, survey_id=opened.survey.id, address=_address(request))
        nonce_token = _str(form.get("nonce"))
        nonce = responses.check_nonce(settings, opened.survey.id, nonce_token)
    except responses.LinkError as exc:
        return _link_error(request, settings, exc, locale)
    values = _values(form)
    given, problems = responses.check_answers(opened.questions, values)
    if problems:
        return _form_page(
            request,
            opened,
            locale,
            action=f"/s/{slug}",
            nonce=nonce_token,
            values=values,
            problems=problems,
            status=422,
        )
    try:
        responses.submit(
            db,
            settings,
            opened=opened,
            answers=given,
            channel="public",
            locale=locale,
            nonce=nonce,
            base_url=_base(request, settings),
        )
    except responses.LinkError as exc:
        return _link_error(request, settings, exc, locale)
    return _thanks(request, opened.survey, locale)


@router.get("/r/{token}", response_class=HTMLResponse)
def personal_form(request: Request, db: DB, settings: SettingsDep, token: str) -> Response:
    chosen = request.query_params.get("lang")
    try:
        opened = responses.open_personal(db, settings, token)
    except responses.LinkError as exc:
        return _link_error(request, settings, exc, chosen)
    locale = _public_locale(request, settings, chosen, opened.customer)
    return _form_page(request, opened, locale, action=f"/r/{token}", nonce=None)


@router.post("/r/{token}", response_class=HTMLResponse)
def personal_submit(request: Request, db: DB, settings: SettingsDep, token: str, form: Form) -> Response:
    chosen = request.query_params.get("lang") or _str(form.get("lang"))
    try:
        opened = responses.open_personal(db, settings, token)
    except responses.LinkError as exc:
        return _link_error(request, settings, exc, chosen)
    locale = _public_locale(request, settings, chosen, opened.customer)
    channel = opened.invitation.channel if opened.invitation else "link"
    values = _values(form)
    given, problems = responses.check_answers(opened.questions, values)
    if problems:
        return _form_page(
            request,
            opened,
            locale,
            action=f"/r/{token}",
            nonce=None,
            values=values,
            problems=problems,
            status=422,
        )
    try:
        responses.submit(
            db,
            settings,
            opened=opened,
            answers=given,
            channel=channel,
            locale=locale,
            base_url=_base(request, settings),
        )
    except responses.LinkError as exc:
        return _link_error(request, settings, exc, locale)
    return _thanks(request, opened.survey, locale)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# ================================================================ surveys: list and builder


@router.get("/surveys", response_class=HTMLResponse)
def survey_list(
    request: Request, db: DB, _user: Reader, cursor: Annotated[str | None, Query(max_length=500)] = None
) -> Response:
    page = surveys.list_surveys(db, cursor=cursor, limit=50)
    scores = results.scores_of_surveys(db, [s.id for s in page.items])
    stats = {sid: (s.responses, s.nps) for sid, s in scores.items()}
    ctx = {"page": page, "stats": stats, "status_labels": STATUS_LABELS}
    return render(request, "feedback/surveys.html", ctx)


def _question_blocks(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"token": q.get("token") or str(i), **q} for i, q in enumerate(questions)]


def _builder(
    request: Request,
    *,
    survey: Survey | None,
    values: dict[str, Any],
    errors: dict[str, str],
    answered: bool,
    status: int = 200,
) -> HTMLResponse:
    ctx = {
        "survey": survey,
        "values": values,
        "errors": errors,
        "answered": answered,
        "blocks": _question_blocks(values.get("questions", [])),
        "kinds": QUESTION_KINDS,
        "kind_labels": KIND_LABELS,
        "action": f"/surveys/{survey.id}/edit" if survey else "/surveys/new",
    }
    return render(request, "feedback/builder.html", ctx, status)


DEFAULT_QUESTIONS = [
    {
        "kind": NPS,
        "text_ja": "当店を友人や知人にすすめる可能性はどのくらいありますか？",
        "text_en": "How likely are you to recommend us to a friend or colleague?",
        "required": True,
    },
    {
        "kind": "text",
        "text_ja": "そう思われた理由をお聞かせください。",
        "text_en": "What is the main reason for your score?",
        "required": False,
    },
]


@router.get("/surveys/new", response_class=HTMLResponse)
def new_survey(request: Request, _user: Writer) -> Response:
    values = {
        "name": "",
        "link_days": 30,
        "public_enabled": True,
        "questions": DEFAULT_QUESTIONS,
        "thank_you_ja": "ご回答ありがとうございました。",
        "thank_you_en": "Thank you for your answers.",
    }
    return _builder(request, survey=None, values=values, errors={}, answered=False)


@router.get("/surveys/builder/question", response_class=HTMLResponse)
def question_block(
    request: Request,
    _user: Writer,
    token: Annotated[str, Query(max_length=20, pattern=r"^\w+$")],
    kind: Annotated[str, Query(max_length=20)] = NPS,
) -> Response:
    """One empty question block for the builder (htmx appends it)."""
    block = {
        "token": token,
        "kind": kind if kind in QUESTION_KINDS else NPS,
        "text_ja": "",
        "text_en": "",
        "required": True,
        "choices_ja": "",
        "choices_en": "",
    }
    ctx = {"q": block, "errors": {}, "kinds": QUESTION_KINDS, "kind_labels": KIND_LABELS, "answered": False}
    return render(request, "feedback/_question.html", ctx)


def _parse_builder(form: FormData) -> tuple[dict[str, Any], list[str]]:
    """The posted builder as SurveyIn-shaped data (questions in form order) and the block tokens by index."""
    data: dict[str, Any] = {}
    for key in ("name", "title_ja", "title_en", "thank_you_ja", "thank_you_en", "link_days"):
        value = form.get(key)
        data[key] = value.strip() if isinstance(value, str) else ""
    data["public_enabled"] = form.get("public_enabled") == "on"
    tokens: list[str] = []
    for key in form:
        if key.startswith("q-") and key.endswith("-kind"):
            token = key[2:-5]
            if token not in tokens:
                tokens.append(token)
    questions = []
    for token in tokens:

        def get(name: str, token: str = token) -> str:
            value = form.get(f"q-{token}-{name}")
            return value.strip() if isinstance(value, str) else ""

        q: dict[str, Any] = {
            "token": token,
            "kind": get("kind"),
            "text_ja": get("text_ja"),
            "text_en": get("text_en"),
            "required": get("required") == "on",
            "choices_ja": get("choices_ja"),
            "choices_en": get("choices_en"),
        }
        questions.append(q)
    data["questions"] = questions
    return data, tokens


def _survey_in(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Builder data -> the API's shape; problems found before pydantic (choice lines that do not pair up)."""
    errors: dict[str, str] = {}
    payload = {k: v for k, v in data.items() if k != "questions"}
    if payload.get("link_days") == "":
        payload["link_days"] = 30
    qs = []
    for q in data["questions"]:
        ja = [line.strip() for line in q["choices_ja"].splitlines() if line.strip()]
        en = [line.strip() for line in q["choices_en"].splitlines() if line.strip()]
        if q["kind"] in (SINGLE, MULTIPLE) and len(ja) != len(en):
            errors[f"q-{q['token']}-choices"] = (
                "Give each choice in both languages, one per line, in the same order."
            )
        choices = (
            [{"ja": a, "en": b} for a, b in zip(ja, en, strict=False)]
            if q["kind"] in (SINGLE, MULTIPLE)
            else []
        )
        qs.append(
            {
                "kind": q["kind"],
                "text_ja": q["text_ja"],
                "text_en": q["text_en"],
                "required": q["required"],
                "choices": choices,
            }
        )
    payload["questions"] = qs
    return payload, errors


def _builder_errors(
    problems: list[tuple[str, str, dict[str, Any]]], tokens: list[str], locale: str
) -> dict[str, str]:
    """pydantic paths (questions.2.text_ja) -> builder keys (q-<token>-text_ja), in the user's language."""
    errors: dict[str, str] = {}
    for path, message, params in problems:
        parts = path.split(".")
        if parts[0] == "questions" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(tokens):
            token = tokens[int(parts[1])]
            rest = parts[2] if len(parts) > 2 else ""
            key = f"q-{token}-{'choices' if rest == 'choices' else rest}" if rest else f"q-{token}"
        else:
            key = parts[0]
        errors.setdefault(key, gettext(locale, message, **params))
    return errors


def _check_builder(
    model: Any, data: dict[str, Any], tokens: list[str], locale: str
) -> tuple[Any, dict[str, str]]:
    """The validated survey, or every problem at its field (the builder's own checks and the API's rules)."""
    payload, pre = _survey_in(data)
    errors = {k: gettext(locale, v) for k, v in pre.items()}
    try:
        checked = model.model_validate(payload)
    except ValidationError as exc:
        for key, message in _builder_errors(validation_problems(exc.errors()), tokens, locale).items():
            errors.setdefault(key, message)
        return None, errors
    return (None, errors) if errors else (checked, {})


def _with_choice_text(questions: list[Question]) -> list[dict[str, Any]]:
    return [
        {
            "token": str(q.id),
            "kind": q.kind,
            "text_ja": q.text_ja,
            "text_en": q.text_en,
            "required": q.required,
            "choices_ja": "\n".join(c.get("ja", "") for c in q.choices or []),
            "choices_en": "\n".join(c.get("en", "") for c in q.choices or []),
        }
        for q in questions
    ]


@router.post("/surveys/new", response_class=HTMLResponse, dependencies=[Csrf])
def create_survey(request: Request, db: DB, user: Writer, form: Form) -> Response:
    locale = locale_of(request)
    data, tokens = _parse_builder(form)
    checked, errors = _check_builder(SurveyIn, data, tokens, locale)
    if checked is not None:
        survey = surveys.create_survey(db, actor=actor(user), data=checked)
        return RedirectResponse(f"/surveys/{survey.id}", status_code=303)
    return _builder(request, survey=None, values=data, errors=errors, answered=False, status=422)


@router.get("/surveys/{survey_id}/edit", response_class=HTMLResponse)
def edit_survey(request: Request, db: DB, _user: Writer, survey_id: PathId) -> Response:
    survey = surveys.get_survey(db, survey_id)
    values = {
        k: getattr(survey, k)
        for k in (
            "name",
            "title_ja",
            "title_en",
            "thank_you_ja",
            "thank_you_en",
            "link_days",
            "public_enabled",
        )
    }
    values["questions"] = _with_choice_text(surveys.questions_of(db, survey_id))
    return _builder(
        request, survey=survey, values=values, errors={}, answered=surveys.has_responses(db, survey_id)
    )


@router.post("/surveys/{survey_id}/edit", response_class=HTMLResponse, dependencies=[Csrf])
def update_survey(request: Request, db: DB, user: Writer, survey_id: PathId, form: Form) -> Response:
    locale = locale_of(request)
    survey = surveys.get_survey(db, survey_id)
    data, tokens = _parse_builder(form)
    checked, errors = _check_builder(SurveyUpdate, data, tokens, locale)
    if checked is not None:
        try:
            surveys.update_survey(db, actor=actor(user), survey_id=survey_id, data=checked)
            return RedirectResponse(f"/surveys/{survey_id}", status_code=303)
        except KokyakuError as exc:
            db.rollback()
            errors = {"__all__": gettext(locale, exc.message, **exc.params)}
            survey = surveys.get_survey(db, survey_id)
    return _builder(
        request,
        survey=survey,
        values=data,
        errors=errors,
        answered=surveys.has_responses(db, survey_id),
        status=422,
    )


@router.post("/surveys/{survey_id}/status", dependencies=[Csrf])
def set_status(db: DB, user: Writer, survey_id: PathId, form: Form) -> Response:
    status = form.get("status")
    if status not in (OPEN, CLOSED, DRAFT):
        raise ValidationFailed([("status", "Not one of the allowed values.", {})])
    surveys.update_survey(db, actor=actor(user), survey_id=survey_id, data=SurveyUpdate(status=status))
    return RedirectResponse(f"/surveys/{survey_id}", status_code=303)


@router.post("/surveys/{survey_id}/copy", dependencies=[Csrf])
def copy_survey(db: DB, user: Writer, survey_id: PathId) -> Response:
    survey = surveys.copy_survey(db, actor=actor(user), survey_id=survey_id)
    return RedirectResponse(f"/surveys/{survey.id}/edit", status_code=303)


@router.post("/surveys/{survey_id}/delete", dependencies=[Csrf])
def delete_survey(db: DB, user: Writer, survey_id: PathId) -> Response:
    surveys.delete_survey(db, actor=actor(user), survey_id=survey_id)
    return RedirectResponse("/surveys", status_code=303)


@router.post("/surveys/{survey_id}/invite", response_class=HTMLResponse, dependencies=[Csrf])
def invite(
    request: Request, db: DB, settings: SettingsDep, user: Writer, survey_id: PathId, form: Form
) -> Response:
    """Send personal links by email, or create them to copy; the page lists what was done."""
    locale = locale_of(request)
    survey = surveys.get_survey(db, survey_id)
    raw_ids = (_str(form.get("customer_ids")) or "").replace("、", ",").replace("\n", ",")
    segment = _str(form.get("segment_id")) or ""
    error = None
    done = None
    parts = [p.strip() for p in raw_ids.split(",") if p.strip()]
    try:
        if not all(p.isdigit() and len(p) < 19 for p in parts):
            raise ValidationFailed(
                [("customer_ids", "Customer numbers are whole numbers, separated by commas.", {})]
            )
        data = InvitationsIn.model_validate(
            {
                "channel": _str(form.get("channel")) or "email",
                "customer_ids": [int(p) for p in parts],
                "segment_id": int(segment) if segment.isdigit() and len(segment) < 19 else None,
            }
        )
        done = surveys.invite(
            db, settings, actor=actor(user), survey_id=survey_id, data=data, base_url=_base(request, settings)
        )
    except KokyakuError as exc:
        db.rollback()
        problems = exc.problems if isinstance(exc, ValidationFailed) else [("", exc.message, exc.params)]
        error = "; ".join(gettext(locale, m, **p) for _f, m, p in problems)
    except ValidationError as exc:
        error = "; ".join(gettext(locale, m, **p) for _f, m, p in validation_problems(exc.errors()))
    names: dict[int, str] = {}
    if done and done.created:
        ids_made = [i.customer_id for i, _ in done.created[:500]]
        rows = db.execute(select(Customer.id, Customer.name).where(Customer.id.in_(ids_made))).all()
        names = {int(cid): str(name) for cid, name in rows}
    ctx = {"survey": survey, "done": done, "error": error, "names": names}
    return render(request, "feedback/invited.html", ctx, 422 if error else 200)


# ================================================================ results


def _period_filters(request: Request, db: Session) -> tuple[results.Filters, dict[str, Any]]:
    """?days=N (or all) and ?segment=ID from the address; unknown values are ignored."""
    p = request.query_params
    tz = _tz(request)
    days = p.get("days") or ""
    since = None
    if days.isdigit() and 0 < int(days) <= 3650:
        since = datetime.now(ZoneInfo(tz)).date() - timedelta(days=int(days) - 1)
    segment_id = int(p["segment"]) if (p.get("segment") or "").isdigit() and len(p["segment"]) < 12 else None
    try:
        f = results.make_filters(db, tz=tz, since=since, segment_id=segment_id)
    except KokyakuError:
        segment_id, f = None, results.make_filters(db, tz=tz, since=since)
    unit = p.get("unit") if p.get("unit") in ("week", "month") else "month"
    return f, {"days": days if since else "", "segment": segment_id, "unit": unit}


def _segments_for_filter(db: Session) -> list[tuple[int, str]]:
    try:
        from kokyaku.segments import service as segments
    except ImportError:  # pragma: no cover
        return []
    return [(s.id, s.name) for s in segments.list_segments(db, limit=100).items]


def _group_label(kind: str, locale: str) -> Callable[[str], str]:
    def label(key: str) -> str:
        if key == results.NO_CUSTOMER:
            return gettext(locale, "Anonymous")
        if key == results.UNKNOWN:
            return gettext(locale, "Unknown")
        table = CHANNEL_LABELS if kind == "channel" else STAGE_LABELS
        return gettext(locale, table[key]) if key in table else key

    return label


def choice_label(q: Question, index: int, locale: str) -> str:
    choices = q.choices or []
    if 0 <= index < len(choices):
        return choices[index].get(locale) or choices[index].get("ja") or str(index)
    return str(index)


@router.get("/surveys/{survey_id}", response_class=HTMLResponse)
def survey_page(
    request: Request, db: DB, settings: SettingsDep, _user: Reader, survey_id: PathId
) -> Response:
    """The results: headline figures, distributions, trend, breakdowns, questions, comments, topics."""
    locale = locale_of(request)
    tz = _tz(request)
    survey = surveys.get_survey(db, survey_id)
    questions = surveys.questions_of(db, survey_id)
    f, chosen = _period_filters(request, db)
    r = results.survey_results(db, survey_id, questions, tz=tz, filters=f, unit=chosen["unit"])
    kinds = {q.kind for q in questions}
    figures: dict[str, str] = {}
    for kind in (NPS, CSAT, CES):
        if kind in kinds:
            dist = {NPS: r.nps_distribution, CSAT: r.csat_distribution, CES: r.ces_distribution}[kind]
            figures[kind] = charts.to_json(charts.distribution(kind, dist, locale))
    if r.trend:
        figures["trend"] = charts.to_json(charts.trend(r.trend, locale))
    if r.by_channel:
        figures["channel"] = charts.to_json(
            charts.breakdown(
                r.by_channel,
                _group_label("channel", locale),
                gettext(locale, "By acquisition channel"),
                locale,
            )
        )
    if r.by_lifecycle:
        figures["lifecycle"] = charts.to_json(
            charts.breakdown(
                r.by_lifecycle, _group_label("stage", locale), gettext(locale, "By lifecycle stage"), locale
            )
        )
    question_figures = []
    for qc in r.questions:
        q = qc.question
        text = q.text_ja if locale == "ja" else q.text_en
        if q.kind in SCALES:
            fig = charts.distribution(q.kind, qc.counts, locale)
        else:
            labels = [choice_label(q, i, locale) for i in range(len(q.choices or []))]
            fig = charts.choices(labels, [qc.counts.get(i, 0) for i in range(len(labels))], text)
        question_figures.append((q, charts.to_json(fig)))
    topics = results.topic_trend(db, survey_id, unit=chosen["unit"], filters=f)
    if topics.topics:
        figures["topics"] = charts.to_json(charts.topics_by_sentiment(topics, locale))
        figures["topics_time"] = charts.to_json(charts.topics_over_time(topics, locale))
    base = _base(request, settings)
    ctx = {
        "survey": survey,
        "questions": questions,
        "r": r,
        "figures": figures,
        "question_figures": question_figures,
        "chosen": chosen,
        "segments": _segments_for_filter(db),
        "public_url": surveys.public_url(base, survey),
        "status_labels": STATUS_LABELS,
        "kind_labels": KIND_LABELS,
        "topics": TOPICS,
        "invitations": surveys.invitations_of(db, survey_id, limit=10),
        "comments_url": f"/surveys/{survey_id}/comments?{urlencode({k: v for k, v in chosen.items() if v})}",
        "mail_ready": bool(settings.smtp_host),
        "channel_label": _group_label("channel", locale),
        "stage_label": _group_label("stage", locale),
    }
    return render(request, "feedback/results.html", ctx)


@router.get("/surveys/{survey_id}/comments", response_class=HTMLResponse)
def comments(
    request: Request,
    db: DB,
    _user: Reader,
    survey_id: PathId,
    sentiment: Annotated[str | None, Query(max_length=10)] = None,
    topic: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Comments with their sentiment and topics (htmx: filter chips and "more")."""
    surveys.get_survey(db, survey_id)
    f, chosen = _period_filters(request, db)
    sentiment = sentiment if sentiment in SENTIMENT_LABELS else None
    topic = topic if topic in TOPICS else None
    page = results.comments(
        db, survey_id, sentiment=sentiment, topic=topic, filters=f if f.active else None, cursor=cursor
    )
    query = {k: v for k, v in {**chosen, "sentiment": sentiment, "topic": topic}.items() if v}
    ctx = {
        "page": page,
        "survey_id": survey_id,
        "query": query,
        "topics": TOPICS,
        "sentiment": sentiment,
        "topic": topic,
        "more_url": f"/surveys/{survey_id}/comments?{urlencode({**query, 'cursor': page.next_cursor})}"
        if page.next_cursor
        else None,
        "append": bool(cursor),
    }
    return render(request, "feedback/_comments.html", ctx)


@router.get("/surveys/{survey_id}/by-segment", response_class=HTMLResponse)
def by_segment(request: Request, db: DB, settings: SettingsDep, _user: Reader, survey_id: PathId) -> Response:
    """The headline scores for each of the newest segments (htmx, loaded on demand: one query per segment)."""
    surveys.get_survey(db, survey_id)
    f, _chosen = _period_filters(request, db)
    rows = []
    try:
        from kokyaku.segments import service as segments

        for segment in segments.list_segments(db, limit=12).items:
            try:
                sf = results.make_filters(db, tz=settings.timezone, since=f.since, segment_id=segment.id)
            except KokyakuError:
                continue  # rules no longer valid (a deleted custom field)
            rows.append((segment, results.segment_scores(db, survey_id, sf)))
    except ImportError:  # pragma: no cover
        pass
    return render(request, "feedback/_by_segment.html", {"rows": rows})


# ================================================================ reviews


@router.get("/reviews", response_class=HTMLResponse)
def review_page(
    request: Request,
    db: DB,
    _user: Reader,
    source: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Monitoring: rating trend per source, topics by sentiment, negative reviews to acknowledge, the list."""
    locale = locale_of(request)
    tz = _tz(request)
    page = reviews.list_reviews(db, source=source or None, cursor=cursor, limit=30)
    more_url = (
        f"/reviews?{urlencode({'source': source or '', 'cursor': page.next_cursor})}"
        if page.next_cursor
        else None
    )
    if request.headers.get("hx-request") == "true" and cursor:
        return render(
            request,
            "feedback/_review_rows.html",
            {"page": page, "more_url": more_url, "source_labels": SOURCE_LABELS, "topics": TOPICS},
        )
    trend = reviews.rating_trend(db, tz)
    topics = results.review_topic_trend(db)
    figures = {}
    if trend:
        figures["trend"] = charts.to_json(
            charts.rating_trend(trend, lambda s: SOURCE_LABELS.get(s, s), locale)
        )
    if topics.topics:
        figures["topics"] = charts.to_json(charts.topics_by_sentiment(topics, locale))
        figures["topics_time"] = charts.to_json(charts.topics_over_time(topics, locale))
    ctx = {
        "page": page,
        "more_url": more_url,
        "source": source,
        "summary": reviews.source_summary(db),
        "alerts": reviews.alerts(db, limit=30),
        "alert_count": reviews.count_alerts(db),
        "figures": figures,
        "source_labels": SOURCE_LABELS,
        "topics": TOPICS,
        "result": None,
        "errors": [],
    }
    return render(request, "feedback/reviews.html", ctx)


@router.post("/reviews/{review_id}/acknowledge", dependencies=[Csrf])
def acknowledge(request: Request, db: DB, user: Writer, review_id: PathId) -> Response:
    reviews.acknowledge(db, actor=actor(user), review_id=review_id)
    if request.headers.get("hx-request") == "true":
        return HTMLResponse("")
    return RedirectResponse("/reviews", status_code=303)


@router.post("/reviews/import", response_class=HTMLResponse, dependencies=[Csrf])
def import_reviews(request: Request, db: DB, settings: SettingsDep, user: Writer, form: Form) -> Response:
    """Upload a CSV of reviews: all rows are checked; nothing is written unless every row is valid."""
    locale = locale_of(request)
    upload = form.get("file")
    source = (_str(form.get("source")) or "").strip().lower() or None
    errors: list[str] = []
    result = None
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors.append(gettext(locale, "Choose a CSV file."))
    else:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "reviews.csv"
            size = 0
            with path.open("wb") as fh:
                while chunk := upload.file.read(1 << 16):
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        break
                    fh.write(chunk)
            try:
                result = csvimport.import_csv(
                    db,
                    settings,
                    actor=actor(user),
                    path=path,
                    source=source,
                    base_url=_base(request, settings),
                    max_bytes=MAX_UPLOAD,
                )
            except KokyakuError as exc:
                db.rollback()
                errors.append(gettext(locale, exc.message, **exc.params))
            if result is not None:
                errors += [
                    gettext(
                        locale,
                        "Row {row}, {field}: {problem}",
                        row=row,
                        field=f,
                        problem=gettext(locale, m, **p),
                    )
                    for row, f, m, p in result.errors[:50]
                ]
    ctx = {"result": result, "errors": errors, "source_labels": SOURCE_LABELS}
    return render(request, "feedback/imported.html", ctx, 422 if errors else 200)


# ================================================================ follow-ups


@router.get("/followups", response_class=HTMLResponse)
def followup_list(
    request: Request,
    db: DB,
    user: Reader,
    show: Annotated[str, Query(max_length=12)] = "mine",
    status: Annotated[str, Query(max_length=8)] = FOLLOWUP_OPEN,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """My follow-ups (or everyone's / the unassigned ones for feedback writers), soonest due first."""
    writer = can(user.role, Perm.FEEDBACK_WRITE)
    show = show if show in ("mine", "all", "unassigned") and (writer or show == "mine") else "mine"
    status = status if status in ("open", "closed") else FOLLOWUP_OPEN
    page = followups.list_followups(
        db,
        owner_id=user.id if show == "mine" else None,
        unassigned=show == "unassigned",
        status=status,
        cursor=cursor,
    )
    ctx = _followup_cards(request, db, page.items)
    ctx.update(
        {
            "page": page,
            "show": show,
            "status": status,
            "writer": writer,
            "more_url": "/followups?"
            + urlencode({"show": show, "status": status, "cursor": page.next_cursor})
            if page.next_cursor
            else None,
        }
    )
    return render(request, "feedback/followups.html", ctx)


def _followup_cards(request: Request, db: Session, items: list[Followup]) -> dict[str, Any]:
    """Each task with its customer, owner, what the customer said and the customer's context."""
    locale = locale_of(request)
    customers = {
        c.id: c for c in db.scalars(select(Customer).where(Customer.id.in_({t.customer_id for t in items})))
    }
    owners = {
        u.id: u
        for u in db.scalars(select(User).where(User.id.in_({t.owner_id for t in items if t.owner_id})))
    }
    cards = [
        {
            "task": t,
            "customer": customers.get(t.customer_id),
            "owner": owners.get(t.owner_id) if t.owner_id else None,
            "source": followups.source_of(db, t, locale),
            "context": followups.customer_context(db, t.customer_id),
            "reason": followups.reason_text(locale, t.source_type),
        }
        for t in items
    ]
    today = followups.local_today(_tz(request))
    return {"cards": cards, "today": today, "stage_labels": STAGE_LABELS, "source_labels": SOURCE_LABELS}


@router.get("/followups/{followup_id}", response_class=HTMLResponse)
def followup_page(request: Request, db: DB, user: Reader, followup_id: PathId) -> Response:
    task = followups.get_followup(db, followup_id)
    ctx = _followup_cards(request, db, [task])
    ctx.update(
        {
            "card": ctx["cards"][0],
            "may_close": task.owner_id == user.id or can(user.role, Perm.FEEDBACK_WRITE),
            "error": None,
            "resolution": "",
        }
    )
    return render(request, "feedback/followup.html", ctx)


@router.post("/followups/{followup_id}/close", response_class=HTMLResponse, dependencies=[Csrf])
def close_followup(request: Request, db: DB, user: Reader, followup_id: PathId, form: Form) -> Response:
    locale = locale_of(request)
    resolution = (_str(form.get("resolution")) or "").strip()
    error = None
    if not resolution:
        error = gettext(locale, "Write what you did, so that colleagues can see it.")
    elif len(resolution) > 2000:
        error = gettext(locale, "At most {max_length} characters.", max_length=2000)
    else:
        try:
            followups.close_followup(
                db,
                actor=actor(user),
                user=user,
                followup_id=followup_id,
                resolution=resolution,
                any_owner=can(user.role, Perm.FEEDBACK_WRITE),
            )
            return RedirectResponse(f"/followups/{followup_id}", status_code=303)
        except KokyakuError as exc:
            if exc.status == 403:
                raise
            db.rollback()
            error = gettext(locale, exc.message, **exc.params)
    task = followups.get_followup(db, followup_id)
    ctx = _followup_cards(request, db, [task])
    ctx.update({"card": ctx["cards"][0], "may_close": True, "error": error, "resolution": resolution})
    return render(request, "feedback/followup.html", ctx, 422)


# ================================================================ the customer page section


def _section(session: Session, customer: Customer) -> dict[str, Any]:
    latest = latest_nps(session, customer.id)
    answered = results.responses_of_customer(session, customer.id, limit=5)
    found = session.execute(
        select(Survey.id, Survey.name).where(Survey.id.in_({r.survey_id for r in answered}))
    )
    names = {int(sid): str(name) for sid, name in found}
    page = reviews.list_reviews(session, customer_id=customer.id, limit=5)
    open_tasks = followups.list_followups(session, customer_id=customer.id, limit=5).items
    return {
        "latest": latest,
        "responses": answered,
        "survey_names": names,
        "reviews": page.items,
        "followups": open_tasks,
        "source_labels": SOURCE_LABELS,
    }


register_section(
    Section(key="feedback", title="Feedback", template="feedback/section.html", load=_section, order=60)
)
