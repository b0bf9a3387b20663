"""Admin pages: users and roles, custom-field definitions."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.auth.permissions import ROLES, Perm
from kokyaku.auth.schemas import UserCreate, UserUpdate
from kokyaku.customers import service as customers
from kokyaku.customers.schemas import CustomFieldIn
from kokyaku.deps import DB, SettingsDep, actor, check_csrf, page_permission
from kokyaku.errors import KokyakuError
from kokyaku.kit.ids import PathId
from kokyaku.web.forms import errors_of, form_dict, parse
from kokyaku.web.render import locale_of, render

router = APIRouter(prefix="/admin", include_in_schema=False)
UserAdmin = Annotated[User, Depends(page_permission(Perm.USERS_MANAGE))]
FieldAdmin = Annotated[User, Depends(page_permission(Perm.FIELDS_MANAGE))]
Csrf = Depends(check_csrf)


def _users_page(request: Request, db: DB, values: dict, errors: dict, status: int = 200) -> Response:
    ctx = {"users": auth.list_users(db), "roles": ROLES, "values": values, "errors": errors}
    return render(request, "admin/users.html", ctx, status)


@router.get("/users", response_class=HTMLResponse)
def users(request: Request, db: DB, _admin: UserAdmin) -> Response:
    return _users_page(request, db, {}, {})


@router.post("/users", response_class=HTMLResponse, dependencies=[Csrf])
async def create_user(request: Request, db: DB, settings: SettingsDep, admin: UserAdmin) -> Response:
    raw = form_dict(await request.form())
    data, errors = parse(UserCreate, raw, locale_of(request))
    if not errors:
        try:
            auth.create_user(db, settings, actor=actor(admin), data=data)
            return RedirectResponse("/admin/users", status_code=303)
        except KokyakuError as exc:
            db.rollback()
            errors = errors_of(exc, locale_of(request))
    raw.pop("password", None)
    return _users_page(request, db, raw, errors, 422)


@router.post("/users/{user_id}", dependencies=[Csrf])
async def update_user(
    request: Request, db: DB, settings: SettingsDep, admin: UserAdmin, user_id: PathId
) -> Response:
    raw = form_dict(await request.form())
    raw["is_active"] = raw.get("is_active") == "on"
    if user_id == admin.id:
        # An admin cannot lock themselves out by demoting or deactivating their own account.
        raw.pop("role", None)
        raw["is_active"] = True
    data, errors = parse(UserUpdate, raw, locale_of(request))
    if errors:
        return _users_page(request, db, {}, errors, 422)
    auth.update_user(db, settings, actor=actor(admin), user_id=user_id, data=data)
    return RedirectResponse("/admin/users", status_code=303)


def _fields_page(request: Request, db: DB, values: dict, errors: dict, status: int = 200) -> Response:
    ctx = {"fields": customers.custom_field_defs(db), "values": values, "errors": errors}
    return render(request, "admin/fields.html", ctx, status)


@router.get("/fields", response_class=HTMLResponse)
def fields(request: Request, db: DB, _admin: FieldAdmin) -> Response:
    return _fields_page(request, db, {}, {})


@router.post("/fields", response_class=HTMLResponse, dependencies=[Csrf])
async def create_field(request: Request, db: DB, admin: FieldAdmin) -> Response:
    raw = form_dict(await request.form(), lists=("choices",))
    raw["required"] = raw.get("required") == "on"
    raw.setdefault("choices", [])
    data, errors = parse(CustomFieldIn, raw, locale_of(request))
    if not errors:
        try:
            customers.create_custom_field(db, actor=actor(admin), data=data)
            return RedirectResponse("/admin/fields", status_code=303)
        except KokyakuError as exc:
            db.rollback()
            errors = errors_of(exc, locale_of(request))
    return _fields_page(request, db, raw, errors, 422)


@router.post("/fields/{field_id}/delete", dependencies=[Csrf])
def delete_field(db: DB, admin: FieldAdmin, field_id: PathId) -> Response:
    customers.delete_custom_field(db, actor=actor(admin), field_id=field_id)
    return RedirectResponse("/admin/fields", status_code=303)
