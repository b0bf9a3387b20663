"""REST routes for duplicate candidates and merges (managers and admins)."""

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

import kokyaku.domains  # noqa: F401  (every merge participant registered before a merge runs)
from kokyaku.audit import service as audit
from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.customers import duplicates, merge, service
from kokyaku.customers.merge_models import CustomerMerge, DuplicateCandidate
from kokyaku.customers.models import Customer
from kokyaku.deps import DB, actor, api_permission

router = APIRouter(prefix="/api/v1", tags=["duplicates and merges"])
Merger = Annotated[User, Depends(api_permission(Perm.CUSTOMERS_MERGE))]
AuditReader = Annotated[User, Depends(api_permission(Perm.AUDIT_READ))]


class CustomerBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    name: str
    name_kana: str | None
    email: str | None
    phone: str | None
    birthday: date | None
    postal_code: str | None
    prefecture: str | None
    city: str | None
    created_at: datetime


class Reason(BaseModel):
    code: str
    value: Any


class CandidateOut(BaseModel):
    id: int
    score: int = Field(description="0..100: how likely the two are one customer")
    status: str
    reasons: list[Reason]
    customers: list[CustomerBrief]


class CandidatePage(BaseModel):
    items: list[CandidateOut]
    next_cursor: str | None


class ScanOut(BaseModel):
    found: int
    added: int
    updated: int
    removed: int
    dismissed: int
    seconds: float


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    survivor_id: int = Field(description="The customer that stays")
    merged_id: int = Field(description="The customer merged into the survivor")
    reason: Annotated[str | None, Field(max_length=500)] = None


class MergeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)
    id: int
    survivor_id: int
    merged_id: int
    automatic: bool
    reason: str | None
    actor: str = Field(validation_alias="actor_label")
    merged_at: datetime
    undone_at: datetime | None
    undone_by: str | None = Field(validation_alias="undone_by_label")
    moved: dict[str, dict[str, list[int]]]
    identity_ids: list[int]
    interests: dict[str, list[str]]
    contact_ids: list[int]
    filled: dict[str, list[Any]]


class MergePage(BaseModel):
    items: list[MergeOut]
    next_cursor: str | None


class MergeDetail(MergeOut):
    merged_customer: CustomerBrief
    merged_history: list[dict[str, Any]] = Field(description="The merged customer's own audit rows")


def _candidate(c: DuplicateCandidate, a: Customer, b: Customer) -> CandidateOut:
    return CandidateOut(
        id=c.id, score=c.score, status=c.status, reasons=[Reason(**r) for r in c.reasons],
        customers=[CustomerBrief.model_validate(a), CustomerBrief.model_validate(b)],
    )  # fmt: skip


@router.get("/duplicates", response_model=CandidatePage)
def list_duplicates(
    db: DB,
    _user: Merger,
    status: Literal["open", "dismissed"] = "open",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CandidatePage:
    """Candidate pairs found by the last scan, best first."""
    page = duplicates.list_candidates(db, status=status, cursor=cursor, limit=limit)
    return CandidatePage(items=[_candidate(*row) for row in page.items], next_cursor=page.next_cursor)


@router.post("/duplicates/scan", response_model=ScanOut)
def scan_duplicates(db: DB, _user: Merger) -> ScanOut:
    """Look for duplicates among all customers now and store the candidates."""
    result = duplicates.scan(db)
    return ScanOut(**vars(result))


@router.post("/duplicates/{candidate_id}/dismiss", status_code=204)
def dismiss_duplicate(db: DB, user: Merger, candidate_id: int) -> Response:
    """These two are different customers: the pair is not suggested again."""
    duplicates.dismiss_candidate(db, actor=actor(user), candidate_id=candidate_id)
    return Response(status_code=204)


@router.post("/merges", response_model=MergeOut, status_code=201)
def create_merge(db: DB, user: Merger, body: MergeIn) -> MergeOut:
    """Merge one customer into another; every order, touchpoint, identity and audit row is kept."""
    record = merge.merge_customers(
        db, actor=actor(user), survivor_id=body.survivor_id, merged_id=body.merged_id, reason=body.reason
    )
    return MergeOut.model_validate(record)


@router.get("/merges", response_model=MergePage)
def list_merges(
    db: DB,
    _user: AuditReader,
    customer_id: int | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MergePage:
    """Merge history, newest first; with customer_id, the merges that customer took part in."""
    page = merge.list_merges(db, customer_id=customer_id, cursor=cursor, limit=limit)
    return MergePage(items=[MergeOut.model_validate(m) for m in page.items], next_cursor=page.next_cursor)


@router.get("/merges/{merge_id}", response_model=MergeDetail)
def get_merge(db: DB, _user: AuditReader, merge_id: int) -> MergeDetail:
    """One merge, with the merged customer and its own change history."""
    record: CustomerMerge = merge.get_merge(db, merge_id)
    merged = db.get(Customer, record.merged_id)
    assert merged is not None  # the foreign key cascades: a merge never outlives its customers
    rows = audit.history(db, entity_type=service.ENTITY[merged.kind], entity_id=merged.id, limit=200)
    history = [
        {"at": r.at.isoformat(), "actor": r.actor_label, "action": r.action, "changes": r.changes}
        for r in rows
    ]
    base = MergeOut.model_validate(record).model_dump()
    return MergeDetail(**base, merged_customer=CustomerBrief.model_validate(merged), merged_history=history)


@router.post("/merges/{merge_id}/undo", response_model=MergeOut)
def undo_merge(db: DB, user: Merger, merge_id: int) -> MergeOut:
    """Undo a merge: both customers come back exactly as they were before it."""
    merge.undo_merge(db, actor=actor(user), merge_id=merge_id)
    return MergeOut.model_validate(merge.get_merge(db, merge_id))
