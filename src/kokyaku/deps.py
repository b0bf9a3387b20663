"""Request dependencies: the transaction, the current user, permission checks, CSRF."""

import hmac
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm, can
from kokyaku.config import Settings
from kokyaku.errors import CsrfFailed, NotAuthenticated, PermissionDenied

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request; reads do not take SQLite's write lock."""
    with request.app.state.db.session(write=request.method not in SAFE_METHODS) as session:
        yield session


DB = Annotated[Session, Depends(get_db, scope="function")]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]


def _bearer_user(request: Request, db: Session) -> User:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("A bearer token is required.")
    user = auth.user_for_token(db, token.strip())
    if user is None:
        raise NotAuthenticated("The token is not valid or has been revoked.")
    return _remember(request, db, user)


def _session_user(request: Request, db: Session) -> User:
    user_id = request.session.get("user_id")
    user = db.get(User, user_id) if user_id else None
    if user is None or not user.is_active:
        request.session.pop("user_id", None)
        raise NotAuthenticated()
    return _remember(request, db, user)


def _remember(request: Request, db: Session, user: User) -> User:
    # Detached but loaded: a rollback later in the request cannot expire it, so error pages can
    # still show who is logged in.
    db.expunge(user)
    request.state.user = user
    return user


def api_permission(perm: Perm) -> Callable[..., User]:
    """An API dependency: bearer-token user holding `perm`."""

    def dependency(request: Request, db: DB) -> User:
        user = _bearer_user(request, db)
        if not can(user.role, perm):
            raise PermissionDenied()
        return user

    return dependency


def page_permission(perm: Perm) -> Callable[..., User]:
    """A page dependency: logged-in user holding `perm`."""

    def dependency(request: Request, db: DB) -> User:
        user = _session_user(request, db)
        if not can(user.role, perm):
            raise PermissionDenied()
        return user

    return dependency


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


async def check_csrf(request: Request) -> AsyncIterator[None]:
    """Every state-changing page request carries the session's token, as a form field or htmx header.
    Once the route is done, the form it read (cached on the request) is closed, with the temporary files
    of its uploads."""
    if request.method in SAFE_METHODS:
        yield
        return
    sent = request.headers.get("x-csrf-token")
    if not sent:
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    expected = request.session.get("csrf")
    if not sent or not expected or not hmac.compare_digest(str(sent), str(expected)):
        await request.close()
        raise CsrfFailed()
    try:
        yield
    finally:
        await request.close()


def actor(user: User) -> Actor:
    return auth.actor_of(user)
