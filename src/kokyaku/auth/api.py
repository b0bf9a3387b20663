"""REST routes for users (admin only) and the caller's own API tokens."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from kokyaku.auth import service
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.auth.schemas import TokenCreate, TokenCreated, TokenOut, UserCreate, UserOut, UserUpdate
from kokyaku.deps import DB, SettingsDep, actor, api_permission
from kokyaku.kit.ids import PathId

router = APIRouter(prefix="/api/v1", tags=["users"])
Admin = Annotated[User, Depends(api_permission(Perm.USERS_MANAGE))]
Me = Annotated[User, Depends(api_permission(Perm.TOKENS_OWN))]


@router.get("/users", response_model=list[UserOut])
def list_users(db: DB, _admin: Admin) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in service.list_users(db)]


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(db: DB, settings: SettingsDep, admin: Admin, body: UserCreate) -> UserOut:
    return UserOut.model_validate(service.create_user(db, settings, actor=actor(admin), data=body))


@router.get("/users/me", response_model=UserOut)
def me(user: Me) -> UserOut:
    return UserOut.model_validate(user)


@router.get("/users/{user_id}", response_model=UserOut)
def get_user(db: DB, _admin: Admin, user_id: PathId) -> UserOut:
    return UserOut.model_validate(service.get_user(db, user_id))


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(db: DB, settings: SettingsDep, admin: Admin, user_id: PathId, body: UserUpdate) -> UserOut:
    return UserOut.model_validate(
        service.update_user(db, settings, actor=actor(admin), user_id=user_id, data=body)
    )


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"])
def list_tokens(db: DB, user: Me) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in service.tokens_of(db, user)]


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["tokens"])
def create_token(db: DB, user: Me, body: TokenCreate) -> TokenCreated:
    row, token = service.create_token(db, actor=actor(user), user=user, name=body.name)
    return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=token)


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
def revoke_token(db: DB, user: Me, token_id: PathId) -> Response:
    service.revoke_token(db, actor=actor(user), user=user, token_id=token_id)
    return Response(status_code=204)
