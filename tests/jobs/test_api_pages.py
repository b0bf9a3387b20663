"""The jobs API and pages: who sees which jobs, cancel and retry, live progress, Japanese and English."""

import threading

from fastapi.testclient import TestClient
from sqlalchemy import update

from kokyaku.audit.service import Actor
from kokyaku.auth.models import User
from kokyaku.config import Settings
from kokyaku.db import Database, utcnow
from kokyaku.jobs.models import Job
from kokyaku.jobs.service import JobContext, enqueue
from kokyaku.jobs.worker import Worker
from tests.conftest import csrf_of


def _enqueue_as(db: Database, user: User | None, **values: object) -> int:
    with db.session() as s:
        job = enqueue(s, kind="test.echo", payload={}, actor=Actor(user.id, user.email) if user else None)
        if values:
            s.execute(update(Job).where(Job.id == job.id).values(**values))
        return job.id


def test_users_see_and_cancel_only_their_own_jobs_managers_all(api_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    viewer, sales, manager = api_as("viewer"), api_as("sales"), api_as("manager")
    mine = _enqueue_as(db, viewer.user)
    theirs = _enqueue_as(db, sales.user)
    system = _enqueue_as(db, None)

    assert [j["id"] for j in viewer.client.get("/api/v1/jobs").json()["items"]] == [mine]
    assert [j["id"] for j in manager.client.get("/api/v1/jobs").json()["items"]] == [system, theirs, mine]
    resp = viewer.client.get(f"/api/v1/jobs/{theirs}")
    assert resp.status_code == 404 and resp.json()["error"] == "job_not_found"
    assert viewer.client.post(f"/api/v1/jobs/{theirs}/cancel").status_code == 404

    resp = viewer.client.post(f"/api/v1/jobs/{mine}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    resp = viewer.client.post(f"/api/v1/jobs/{mine}/cancel")
    assert resp.status_code == 409 and resp.json()["error"] == "job_finished"
    assert manager.client.post(f"/api/v1/jobs/{theirs}/cancel").json()["status"] == "cancelled"

    anonymous = TestClient(viewer.client.app)
    assert anonymous.get("/api/v1/jobs").status_code == 401


def test_a_job_read_shows_its_progress_and_result(api, db: Database) -> None:  # type: ignore[no-untyped-def]
    halfway, finish = threading.Event(), threading.Event()

    def long(ctx: JobContext) -> dict[str, int]:
        ctx.progress(250, 1000, "Importing rows")
        halfway.set()
        finish.wait(10)
        return {"imported": 1000}

    job_id = _enqueue_as(db, None)
    thread = threading.Thread(target=Worker(db, handlers={"test.echo": long}).drain)
    thread.start()
    try:
        assert halfway.wait(10)
        body = api.get(f"/api/v1/jobs/{job_id}").json()
        assert (body["status"], body["progress"], body["progress_total"], body["percent"]) == (
            "running",
            250,
            1000,
            25,
        )
        assert body["message"] == "Importing rows"
    finally:
        finish.set()
        thread.join(10)
    body = api.get(f"/api/v1/jobs/{job_id}").json()
    assert body["status"] == "succeeded" and body["result"] == {"imported": 1000} and body["percent"] == 100


def test_list_is_keyset_paginated_and_filtered(api, db: Database) -> None:  # type: ignore[no-untyped-def]
    ids = [_enqueue_as(db, None) for _ in range(5)]
    _enqueue_as(db, None, status="failed", finished_at=utcnow())
    seen: list[int] = []
    cursor = None
    while True:
        page = api.get(
            "/api/v1/jobs", params={"limit": 2, "status": "queued", **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200
        seen += [j["id"] for j in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(ids, reverse=True)
    assert api.get("/api/v1/jobs", params={"status": "exploded"}).json()["error"] == "validation_error"
    resp = api.get("/api/v1/jobs", params={"cursor": "not-a-cursor"})
    assert resp.status_code == 400 and resp.json()["error"] == "bad_cursor"


def test_retry_runs_a_failed_job_again(api, db: Database) -> None:  # type: ignore[no-untyped-def]
    failed = _enqueue_as(db, None, status="failed", attempts=3, error="ValueError", finished_at=utcnow())
    resp = api.post(f"/api/v1/jobs/{failed}/retry")
    assert resp.status_code == 200
    assert (resp.json()["status"], resp.json()["attempts"], resp.json()["error"]) == ("queued", 0, None)
    resp = api.post(f"/api/v1/jobs/{failed}/retry")
    assert resp.status_code == 409 and resp.json()["error"] == "job_not_retryable"
    assert Worker(db, handlers={"test.echo": lambda ctx: {"ok": True}}).drain() == {"succeeded": 1}


def test_the_jobs_page_polls_while_a_job_is_active_and_stops_after(
    page_as, db: Database, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    page = page_as("sales")
    with db.session() as s:
        sales = s.query(User).filter_by(role="sales").one()
    other = _enqueue_as(db, None)  # not the sales user's: hidden from them
    mine = _enqueue_as(db, sales, status="running", progress=30, progress_total=120, message="Importing rows",
                       locked_by="w", lease_until=utcnow())  # fmt: skip
    html = page.get("/jobs").text
    assert f'href="/jobs/{mine}"' in html and f'href="/jobs/{other}"' not in html
    assert 'hx-trigger="every 2s"' in html
    assert '<progress max="100" value="25"' in html and "Running" in html and "Importing rows" in html

    with db.session() as s:
        s.execute(
            update(Job).where(Job.id == mine).values(status="succeeded", progress=120, finished_at=utcnow())
        )
    partial = page.get("/jobs", headers={"HX-Request": "true"})
    assert partial.text.lstrip().startswith('<div id="jobs-table"') and "every 2s" not in partial.text
    assert "Succeeded" in partial.text
    assert page.get(f"/jobs/{other}").status_code == 404


def test_the_progress_partial_and_the_detail_page(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    page = page_as("manager", locale="ja")
    job_id = _enqueue_as(db, None, status="running", progress=5, progress_total=10, locked_by="w",
                         lease_until=utcnow())  # fmt: skip
    resp = page.get(f"/jobs/{job_id}/progress")
    assert resp.status_code == 200 and "HX-Trigger" not in resp.headers
    assert (
        f'hx-get="/jobs/{job_id}/progress"' in resp.text
        and 'value="5"' in resp.text
        and "実行中" in resp.text
    )
    detail = page.get(f"/jobs/{job_id}").text
    assert "ジョブをキャンセル" in detail and 'id="job-page"' in detail

    with db.session() as s:
        gone = "The worker stopped while running this job."
        s.execute(
            update(Job).where(Job.id == job_id).values(status="failed", finished_at=utcnow(), error=gone)
        )
    resp = page.get(f"/jobs/{job_id}/progress")
    assert "hx-get" not in resp.text and "失敗" in resp.text
    assert "このジョブの実行中にワーカーが停止しました。" in resp.text
    assert '"kokyaku:job-finished"' in resp.headers["HX-Trigger"]
    detail = page.get(f"/jobs/{job_id}").text
    assert "再実行" in detail and "ジョブをキャンセル" not in detail


def test_cancel_and_retry_from_the_page_need_the_csrf_token(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    page = page_as("admin")
    job_id = _enqueue_as(db, None)
    html = page.get(f"/jobs/{job_id}").text
    assert page.post(f"/jobs/{job_id}/cancel", data={}).status_code == 403
    resp = page.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf_of(html)})
    assert resp.status_code == 303 and resp.headers["location"] == f"/jobs/{job_id}"
    html = page.get(f"/jobs/{job_id}").text
    assert "Cancelled" in html and "Run again" in html
    resp = page.post(f"/jobs/{job_id}/retry", data={"csrf_token": csrf_of(html)})
    assert resp.status_code == 303
    assert "Queued" in page.get(f"/jobs/{job_id}").text


def test_the_jobs_page_needs_a_login(app) -> None:  # type: ignore[no-untyped-def]
    resp = TestClient(app, follow_redirects=False).get("/jobs")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
