"""REST routes for jobs: list, read (with progress), cancel and retry."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm, can
from kokyaku.deps import DB, actor, api_permission
from kokyaku.jobs import service
from kokyaku.jobs.schemas import JobOut, JobPage

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
Owner = Annotated[User, Depends(api_permission(Perm.JOBS_OWN))]


def owner_filter(user: User) -> int | None:
    """None (every job) for managers and admins; otherwise only the user's own jobs."""
    return None if can(user.role, Perm.JOBS_ALL) else user.id


@router.get("", response_model=JobPage)
def list_jobs(
    db: DB,
    user: Owner,
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobPage:
    page = service.list_jobs(
        db, owner_id=owner_filter(user), status=status, kind=kind, cursor=cursor, limit=limit
    )
    return JobPage(items=[JobOut.of(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut)
def get_job(db: DB, user: Owner, job_id: int) -> JobOut:
    return JobOut.of(service.get_job(db, job_id, owner_id=owner_filter(user)))


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(db: DB, user: Owner, job_id: int) -> JobOut:
    """Cancel a queued job; a running one is asked to stop at its next step."""
    return JobOut.of(service.cancel(db, job_id, actor=actor(user), owner_id=owner_filter(user)))


@router.post("/{job_id}/retry", response_model=JobOut)
def retry_job(db: DB, user: Owner, job_id: int) -> JobOut:
    """Run a failed or cancelled job again, from its last checkpoint."""
    return JobOut.of(service.retry(db, job_id, actor=actor(user), owner_id=owner_filter(user)))
