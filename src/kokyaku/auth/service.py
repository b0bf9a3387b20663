"""Users, passwords, login throttling and API tokens."""

import hashlib
import secrets
from datetime import timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.audit.service import Actor
from kokyaku.auth.models import ApiToken, LoginAttempt, User
from kokyaku.auth.schemas import UserCreate, UserUpdate
from kokyaku.config import Settings
from kokyaku.db import utcnow
from kokyaku.errors import Conflict, KokyakuError, NotFound, TooManyAttempts

TOKEN_PREFIX = "kky_"


class BadLogin(KokyakuError):
    code = "bad_login"
    status = 401
    message = "The email or password is wrong."


@lru_cache
def _hasher(time_cost: int, memory_cost: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost)


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_cost)


def actor_of(user: User) -> Actor:
    return Actor(user.id, user.email)


def create_user(session: Session, settings: Settings, *, actor: Actor, data: UserCreate) -> User:
    if session.scalar(select(User.id).where(User.email == data.email)):
        raise Conflict("A user with this email already exists.", field="email")
    user = User(
        email=data.email,
        name=data.name,
        role=data.role,
        locale=data.locale,
        password_hash=hasher(settings).hash(data.password),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        entity_type="user",
        entity_id=user.id,
        action="create",
        changes=audit.diff({}, {"email": user.email, "name": user.name, "role": user.role}),
    )
    return user


def update_user(
    session: Session, settings: Settings, *, actor: Actor, user_id: int, data: UserUpdate
) -> User:
    user = get_user(session, user_id)
    before = {"name": user.name, "role": user.role, "locale": user.locale, "is_active": user.is_active}
    for field in ("name", "role", "locale", "is_active"):
        if field in data.model_fields_set and getattr(data, field) is not None:
            setattr(user, field, getattr(data, field))
    after = {"name": user.name, "role": user.role, "locale": user.locale, "is_active": user.is_active}
    changes = audit.diff(before, after)
    if data.password:
        user.password_hash = hasher(settings).hash(data.password)
        changes["password"] = ["***", "***"]
    if changes:
        audit.record(
            session, actor=actor, entity_type="user", entity_id=user.id, action="update", changes=changes
        )
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("User {id} does not exist.", id=user_id)
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def authenticate(session: Session, settings: Settings, *, email: str, password: str) -> User | None:
    """Check a password, throttled per email: too many recent failures lock the account for a while.

    A failure returns None rather than raising, so that the recorded attempt is committed."""
    email = email.strip().lower()
    since = utcnow() - timedelta(seconds=settings.login_window_seconds)
    failures = session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.email == email, LoginAttempt.at >= since)
    )
    if (failures or 0) >= settings.login_max_failures:
        raise TooManyAttempts(minutes=settings.login_window_seconds // 60)
    user = session.scalar(select(User).where(User.email == email))
    ok = False
    if user is not None and user.is_active:
        try:
            ok = hasher(settings).verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        # Spend the same time as a real check so that timing does not reveal which emails exist.
        hasher(settings).hash(password)
    if not ok or user is None:
        session.add(LoginAttempt(email=email))
        return None
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == email))
    if hasher(settings).check_needs_rehash(user.password_hash):
        user.password_hash = hasher(settings).hash(password)
    return user


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, actor: Actor, user: User, name: str = "api") -> tuple[ApiToken, str]:
    """A new API token; the plain token is returned once and only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=_hash_token(token), prefix=token[:12])
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        entity_type="api_token",
        entity_id=row.id,
        action="create",
        changes={"user": [None, user.email], "name": [None, name]},
    )
    return row, token


def revoke_token(session: Session, *, actor: Actor, user: User, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != user.id and user.role != "admin"):
        raise NotFound("Token {id} does not exist.", id=token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            session, actor=actor, entity_type="api_token", entity_id=row.id, action="revoke", changes={}
        )
    return row


def tokens_of(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _hash_token(token), ApiToken.revoked_at.is_(None))
    )
    if row is None:
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.is_active else None
