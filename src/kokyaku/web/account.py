"""Login, logout, language switch and the user's own page with API tokens."""

from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.deps import DB, SettingsDep, actor, check_csrf, page_permission
from kokyaku.errors import TooManyAttempts
from kokyaku.i18n import LOCALES, gettext
from kokyaku.kit.ids import PathId
from kokyaku.web.render import locale_of, render

router = APIRouter(include_in_schema=False)
Me = Annotated[User, Depends(page_permission(Perm.TOKENS_OWN))]
Csrf = Depends(check_csrf)


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect would let a phishing link bounce through our login.
    if not target or not target.startswith("/") or target.startswith("//") or urlparse(target).netloc:
        return "/customers"
    return target


@router.get("/")
def home() -> Response:
    return RedirectResponse("/customers", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None, "email": ""})


@router.post("/login", dependencies=[Csrf])
def login(
    request: Request,
    db: DB,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str | None, Form()] = None,
) -> Response:
    try:
        user = auth.authenticate(db, settings, email=email, password=password)
    except TooManyAttempts as exc:
        message = gettext(locale_of(request), exc.message, **exc.params)
        return render(
            request, "login.html", {"next": _safe_next(next), "error": message, "email": email}, 429
        )
    if user is None:
        message = gettext(locale_of(request), "The email or password is wrong.")
        return render(
            request, "login.html", {"next": _safe_next(next), "error": message, "email": email}, 401
        )
    request.session.clear()  # a fresh session on login: no fixation
    request.session["user_id"] = user.id
    if user.locale:
        request.session["locale"] = user.locale
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.post("/lang", dependencies=[Csrf])
def switch_language(
    request: Request, db: DB, locale: Annotated[str, Form()], next: Annotated[str | None, Form()] = None
) -> Response:
    if locale in LOCALES:
        request.session["locale"] = locale
        user_id = request.session.get("user_id")
        user = db.get(User, user_id) if user_id else None
        if user is not None:
            user.locale = locale
    return RedirectResponse(_safe_next(next), status_code=303)


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, db: DB, user: Me) -> Response:
    return render(request, "account.html", {"tokens": auth.tokens_of(db, user), "new_token": None})


@router.post("/account/tokens", response_class=HTMLResponse, dependencies=[Csrf])
def create_token(
    request: Request, db: DB, user: Me, name: Annotated[str, Form(min_length=1, max_length=100)]
) -> Response:
    _row, token = auth.create_token(db, actor=actor(user), user=user, name=name)
    return render(request, "account.html", {"tokens": auth.tokens_of(db, user), "new_token": token})


@router.post("/account/tokens/{token_id}/revoke", dependencies=[Csrf])
def revoke_token(db: DB, user: Me, token_id: PathId) -> Response:
    auth.revoke_token(db, actor=actor(user), user=user, token_id=token_id)
    return RedirectResponse("/account", status_code=303)
