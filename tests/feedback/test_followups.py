"""The closed loop: a negative review or a detractor's answer becomes a follow-up for the customer's owner
(emailed through a real SMTP server), the owner sees it with the customer's context, and closing it is
written to the customer's timeline and the audit log."""

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.audit.models import AuditEntry
from kokyaku.auth.models import User
from kokyaku.commerce.models import Order
from kokyaku.config import Settings
from kokyaku.db import Database
from kokyaku.feedback.models import Followup
from kokyaku.timeline.models import TimelineEntry
from tests.conftest import csrf_of, make_user
from tests.customers.factories import make_customer
from tests.feedback.conftest import Inbox, run_mail_jobs
from tests.feedback.factories import answer, make_survey


def _owner_and_customer(
    db: Database, settings: Settings, session: Session, *, locale: str = "ja"
) -> tuple[User, int]:
    owner = make_user(db, settings, role="sales", email="owner@example.com", locale=locale)
    customer = make_customer(
        session,
        name="伊藤 さくら",
        name_kana="イトウ サクラ",
        emails=["sakura@example.com"],
        owner_id=owner.id,
    )
    session.add(
        Order(
            customer_id=customer.id,
            channel="store",
            status="paid",
            total=12800,
            currency="JPY",
            ordered_at=datetime(2026, 2, 1, 3, tzinfo=UTC),
        )
    )
    session.commit()
    return owner, customer.id


def test_negative_review_becomes_a_followup_for_the_owner_with_an_email(
    mail_app, db: Database, session: Session, mail_settings: Settings, smtp: Inbox
) -> None:  # type: ignore[no-untyped-def]
    owner, customer_id = _owner_and_customer(db, mail_settings, session)
    from kokyaku.auth import service as auth

    with db.session() as s:
        _row, token = auth.create_token(s, actor=auth.actor_of(owner), user=s.get(User, owner.id))
    admin = make_user(db, mail_settings, role="marketing", email="mk@example.com")
    with db.session() as s:
        _row, mk_token = auth.create_token(s, actor=auth.actor_of(admin), user=s.get(User, admin.id))
    api = TestClient(mail_app, headers={"Authorization": f"Bearer {mk_token}"})
    review = {
        "source": "google",
        "external_id": "neg-1",
        "rating": 1,
        "title": "がっかり",
        "text": "店員の態度が悪く、二度と行きません。",
        "posted_at": "2026-04-01T10:00:00+09:00",
        "customer_email": "sakura@example.com",
    }
    result = api.post("/api/v1/reviews", json={"reviews": [review]}).json()
    assert (result["linked"], result["alerts"], result["followups"]) == (1, 1, 1)
    again = api.post("/api/v1/reviews", json={"reviews": [{**review, "text": review["text"] + "！"}]}).json()
    assert again["followups"] == 0  # one task per review, however often it is imported
    with db.session(write=False) as s:
        (task,) = s.scalars(select(Followup)).all()
        assert (task.customer_id, task.owner_id, task.source_type, task.status) == (
            customer_id,
            owner.id,
            "review",
            "open",
        )
    assert smtp.messages == []
    assert run_mail_jobs(db) == {"succeeded": 1}
    (mail,) = smtp.messages
    assert mail["To"] == "owner@example.com" and "伊藤 さくら" in mail["Subject"]
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "店員の態度が悪く" in text and f"/followups/{task.id}" in text
    mine = TestClient(mail_app, headers={"Authorization": f"Bearer {token}"}).get("/api/v1/followups").json()
    assert [t["id"] for t in mine["items"]] == [task.id]


def test_detractor_answer_goes_to_the_default_owner_when_the_customer_has_none(
    db: Database, session: Session, settings: Settings
) -> None:
    lead = make_user(db, settings, role="support", email="lead@example.com")
    with_default = settings.model_copy(update={"followup_default_owner_id": lead.id})
    survey = make_survey(session)
    nobody = make_customer(session, name="無担当 顧客", name_kana=None)
    happy = make_customer(session, name="満足 顧客", name_kana=None)
    session.flush()
    answer(session, with_default, survey, nps=4, text="高すぎる", customer=nobody)
    answer(session, with_default, survey, nps=9, customer=happy)
    answer(session, with_default, survey, nps=0)  # anonymous: no one to follow up
    session.commit()
    with db.session(write=False) as s:
        tasks = s.scalars(select(Followup)).all()
    assert [(t.customer_id, t.owner_id, t.source_type) for t in tasks] == [(nobody.id, lead.id, "response")]


def test_owner_sees_context_and_closing_is_on_the_timeline(
    page_as, db: Database, session: Session, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    survey = make_survey(session, name="来店アンケート")
    session.commit()
    owner_page = page_as("sales", locale="ja")  # logs in as sales.page@example.com
    with db.session(write=False) as s:
        owner = s.scalar(select(User).where(User.email == "sales.page@example.com"))
    assert owner is not None
    customer = make_customer(session, name="中村 優", name_kana=None, owner_id=owner.id)
    session.add(
        Order(
            customer_id=customer.id,
            channel="online",
            status="paid",
            total=5400,
            currency="JPY",
            ordered_at=datetime(2026, 1, 15, 3, tzinfo=UTC),
        )
    )
    session.flush()
    answer(session, settings, survey, nps=2, text="配送が遅くて困りました。", customer=customer)
    session.commit()
    listing = owner_page.get("/followups")
    assert listing.status_code == 200
    assert (
        "中村 優" in listing.text and "配送が遅くて困りました。" in listing.text and "NPS 2" in listing.text
    )
    assert "来店アンケート" in listing.text and "最近の注文" in listing.text
    assert "5,400" in listing.text  # the last order, in the customer's context
    task_id = int(re.search(r'href="/followups/(\d+)"', listing.text).group(1))  # type: ignore[union-attr]
    page = owner_page.get(f"/followups/{task_id}")
    token = csrf_of(page.text)
    empty = owner_page.post(f"/followups/{task_id}/close", data={"csrf_token": token, "resolution": " "})
    assert empty.status_code == 422 and 'aria-describedby="resolution-err"' in empty.text

    colleague = page_as("support", locale="en")  # a feedback writer may close anyone's task
    closed = owner_page.post(
        f"/followups/{task_id}/close",
        data={"csrf_token": token, "resolution": "お電話でお詫びし、送料を返金しました。"},
    )
    assert closed.status_code == 303
    with db.session(write=False) as s:
        entry = s.scalar(select(TimelineEntry).where(TimelineEntry.kind == "followup_closed"))
        assert entry is not None and entry.customer_id == customer.id
        assert entry.summary == "お電話でお詫びし、送料を返金しました。" and entry.ref_id == task_id
        audit = s.scalar(
            select(AuditEntry).where(AuditEntry.entity_type == "followup", AuditEntry.action == "close")
        )
        assert audit is not None and audit.actor_id == owner.id
    shown = owner_page.get(f"/followups/{task_id}")
    assert 'data-testid="resolution"' in shown.text and 'data-testid="close-form"' not in shown.text
    assert owner_page.get("/followups").text.count('data-testid="followup"') == 0
    again = colleague.post(
        f"/followups/{task_id}/close",
        data={"csrf_token": csrf_of(colleague.get("/followups").text), "resolution": "x"},
    )
    assert again.status_code == 422 and "already been closed" in again.text
    timeline = owner_page.get(f"/customers/{customer.id}")
    assert "お電話でお詫びし" in timeline.text


def test_only_the_owner_or_a_feedback_writer_closes_a_task(
    api_as, db: Database, session: Session, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    owner = api_as("sales")
    survey = make_survey(session)
    customer = make_customer(session, name="小林 翼", name_kana=None, owner_id=owner.user.id)
    session.flush()
    answer(session, settings, survey, nps=1, customer=customer)
    session.commit()
    (task,) = owner.client.get("/api/v1/followups").json()["items"]
    viewer = api_as("viewer")
    assert viewer.client.get("/api/v1/followups", params={"mine": False}).status_code == 200
    refused = viewer.client.post(f"/api/v1/followups/{task['id']}/close", json={"resolution": "done"})
    assert refused.status_code == 403
    assert (
        owner.client.post(f"/api/v1/followups/{task['id']}/close", json={"resolution": ""}).status_code == 422
    )
    done = owner.client.post(f"/api/v1/followups/{task['id']}/close", json={"resolution": "Called back"})
    assert done.status_code == 200 and done.json()["status"] == "closed"
    assert (
        owner.client.post(f"/api/v1/followups/{task['id']}/close", json={"resolution": "x"}).status_code
        == 409
    )
