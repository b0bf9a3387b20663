"""REST routes: segments (CRUD, count, members, preview, freeze, export, size history, fields), the RFM
summary with on-demand recomputation, and a customer's lifecycle journey."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.customers import service as customers
from kokyaku.db import utcnow
from kokyaku.deps import DB, SettingsDep, actor, api_permission
from kokyaku.i18n import gettext
from kokyaku.jobs.service import enqueue
from kokyaku.segments import rules as R
from kokyaku.segments import service
from kokyaku.segments.labels import value_label
from kokyaku.segments.recompute import latest_run
from kokyaku.segments.rfm import RFM_SEGMENTS, SEGMENT_GRID, SEGMENT_INFO
from kokyaku.segments.schemas import (
    CountOut,
    FieldOut,
    FreezeIn,
    LifecycleOut,
    MemberOut,
    MemberPage,
    PreviewOut,
    RecomputeOut,
    RfmCell,
    RfmScores,
    RfmSegmentOut,
    RfmSummary,
    RulesIn,
    SegmentIn,
    SegmentOut,
    SegmentPage,
    SegmentUpdate,
    SizePoint,
    StageChangeOut,
)
from kokyaku.segments.tasks import RECOMPUTE

router = APIRouter(prefix="/api/v1", tags=["segments"])
Reader = Annotated[User, Depends(api_permission(Perm.SEGMENTS_READ))]
Writer = Annotated[User, Depends(api_permission(Perm.SEGMENTS_WRITE))]
Cursor = Annotated[str | None, Query(max_length=200)]
Limit = Annotated[int, Query(ge=1, le=500)]


def field_list(session: Session, tz: str) -> list[FieldOut]:
    """Every field a rule may use, with its operators and allowed values (custom fields included)."""
    ctx = service.context(session, tz)
    specs = list(R.FIELDS.values()) + [
        R.custom_field_spec(key, kind, choices) for key, (kind, choices) in ctx.custom.items()
    ]
    return [
        FieldOut(
            key=s.key,
            label=s.label,
            category=s.category,
            kind=s.kind,
            operators=list(s.allowed_operators()),
            choices=list(s.choices()) if s.choices else None,
            unit=s.unit,
            days=s.days,
            minimum=s.minimum,
            maximum=s.maximum,
        )  # fmt: skip
        for s in specs
    ]


def describe(session: Session, raw: Any, tz: str, locale: str = "en") -> str:
    """The rules in words (English for the API, the user's language on the pages)."""
    return R.describe(
        raw,
        service.context(session, tz),
        lambda msg: gettext(locale, msg),
        lambda spec, v: value_label(spec, v, locale),
    )


@router.get("/segments", response_model=SegmentPage)
def list_segments(db: DB, _user: Reader, cursor: Cursor = None, limit: Limit = 50) -> SegmentPage:
    page = service.list_segments(db, cursor=cursor, limit=limit)
    return SegmentPage(items=[SegmentOut.model_validate(s) for s in page.items], next_cursor=page.next_cursor)


@router.post("/segments", response_model=SegmentOut, status_code=201)
def create_segment(db: DB, user: Writer, settings: SettingsDep, body: SegmentIn) -> SegmentOut:
    """Save a segment. A `static` one is frozen at once: its members are the current matches."""
    segment = service.create_segment(db, actor=actor(user), data=body, tz=settings.timezone)
    return SegmentOut.model_validate(segment)


@router.get("/segments/fields", response_model=list[FieldOut])
def fields(db: DB, _user: Reader, settings: SettingsDep) -> list[FieldOut]:
    return field_list(db, settings.timezone)


@router.post("/segments/preview", response_model=PreviewOut)
def preview(db: DB, _user: Reader, settings: SettingsDep, body: RulesIn) -> PreviewOut:
    """Count and sample an unsaved definition (what the builder shows while you edit)."""
    compiled = service.compile_rules(db, body.rules, settings.timezone)
    sample = service.members_of(db, compiled, limit=10).items
    return PreviewOut(
        count=service.count_compiled(db, compiled),
        sample=[MemberOut.model_validate(c) for c in sample],
        description=describe(db, body.rules, settings.timezone),
    )


@router.get("/segments/{segment_id}", response_model=SegmentOut)
def get_segment(db: DB, _user: Reader, segment_id: int) -> SegmentOut:
    return SegmentOut.model_validate(service.get_segment(db, segment_id))


@router.patch("/segments/{segment_id}", response_model=SegmentOut)
def update_segment(
    db: DB, user: Writer, settings: SettingsDep, segment_id: int, body: SegmentUpdate
) -> SegmentOut:
    segment = service.update_segment(
        db, actor=actor(user), segment_id=segment_id, data=body, tz=settings.timezone
    )
    return SegmentOut.model_validate(segment)


@router.delete("/segments/{segment_id}", status_code=204)
def delete_segment(db: DB, user: Writer, segment_id: int) -> Response:
    service.delete_segment(db, actor=actor(user), segment_id=segment_id)
    return Response(status_code=204)


@router.get("/segments/{segment_id}/count", response_model=CountOut)
def count(db: DB, _user: Reader, settings: SettingsDep, segment_id: int) -> CountOut:
    """The current number of members (dynamic segments are evaluated now)."""
    segment = service.get_segment(db, segment_id)
    return CountOut(count=service.count_segment(db, segment, settings.timezone), counted_at=utcnow())


@router.get("/segments/{segment_id}/members", response_model=MemberPage)
def members(
    db: DB, _user: Reader, settings: SettingsDep, segment_id: int, cursor: Cursor = None, limit: Limit = 50
) -> MemberPage:
    """Members in id order; pass `next_cursor` back as `cursor` for the next page."""
    segment = service.get_segment(db, segment_id)
    page = service.members(db, segment, settings.timezone, cursor=cursor, limit=limit)
    return MemberPage(items=[MemberOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/segments/{segment_id}/history", response_model=list[SizePoint])
def history(
    db: DB, _user: Reader, segment_id: int, days: Annotated[int, Query(ge=1, le=3660)] = 90
) -> list[SizePoint]:
    segment = service.get_segment(db, segment_id)
    points = service.size_history(db, [segment.id], days)[segment.id]
    return [SizePoint(day=d, size=n) for d, n in points]


@router.post("/segments/{segment_id}/freeze", response_model=SegmentOut, status_code=201)
def freeze(
    db: DB, user: Writer, settings: SettingsDep, segment_id: int, body: FreezeIn | None = None
) -> SegmentOut:
    """A static snapshot (a new segment) of a dynamic segment's current members."""
    snapshot = service.freeze_segment(
        db, actor=actor(user), segment_id=segment_id, tz=settings.timezone, name=body.name if body else None
    )
    return SegmentOut.model_validate(snapshot)


def rfm_summary(session: Session) -> RfmSummary:
    run = latest_run(session)
    summary = run.summary if run else {}
    cells = {(r, f): (n, rev) for r, f, n, rev in summary.get("grid", [])}
    grid = [
        RfmCell(
            r=r,
            f=f,
            segment=SEGMENT_GRID[r - 1][f - 1],
            customers=cells.get((r, f), (0, 0))[0],
            revenue=cells.get((r, f), (0, 0))[1],
        )  # fmt: skip
        for r in range(5, 0, -1)
        for f in range(1, 6)
    ]
    per_segment = summary.get("segments", {})
    segments = [
        RfmSegmentOut(
            key=key,
            label=SEGMENT_INFO[key][0],
            meaning=SEGMENT_INFO[key][1],
            customers=per_segment.get(key, [0, 0])[0],
            revenue=per_segment.get(key, [0, 0])[1],
        )  # fmt: skip
        for key in RFM_SEGMENTS
    ]
    return RfmSummary(
        computed_at=run.finished_at if run else None,
        customers=run.customers if run else 0,
        active=run.active if run else 0,
        grid=grid,
        segments=segments,
        bounds=summary.get("bounds", {}),
    )


@router.get("/rfm", response_model=RfmSummary, tags=["rfm"])
def rfm(db: DB, _user: Reader) -> RfmSummary:
    """The R x F grid (customers and revenue per cell), the named segments and the score boundaries of the
    latest recomputation."""
    return rfm_summary(db)


@router.post("/rfm/recompute", response_model=RecomputeOut, status_code=202, tags=["rfm"])
def recompute(db: DB, user: Writer) -> RecomputeOut:
    """Queue an RFM + lifecycle recomputation now (one at a time: a queued one is returned again)."""
    job = enqueue(db, kind=RECOMPUTE, payload={"trigger": "manual"}, dedupe_key=RECOMPUTE, actor=actor(user))
    return RecomputeOut(job_id=job.id, status=job.status)


@router.get("/customers/{customer_id}/lifecycle", response_model=LifecycleOut, tags=["rfm"])
def customer_lifecycle(db: DB, _user: Reader, customer_id: int) -> LifecycleOut:
    """The customer's current lifecycle stage, stage history (newest first) and RFM scores."""
    customers.get_customer(db, customer_id)
    j = service.journey(db, customer_id)
    return LifecycleOut(
        customer_id=customer_id,
        stage=j.stage,
        since=j.since,
        rfm=RfmScores(r=j.rfm.r, f=j.rfm.f, m=j.rfm.m, segment=j.rfm.segment, computed_at=j.rfm.computed_at)
        if j.rfm
        else None,
        history=[
            StageChangeOut(stage=h.stage, from_stage=h.from_stage, changed_at=h.changed_at) for h in j.history
        ],
    )
