"""Duplicate candidates side by side, merging (manual), dismissing, merge history with undo, and the
"merged from" section of the customer page."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

import kokyaku.domains  # noqa: F401  (every merge participant registered before a merge runs)
from kokyaku.audit import service as audit
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.customers import duplicates, merge, service
from kokyaku.customers.models import Customer
from kokyaku.deps import DB, actor, check_csrf, page_permission
from kokyaku.errors import KokyakuError, ValidationFailed
from kokyaku.i18n import gettext
from kokyaku.web.customers import Section, register_section
from kokyaku.web.render import locale_of, render

router = APIRouter(include_in_schema=False)
Merger = Annotated[User, Depends(page_permission(Perm.CUSTOMERS_MERGE))]
AuditReader = Annotated[User, Depends(page_permission(Perm.AUDIT_READ))]
Csrf = Depends(check_csrf)
PAGE_SIZE = 20
HISTORY_SIZE = 20

# Reason codes (customers/duplicates.py) -> English msgids shown in the reader's language
REASON_LABELS = {
    "same_email": "Same email address",
    "same_phone": "Same phone number",
    "same_external_id": "Same external id",
    "same_name_birthday": "Same name and birthday",
    "same_kana_birthday": "Same kana and birthday",
    "same_name_postal": "Same name and postal code",
    "same_kana_postal": "Same kana and postal code",
    "similar_name_postal": "Similar name, same postal code",
}
# Fields a merge may fill on the survivor -> the labels the customer page uses
FIELD_LABELS = {
    "name_kana": "Kana", "email": "Email", "phone": "Phone", "birthday": "Birthday", "gender": "Gender",
    "postal_code": "Postal code", "prefecture": "Prefecture", "city": "City", "street": "Street",
    "company_id": "Company", "job_title": "Job title", "industry": "Industry", "company_size": "Size",
    "website": "Website", "source": "Source", "channel": "Channel", "owner_id": "Owner", "locale": "Language",
    "note": "Note",
}  # fmt: skip


def _message(exc: KokyakuError, locale: str) -> str:
    if isinstance(exc, ValidationFailed):
        return " ".join(gettext(locale, m, **p) for _f, m, p in exc.problems)
    return gettext(locale, exc.message, **exc.params)


def _int(value: Any) -> int | None:
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if text.isdigit() and len(text) < 12 else None


def _list_page(
    request: Request,
    db: Session,
    *,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    page = duplicates.list_candidates(db, cursor=request.query_params.get("cursor"), limit=PAGE_SIZE)
    ctx = {
        "page": page,
        "history": _history(db, merge.list_merges(db, limit=HISTORY_SIZE).items),
        "reason_labels": REASON_LABELS,
        "error": error,
        "values": values or {},
    }
    return render(request, "duplicates/list.html", ctx, status)


def _history(db: Session, records: list[Any]) -> list[tuple[Any, Customer | None, Customer | None]]:
    ids = {m.survivor_id for m in records} | {m.merged_id for m in records}
    people = {c.id: c for c in db.query(Customer).filter(Customer.id.in_(ids))} if ids else {}
    return [(m, people.get(m.survivor_id), people.get(m.merged_id)) for m in records]


@router.get("/duplicates", response_class=HTMLResponse)
def duplicate_list(request: Request, db: DB, _user: Merger) -> Response:
    return _list_page(request, db)


@router.post("/duplicates/scan", dependencies=[Csrf])
def scan(db: DB, _user: Merger) -> Response:
    duplicates.scan(db)
    return RedirectResponse("/duplicates", status_code=303)


@router.post("/duplicates/{candidate_id}/dismiss", dependencies=[Csrf])
def dismiss(db: DB, user: Merger, candidate_id: int) -> Response:
    duplicates.dismiss_candidate(db, actor=actor(user), candidate_id=candidate_id)
    return RedirectResponse("/duplicates", status_code=303)


def _merge_or_page(request: Request, db: Session, user: User, survivor_id: int | None, merged_id: int | None,
                   reason: str | None, values: dict[str, Any]) -> Response:  # fmt: skip
    locale = locale_of(request)
    if survivor_id is None or merged_id is None:
        error = gettext(locale, "Enter the numbers of both customers.")
        return _list_page(request, db, error=error, values=values, status=422)
    try:
        record = merge.merge_customers(
            db, actor=actor(user), survivor_id=survivor_id, merged_id=merged_id, reason=reason
        )
    except KokyakuError as exc:
        db.rollback()  # nothing half-merged: the page comes back with the reason
        return _list_page(request, db, error=_message(exc, locale), values=values, status=exc.status)
    return RedirectResponse(f"/merges/{record.id}", status_code=303)


@router.post("/duplicates/{candidate_id}/merge", response_class=HTMLResponse, dependencies=[Csrf])
async def merge_candidate(request: Request, db: DB, user: Merger, candidate_id: int) -> Response:
    form = await request.form()
    candidate = duplicates.get_candidate(db, candidate_id)
    pair = {candidate.customer_a_id, candidate.customer_b_id}
    survivor_id = _int(form.get("survivor_id"))
    if survivor_id not in pair:
        error = gettext(locale_of(request), "Choose which of the two customers stays.")
        return _list_page(request, db, error=error, status=422)
    merged_id = (pair - {survivor_id}).pop()
    reason = form.get("reason")
    return _merge_or_page(
        request, db, user, survivor_id, merged_id, reason if isinstance(reason, str) else None, {}
    )


@router.post("/merges", response_class=HTMLResponse, dependencies=[Csrf])
async def merge_any(request: Request, db: DB, user: Merger) -> Response:
    """Merge two customers chosen by number, for duplicates the scan did not find."""
    form = await request.form()
    values = {
        k: v for k, v in form.items() if k in ("survivor_id", "merged_id", "reason") and isinstance(v, str)
    }
    survivor_id, merged_id = _int(values.get("survivor_id")), _int(values.get("merged_id"))
    return _merge_or_page(request, db, user, survivor_id, merged_id, values.get("reason"), values)


def _detail(
    request: Request, db: Session, merge_id: int, *, error: str | None = None, status: int = 200
) -> Response:
    record = merge.get_merge(db, merge_id)
    survivor = db.get(Customer, record.survivor_id)
    merged = db.get(Customer, record.merged_id)
    assert survivor is not None and merged is not None  # the foreign keys cascade
    ctx = {
        "m": record,
        "survivor": survivor,
        "merged": merged,
        "merged_history": audit.history(
            db, entity_type=service.ENTITY[merged.kind], entity_id=merged.id, limit=200
        ),
        "field_labels": FIELD_LABELS,
        "moved_counts": {
            f"{name}.{table}": len(ids)
            for name, tables in record.moved.items()
            for table, ids in tables.items()
        },
        "error": error,
    }
    return render(request, "duplicates/merge.html", ctx, status)


@router.get("/merges/{merge_id}", response_class=HTMLResponse)
def merge_detail(request: Request, db: DB, _user: AuditReader, merge_id: int) -> Response:
    return _detail(request, db, merge_id)


@router.post("/merges/{merge_id}/undo", response_class=HTMLResponse, dependencies=[Csrf])
def undo(request: Request, db: DB, user: Merger, merge_id: int) -> Response:
    try:
        merge.undo_merge(db, actor=actor(user), merge_id=merge_id)
    except KokyakuError as exc:
        db.rollback()
        return _detail(request, db, merge_id, error=_message(exc, locale_of(request)), status=exc.status)
    return RedirectResponse(f"/merges/{merge_id}", status_code=303)


def _section(db: Session, customer: Customer) -> dict[str, Any]:
    return {"merges": merge.merged_into(db, customer.id)}


register_section(
    Section(
        key="merges", title="Merged customers", template="duplicates/_section.html", load=_section, order=900
    )
)
