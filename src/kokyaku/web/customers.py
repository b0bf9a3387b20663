"""Customer and company pages: list with search as you type, the customer page, create and edit forms."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from kokyaku.audit import service as audit
from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.customers import service
from kokyaku.customers.models import COMPANY, COMPANY_SIZES, GENDERS, PERSON, Customer
from kokyaku.customers.schemas import CustomerCreate, CustomerUpdate
from kokyaku.deps import DB, actor, check_csrf, page_permission
from kokyaku.errors import KokyakuError
from kokyaku.i18n import gettext
from kokyaku.kit.ids import PathId
from kokyaku.kit.prefectures import PREFECTURE_NAMES, prefecture_label
from kokyaku.web.forms import errors_of, form_dict, parse
from kokyaku.web.render import locale_of, render

router = APIRouter(include_in_schema=False)
Reader = Annotated[User, Depends(page_permission(Perm.CUSTOMERS_READ))]
Writer = Annotated[User, Depends(page_permission(Perm.CUSTOMERS_WRITE))]
Deleter = Annotated[User, Depends(page_permission(Perm.CUSTOMERS_DELETE))]
Csrf = Depends(check_csrf)
LIST_FIELDS = ("emails", "phones", "interests")
# Audit rows name fields by column; these are the labels (gettext msgids) people see.
FIELD_LABELS = {
    "name": "Name",
    "name_kana": "Name in kana",
    "emails": "Email",
    "phones": "Phone",
    "external_ids": "External ids",
    "birthday": "Birthday",
    "gender": "Gender",
    "postal_code": "Postal code",
    "prefecture": "Prefecture",
    "city": "City",
    "street": "Street",
    "company_id": "Company",
    "job_title": "Job title",
    "industry": "Industry",
    "company_size": "Size",
    "website": "Website",
    "source": "Acquisition source",
    "channel": "Acquisition channel",
    "owner_id": "Owner",
    "locale": "Language",
    "note": "Note",
    "interests": "Interests",
    "custom": "Custom fields",
    "kind": "Type",
}
PAGE_SIZE = 50


@dataclass(frozen=True)
class Section:
    """A block of the customer page. Later domains (timeline, orders, scores, surveys, tickets, loyalty)
    register theirs here, so the page grows without this module knowing them."""

    key: str
    title: str
    template: str
    load: Callable[[Session, Customer], dict[str, Any]]
    order: int = 100


SECTIONS: list[Section] = []


def register_section(section: Section) -> None:
    SECTIONS.append(section)
    SECTIONS.sort(key=lambda s: s.order)


def _filters(request: Request, kind: str | None) -> service.CustomerFilters:
    p = request.query_params
    owner = p.get("owner_id")
    return service.CustomerFilters(
        kind=kind or p.get("kind") or None,
        prefecture=p.get("prefecture") or None,
        owner_id=int(owner) if owner and owner.isdigit() else None,
        gender=p.get("gender") if p.get("gender") in GENDERS else None,
        tag=(p.get("tag") or "").strip()[:50] or None,
        q=(p.get("q") or "").strip()[:100] or None,
    )


def _list(request: Request, db: Session, kind: str | None, partial: bool) -> Response:
    filters = _filters(request, kind)
    page = service.list_customers(db, filters, cursor=request.query_params.get("cursor"), limit=PAGE_SIZE)
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    ctx = {
        "page": page,
        "more_query": urlencode([*query, ("cursor", page.next_cursor or "")]),
        "filters": filters,
        "kind": kind,
        "prefectures": PREFECTURE_NAMES,
        "genders": GENDERS,
        "owners": auth.list_users(db),
        "base": "/companies" if kind == COMPANY else "/customers",
    }
    return render(request, "customers/_rows.html" if partial else "customers/list.html", ctx)


@router.get("/customers", response_class=HTMLResponse)
def customer_list(request: Request, db: DB, _user: Reader) -> Response:
    return _list(request, db, None, partial=request.headers.get("hx-request") == "true")


@router.get("/companies", response_class=HTMLResponse)
def company_list(request: Request, db: DB, _user: Reader) -> Response:
    return _list(request, db, COMPANY, partial=request.headers.get("hx-request") == "true")


def _form_context(
    request: Request, db: Session, kind: str, values: dict[str, Any], errors: dict[str, str], action: str
) -> dict[str, Any]:
    locale = locale_of(request)
    companies = service.list_customers(db, service.CustomerFilters(kind=COMPANY), limit=200).items
    return {
        "kind": kind,
        "values": values,
        "errors": errors,
        "action": action,
        "gender_options": [(g, gettext(locale, g)) for g in GENDERS],
        "company_options": [(c.id, c.name) for c in companies],
        "size_options": [(s, s) for s in COMPANY_SIZES],
        "prefecture_options": [(p, prefecture_label(p, locale)) for p in PREFECTURE_NAMES],
        "owner_options": [(u.id, u.name) for u in auth.list_users(db)],
        "custom_fields": service.custom_field_defs(db, kind),
    }


def _values_of(db: Session, customer: Customer) -> dict[str, Any]:
    return service.to_out(db, customer).model_dump()


@router.get("/customers/new", response_class=HTMLResponse)
@router.get("/companies/new", response_class=HTMLResponse)
def new_form(request: Request, db: DB, _user: Writer) -> Response:
    kind = COMPANY if request.url.path.startswith("/companies") else PERSON
    action = "/companies/new" if kind == COMPANY else "/customers/new"
    return render(request, "customers/form.html", _form_context(request, db, kind, {}, {}, action))


@router.post("/customers/new", response_class=HTMLResponse, dependencies=[Csrf])
@router.post("/companies/new", response_class=HTMLResponse, dependencies=[Csrf])
async def create(request: Request, db: DB, user: Writer) -> Response:
    kind = COMPANY if request.url.path.startswith("/companies") else PERSON
    raw = form_dict(await request.form(), lists=LIST_FIELDS)
    raw["kind"] = kind
    data, errors = parse(CustomerCreate, raw, locale_of(request))
    if not errors:
        try:
            customer = service.create_customer(db, actor=actor(user), data=data)
            return RedirectResponse(f"/customers/{customer.id}", status_code=303)
        except KokyakuError as exc:
            db.rollback()  # nothing half-written: the form comes back with the message at the field
            errors = errors_of(exc, locale_of(request))
    return render(
        request, "customers/form.html", _form_context(request, db, kind, raw, errors, request.url.path), 422
    )


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def detail(request: Request, db: DB, user: Reader, customer_id: PathId) -> Response:
    customer = service.get_customer(db, customer_id)
    view = service.to_out(db, customer)
    sections = [(s, s.load(db, customer)) for s in SECTIONS]
    ctx = {
        "c": view,
        "company": db.get(Customer, customer.company_id) if customer.company_id else None,
        "contacts": service.contacts_of(db, customer.id) if customer.kind == COMPANY else [],
        "owner": db.get(User, customer.owner_id) if customer.owner_id else None,
        "custom_fields": service.custom_field_defs(db, customer.kind),
        "history": audit.history(db, entity_type=service.ENTITY[customer.kind], entity_id=customer.id),
        "sections": sections,
        "field_labels": FIELD_LABELS,
    }
    return render(request, "customers/detail.html", ctx)


@router.get("/customers/{customer_id}/edit", response_class=HTMLResponse)
def edit_form(request: Request, db: DB, _user: Writer, customer_id: PathId) -> Response:
    customer = service.get_customer(db, customer_id)
    ctx = _form_context(
        request, db, customer.kind, _values_of(db, customer), {}, f"/customers/{customer_id}/edit"
    )
    ctx["customer_id"] = customer_id
    return render(request, "customers/form.html", ctx)


@router.post("/customers/{customer_id}/edit", response_class=HTMLResponse, dependencies=[Csrf])
async def edit(request: Request, db: DB, user: Writer, customer_id: PathId) -> Response:
    customer = service.get_customer(db, customer_id)
    form = await request.form()
    raw = form_dict(form, lists=LIST_FIELDS)
    # A cleared list field arrives as an empty string: it means "none", not "unchanged".
    for field in LIST_FIELDS:
        if field in form and raw.get(field) is None:
            raw[field] = []
    data, errors = parse(CustomerUpdate, raw, locale_of(request))
    if not errors:
        try:
            service.update_customer(db, actor=actor(user), customer_id=customer_id, data=data)
            return RedirectResponse(f"/customers/{customer_id}", status_code=303)
        except KokyakuError as exc:
            db.rollback()
            errors = errors_of(exc, locale_of(request))
    ctx = _form_context(request, db, customer.kind, raw, errors, request.url.path)
    ctx["customer_id"] = customer_id
    return render(request, "customers/form.html", ctx, 422)


@router.post("/customers/{customer_id}/delete", dependencies=[Csrf])
def delete(db: DB, user: Deleter, customer_id: PathId) -> Response:
    kind = service.get_customer(db, customer_id).kind
    service.delete_customer(db, actor=actor(user), customer_id=customer_id)
    return RedirectResponse("/companies" if kind == COMPANY else "/customers", status_code=303)
