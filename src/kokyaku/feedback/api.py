"""REST routes of the feedback domain: surveys and personal links, results, reviews, follow-ups, KPIs."""

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm, can
from kokyaku.config import Settings
from kokyaku.deps import DB, SettingsDep, actor, api_permission
from kokyaku.feedback import followups, results, reviews, scores, surveys
from kokyaku.feedback import service as _service  # noqa: F401  (segment fields, merge participant)
from kokyaku.feedback.models import Survey
from kokyaku.feedback.schemas import (
    Bucket,
    Comment,
    FollowupClose,
    FollowupOut,
    FollowupPage,
    ImportResult,
    InvitationOut,
    InvitationsIn,
    InvitationsOut,
    QuestionOut,
    QuestionResult,
    ResultsOut,
    ReviewLink,
    ReviewOut,
    ReviewPage,
    ReviewsIn,
    Summary,
    SurveyIn,
    SurveyOut,
    SurveyPage,
    SurveyUpdate,
)
from kokyaku.kit.ids import PathId, QueryId

router = APIRouter(prefix="/api/v1", tags=["feedback"])
Reader = Annotated[User, Depends(api_permission(Perm.FEEDBACK_READ))]
Writer = Annotated[User, Depends(api_permission(Perm.FEEDBACK_WRITE))]
Cursor = Annotated[str | None, Query(max_length=500)]
Limit = Annotated[int, Query(ge=1, le=200)]


def base_url(request: Request, settings: Settings) -> str:
    return surveys.base_url_of(settings, str(request.base_url))


def survey_out(session: Session, survey: Survey, base: str, questions: list[Any] | None = None) -> SurveyOut:
    out = SurveyOut.model_validate(survey)
    listed = questions if questions is not None else surveys.questions_of(session, survey.id)
    out.questions = [QuestionOut.model_validate(q) for q in listed]
    out.public_url = surveys.public_url(base, survey)
    return out


# ---------------------------------------------------------------- surveys


@router.get("/surveys", response_model=SurveyPage)
def list_surveys(
    request: Request, db: DB, settings: SettingsDep, _u: Reader, cursor: Cursor = None, limit: Limit = 50
) -> SurveyPage:
    page = surveys.list_surveys(db, cursor=cursor, limit=limit)
    base = base_url(request, settings)
    questions = surveys.questions_of_surveys(db, [s.id for s in page.items])
    return SurveyPage(
        items=[survey_out(db, s, base, questions.get(s.id, [])) for s in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/surveys", response_model=SurveyOut, status_code=201)
def create_survey(request: Request, db: DB, settings: SettingsDep, user: Writer, data: SurveyIn) -> SurveyOut:
    survey = surveys.create_survey(db, actor=actor(user), data=data)
    return survey_out(db, survey, base_url(request, settings))


@router.get("/surveys/{survey_id}", response_model=SurveyOut)
def get_survey(request: Request, db: DB, settings: SettingsDep, _u: Reader, survey_id: PathId) -> SurveyOut:
    return survey_out(db, surveys.get_survey(db, survey_id), base_url(request, settings))


@router.patch("/surveys/{survey_id}", response_model=SurveyOut)
def update_survey(
    request: Request, db: DB, settings: SettingsDep, user: Writer, survey_id: PathId, data: SurveyUpdate
) -> SurveyOut:
    survey = surveys.update_survey(db, actor=actor(user), survey_id=survey_id, data=data)
    return survey_out(db, survey, base_url(request, settings))


@router.post("/surveys/{survey_id}/copy", response_model=SurveyOut, status_code=201)
def copy_survey(
    request: Request, db: DB, settings: SettingsDep, user: Writer, survey_id: PathId
) -> SurveyOut:
    survey = surveys.copy_survey(db, actor=actor(user), survey_id=survey_id)
    return survey_out(db, survey, base_url(request, settings))


@router.delete("/surveys/{survey_id}", status_code=204)
def delete_survey(db: DB, user: Writer, survey_id: PathId) -> Response:
    surveys.delete_survey(db, actor=actor(user), survey_id=survey_id)
    return Response(status_code=204)


@router.post("/surveys/{survey_id}/invitations", response_model=InvitationsOut, status_code=201)
def invite(
    request: Request, db: DB, settings: SettingsDep, user: Writer, survey_id: PathId, data: InvitationsIn
) -> InvitationsOut:
    """Personal links (channel `link`: returned to copy; `email`: also emailed after commit)."""
    done = surveys.invite(
        db, settings, actor=actor(user), survey_id=survey_id, data=data, base_url=base_url(request, settings)
    )
    items = [
        InvitationOut(
            id=i.id,
            customer_id=i.customer_id,
            channel=i.channel,
            url=url,
            sent_at=i.sent_at,
            expires_at=i.expires_at,
            used_at=i.used_at,
        )
        for i, url in done.created
    ]
    return InvitationsOut(created=len(items), emailed=done.emailed, skipped=done.skipped, invitations=items)


def _bucket(group: results.Group) -> Bucket:
    s = group.scores
    return Bucket(key=group.key, label=group.key, responses=s.responses, nps=s.nps, csat=s.csat, ces=s.ces)


@router.get("/surveys/{survey_id}/results", response_model=ResultsOut)
def survey_results(
    db: DB,
    settings: SettingsDep,
    _u: Reader,
    survey_id: PathId,
    since: date | None = None,
    until: date | None = None,
    segment_id: QueryId = None,
    unit: Literal["week", "month"] = "month",
) -> ResultsOut:
    """NPS, CSAT, CES, response rate, distributions, trend, breakdowns and the newest comments; `since`
    (inclusive) and `until` (exclusive) are days in the business time zone."""
    survey = surveys.get_survey(db, survey_id)
    questions = surveys.questions_of(db, survey.id)
    f = results.make_filters(db, tz=settings.timezone, since=since, until=until, segment_id=segment_id)
    r = results.survey_results(db, survey.id, questions, tz=settings.timezone, filters=f, unit=unit)
    page = results.comments(db, survey.id, filters=f if f.active else None)
    return ResultsOut(
        survey_id=survey.id,
        responses=r.scores.responses,
        invitations=r.invitations,
        invited_responses=r.invited_responses,
        response_rate=r.response_rate,
        nps=r.scores.nps,
        promoters=r.scores.promoters,
        passives=r.scores.passives,
        detractors=r.scores.detractors,
        nps_distribution={str(k): v for k, v in sorted(r.nps_distribution.items())},
        csat=r.scores.csat,
        csat_distribution={str(k): v for k, v in sorted(r.csat_distribution.items())},
        ces=r.scores.ces,
        ces_distribution={str(k): v for k, v in sorted(r.ces_distribution.items())},
        trend=[_bucket(g) for g in r.trend],
        by_channel=[_bucket(g) for g in r.by_channel],
        by_lifecycle=[_bucket(g) for g in r.by_lifecycle],
        questions=[
            QuestionResult(
                question_id=q.question.id,
                kind=q.question.kind,
                text=q.question.text_en,
                counts={str(k): v for k, v in sorted(q.counts.items())},
            )
            for q in r.questions
        ],
        comments=[Comment(**c.__dict__) for c in page.items],
    )


@router.get("/feedback/nps", response_model=Summary)
def nps(db: DB, _u: Reader, since: date | None = None, until: date | None = None) -> Summary:
    """NPS over every survey on local days [since, until) (the KPI board)."""
    return scores.nps_summary(db, since, until)


@router.get("/feedback/csat", response_model=Summary)
def csat(db: DB, _u: Reader, since: date | None = None, until: date | None = None) -> Summary:
    """CSAT % over every survey on local days [since, until)."""
    return scores.csat_summary(db, since, until)


# ---------------------------------------------------------------- reviews


@router.post("/reviews", response_model=ImportResult)
def import_reviews(
    request: Request, db: DB, settings: SettingsDep, user: Writer, data: ReviewsIn
) -> ImportResult:
    """Create or update a batch of reviews, identified by (source, external_id): sending the same batch again
    changes nothing. All or nothing: an invalid review is named by its index and nothing is written."""
    return reviews.import_reviews(
        db, settings, actor=actor(user), reviews=data.reviews, base_url=base_url(request, settings)
    )


@router.get("/reviews", response_model=ReviewPage)
def list_reviews(
    db: DB,
    _u: Reader,
    source: Annotated[str | None, Query(max_length=20)] = None,
    alert: bool | None = None,
    sentiment: Literal["positive", "neutral", "negative"] | None = None,
    customer_id: QueryId = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ReviewPage:
    page = reviews.list_reviews(
        db,
        source=source,
        alert=alert,
        sentiment=sentiment,
        customer_id=customer_id,
        cursor=cursor,
        limit=limit,
    )
    return ReviewPage(items=[ReviewOut.model_validate(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/reviews/{review_id}", response_model=ReviewOut)
def get_review(db: DB, _u: Reader, review_id: PathId) -> ReviewOut:
    return ReviewOut.model_validate(reviews.get_review(db, review_id))


@router.post("/reviews/{review_id}/acknowledge", response_model=ReviewOut)
def acknowledge(db: DB, user: Writer, review_id: PathId) -> ReviewOut:
    return ReviewOut.model_validate(reviews.acknowledge(db, actor=actor(user), review_id=review_id))


@router.put("/reviews/{review_id}/customer", response_model=ReviewOut)
def link_review(
    request: Request, db: DB, settings: SettingsDep, user: Writer, review_id: PathId, data: ReviewLink
) -> ReviewOut:
    review = reviews.link_customer(
        db,
        settings,
        actor=actor(user),
        review_id=review_id,
        customer_id=data.customer_id,
        base_url=base_url(request, settings),
    )
    return ReviewOut.model_validate(review)


# ---------------------------------------------------------------- follow-ups


@router.get("/followups", response_model=FollowupPage)
def list_followups(
    db: DB,
    user: Reader,
    mine: bool = True,
    status: Literal["open", "closed", "all"] = "open",
    customer_id: QueryId = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> FollowupPage:
    """Follow-up tasks, soonest due first: by default the caller's open ones."""
    page = followups.list_followups(
        db,
        owner_id=user.id if mine else None,
        status=None if status == "all" else status,
        customer_id=customer_id,
        cursor=cursor,
        limit=limit,
    )
    return FollowupPage(
        items=[FollowupOut.model_validate(t) for t in page.items], next_cursor=page.next_cursor
    )


@router.post("/followups/{followup_id}/close", response_model=FollowupOut)
def close_followup(db: DB, user: Reader, followup_id: PathId, data: FollowupClose) -> FollowupOut:
    """Close a task with what was done (owners close their own; feedback writers any)."""
    task = followups.close_followup(
        db,
        actor=actor(user),
        user=user,
        followup_id=followup_id,
        resolution=data.resolution,
        any_owner=can(user.role, Perm.FEEDBACK_WRITE),
    )
    return FollowupOut.model_validate(task)
