"""Job pages: the list with live progress, one job's page, and the progress partial other pages include."""

import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from kokyaku.auth.models import User
from kokyaku.auth.permissions import Perm
from kokyaku.deps import DB, actor, check_csrf, page_permission
from kokyaku.jobs import service
from kokyaku.jobs.api import owner_filter
from kokyaku.jobs.models import STATUSES
from kokyaku.web.render import render

router = APIRouter(include_in_schema=False)
Owner = Annotated[User, Depends(page_permission(Perm.JOBS_OWN))]
Csrf = Depends(check_csrf)
PAGE_SIZE = 50


@router.get("/jobs", response_class=HTMLResponse)
def job_list(request: Request, db: DB, user: Owner) -> Response:
    status = request.query_params.get("status")
    status = status if status in STATUSES else None
    cursor = request.query_params.get("cursor") or None
    page = service.list_jobs(db, owner_id=owner_filter(user), status=status, cursor=cursor, limit=PAGE_SIZE)
    creator_ids = {j.created_by for j in page.items if j.created_by}
    creators = (
        {uid: name for uid, name in db.execute(select(User.id, User.name).where(User.id.in_(creator_ids)))}
        if creator_ids
        else {}
    )
    here = urlencode([(k, v) for k, v in (("status", status), ("cursor", cursor)) if v])
    ctx = {
        "page": page,
        "jobs": page.items,
        "labels": {j.kind: service.label_of(j.kind) for j in page.items},
        "creators": creators,
        "status": status,
        "statuses": STATUSES,
        "here": f"/jobs?{here}" if here else "/jobs",
        "next_url": "/jobs?" + urlencode([(k, v) for k, v in (("status", status),) if v] + [
            ("cursor", page.next_cursor or "")]),
        "polling": service.any_active(page.items),
    }  # fmt: skip
    partial = request.headers.get("hx-request") == "true"
    return render(request, "jobs/_table.html" if partial else "jobs/list.html", ctx)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_detail(request: Request, db: DB, user: Owner, job_id: int) -> Response:
    job = service.get_job(db, job_id, owner_id=owner_filter(user))
    creator = db.get(User, job.created_by) if job.created_by else None
    ctx = {"job": job, "label": service.label_of(job.kind), "creator": creator}
    return render(request, "jobs/detail.html", ctx)


@router.get("/jobs/{job_id}/progress", response_class=HTMLResponse)
def job_progress(request: Request, db: DB, user: Owner, job_id: int) -> Response:
    """The live progress block; polled by itself every 2 s while the job is queued or running."""
    job = service.get_job(db, job_id, owner_id=owner_filter(user))
    response = render(request, "jobs/_progress.html", {"job": job})
    if job.finished:
        # The including page may refresh its results: hx-trigger="kokyaku:job-finished from:body".
        response.headers["HX-Trigger"] = json.dumps(
            {"kokyaku:job-finished": {"id": job.id, "status": job.status}}
        )
    return response


@router.post("/jobs/{job_id}/cancel", dependencies=[Csrf])
def cancel(db: DB, user: Owner, job_id: int) -> Response:
    service.cancel(db, job_id, actor=actor(user), owner_id=owner_filter(user))
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/retry", dependencies=[Csrf])
def retry(db: DB, user: Owner, job_id: int) -> Response:
    service.retry(db, job_id, actor=actor(user), owner_id=owner_filter(user))
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)
