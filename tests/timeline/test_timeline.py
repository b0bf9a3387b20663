"""The timeline: constructors write entries, newest first with keyset pages, channel and kind filters, and
touchpoints logged through the API."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.audit.models import AuditEntry
from kokyaku.db import Database
from kokyaku.kit.pagination import BadCursor
from kokyaku.timeline import entries, service
from kokyaku.timeline.models import TimelineEntry
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_each_constructor_writes_one_entry(db: Database, session: Session) -> None:
    c = make_customer(session)
    other = make_customer(session, name="鈴木 一郎", name_kana=None)
    entries.order_placed(
        session, customer_id=c.id, order_id=11, at=T0, channel="online", total=12800, currency="JPY"
    )
    entries.order_status_changed(
        session, customer_id=c.id, order_id=11, at=T0 + timedelta(hours=1), status="shipped", total=12800,
        currency="JPY",
    )  # fmt: skip
    entries.touchpoint_recorded(
        session, customer_id=c.id, touchpoint_id=5, at=T0 + timedelta(hours=2), channel="phone", type="call",
        summary="Asked about delivery",
    )  # fmt: skip
    entries.survey_answered(
        session, customer_id=c.id, response_id=3, at=T0 + timedelta(hours=3), survey_name="NPS 2026", score=9
    )
    entries.customers_merged(
        session,
        customer_id=c.id,
        merged_id=other.id,
        at=T0 + timedelta(hours=4),
        actor_label="sales@example.com",
    )
    entries.bulk_add(session, [
        {"customer_id": c.id, "at": T0 - timedelta(days=1), "kind": "touchpoint", "channel": "web",
         "summary": "x" * 600, "ref_type": "touchpoint", "ref_id": 9, "properties": {"type": "page_view"}},
    ])  # fmt: skip
    session.commit()
    page = service.list_timeline(session, c.id, limit=50)
    kinds = [e.kind for e in page.items]
    assert kinds == [
        "customers_merged", "survey_answered", "touchpoint", "order_status_changed", "order_placed",
        "touchpoint",
    ]  # fmt: skip
    merged, survey, call, status, order, visit = page.items
    assert (order.ref_type, order.ref_id, order.channel) == ("order", 11, "online")
    assert order.properties == {"order_id": 11, "total": 12800, "currency": "JPY"}
    assert status.properties["status"] == "shipped"
    assert (call.channel, call.summary, call.properties) == (
        "phone",
        "Asked about delivery",
        {"type": "call"},
    )
    assert (survey.channel, survey.properties["score"]) == ("web", 9)
    assert (merged.ref_type, merged.ref_id) == ("customer", other.id)
    assert len(visit.summary) == 500 and visit.at == T0 - timedelta(days=1)


def test_naive_times_are_refused(session: Session) -> None:
    c = make_customer(session)
    with pytest.raises(ValueError):
        entries.order_placed(
            session,
            customer_id=c.id,
            order_id=1,
            at=datetime(2026, 1, 1),
            channel="store",
            total=1,
            currency="JPY",
        )


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=6), min_size=0, max_size=40),
    page_size=st.integers(min_value=1, max_value=7),
    channel=st.sampled_from([None, "phone", "web"]),
)
def test_keyset_pages_neither_skip_nor_repeat(db: Database, offsets: list[int], page_size: int,
                                              channel: str | None) -> None:  # fmt: skip
    # Few distinct times, so that many entries tie on `at` and the id must break the tie.
    with db.session() as s:
        c = make_customer(s, name="Page Test", name_kana=None)
        rows = [
            {"customer_id": c.id, "at": T0 + timedelta(minutes=o), "kind": "touchpoint",
             "channel": ("phone", "web")[i % 2], "summary": str(i), "ref_type": None, "ref_id": None,
             "properties": {}}
            for i, o in enumerate(offsets)
        ]  # fmt: skip
        entries.bulk_add(s, rows)
        cid = c.id
    with db.session(write=False) as s:
        stmt = select(TimelineEntry).where(TimelineEntry.customer_id == cid)
        if channel:
            stmt = stmt.where(TimelineEntry.channel == channel)
        expected = [e.id for e in sorted(s.scalars(stmt), key=lambda e: (e.at, e.id), reverse=True)]
        seen: list[int] = []
        cursor = None
        while True:
            page = service.list_timeline(s, cid, channel=channel, cursor=cursor, limit=page_size)
            assert len(page.items) <= page_size
            seen.extend(e.id for e in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == expected


def test_filters_by_channel_and_kind(session: Session) -> None:
    c = make_customer(session)
    entries.order_placed(
        session, customer_id=c.id, order_id=1, at=T0, channel="store", total=500, currency="JPY"
    )
    for i, channel in enumerate(["phone", "email", "phone"]):
        entries.touchpoint_recorded(
            session, customer_id=c.id, touchpoint_id=i, at=T0 + timedelta(days=i), channel=channel,
            type="call", summary="",
        )  # fmt: skip
    session.flush()
    assert [e.channel for e in service.list_timeline(session, c.id, channel="phone").items] == [
        "phone",
        "phone",
    ]
    assert [e.kind for e in service.list_timeline(session, c.id, kind="order_placed").items] == [
        "order_placed"
    ]
    assert service.list_timeline(session, c.id, channel="store", kind="touchpoint").items == []
    assert service.channels_of(session, c.id) == ["email", "phone", "store"]


def test_bad_cursor_is_a_clear_error(session: Session, api) -> None:
    c = make_customer(session)
    session.commit()
    with pytest.raises(BadCursor):
        service.list_timeline(session, c.id, cursor="bm90LWpzb24")
    resp = api.get(f"/api/v1/customers/{c.id}/timeline", params={"cursor": "WyJ4Il0"})
    assert resp.status_code == 400 and resp.json()["error"] == "bad_cursor"


def test_touchpoint_api_records_audits_and_shows_on_timeline(api, db: Database, session: Session) -> None:
    c = make_customer(session)
    session.commit()
    resp = api.post(f"/api/v1/customers/{c.id}/touchpoints", json={
        "channel": "store", "type": "visit", "at": "2026-02-14T15:00:00+09:00",
        "summary": "Tried on the coat", "properties": {"store": "Shibuya"},
    })  # fmt: skip
    assert resp.status_code == 201, resp.text
    tp = resp.json()
    assert tp["at"].startswith("2026-02-14T06:00:00") and tp["properties"] == {"store": "Shibuya"}
    # without a time: now
    assert (
        api.post(
            f"/api/v1/customers/{c.id}/touchpoints", json={"channel": "phone", "type": "call"}
        ).status_code
        == 201
    )
    timeline = api.get(f"/api/v1/customers/{c.id}/timeline").json()
    assert [e["channel"] for e in timeline["items"]] == ["phone", "store"]
    assert (
        timeline["items"][1]["ref_id"] == tp["id"] and timeline["items"][1]["summary"] == "Tried on the coat"
    )
    listed = api.get(f"/api/v1/customers/{c.id}/touchpoints", params={"channel": "store"}).json()
    assert [t["id"] for t in listed["items"]] == [tp["id"]]
    with db.session(write=False) as s:
        row = s.scalar(
            select(AuditEntry).where(AuditEntry.entity_type == "touchpoint", AuditEntry.entity_id == tp["id"])
        )
        assert (
            row is not None
            and row.action == "create"
            and row.changes["summary"] == [None, "Tried on the coat"]
        )


def test_touchpoint_api_errors(api, api_as, session: Session) -> None:
    c = make_customer(session)
    session.commit()
    resp = api.post(f"/api/v1/customers/{c.id}/touchpoints", json={"channel": "fax", "type": "call"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "channel"
    resp = api.post(f"/api/v1/customers/{c.id}/touchpoints",
                    json={"channel": "phone", "type": "call", "at": "2026-02-14T15:00:00"})  # fmt: skip
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "at"
    later = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    resp = api.post(
        f"/api/v1/customers/{c.id}/touchpoints", json={"channel": "phone", "type": "call", "at": later}
    )
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "at"
    assert (
        api.post(
            "/api/v1/customers/999999/touchpoints", json={"channel": "phone", "type": "call"}
        ).status_code
        == 404
    )
    assert api.get("/api/v1/customers/999999/timeline").status_code == 404
    viewer = api_as("viewer").client
    assert (
        viewer.post(
            f"/api/v1/customers/{c.id}/touchpoints", json={"channel": "phone", "type": "call"}
        ).status_code
        == 403
    )
    assert viewer.get(f"/api/v1/customers/{c.id}/timeline").status_code == 200
    assert service.list_timeline(session, c.id).items == []


def test_record_touchpoint_service(session: Session) -> None:
    from kokyaku.timeline.schemas import TouchpointIn

    c = make_customer(session)
    tp = service.record_touchpoint(
        session,
        actor=TEST_ACTOR,
        customer_id=c.id,
        data=TouchpointIn(channel="chat", type="chat", summary=" 在庫確認 "),
    )
    assert tp.summary == "在庫確認"
    assert service.list_touchpoints(session, c.id).items == [tp]


def test_merge_moves_timeline_and_undo_moves_it_back(session: Session) -> None:
    from kokyaku.customers.merge import merge_customers, undo_merge
    from kokyaku.timeline.schemas import TouchpointIn

    keep = make_customer(session, name="山田 太郎", emails=["taro@example.jp"])
    dup = make_customer(session, name="山田 太郎", name_kana=None, phones=["090-1234-5678"])
    entries.order_placed(
        session, customer_id=keep.id, order_id=1, at=T0, channel="store", total=100, currency="JPY"
    )
    tp = service.record_touchpoint(
        session, actor=TEST_ACTOR, customer_id=dup.id, data=TouchpointIn(channel="phone", type="call", at=T0)
    )
    session.flush()
    record = merge_customers(session, actor=TEST_ACTOR, survivor_id=keep.id, merged_id=dup.id)
    kinds = [e.kind for e in service.list_timeline(session, keep.id).items]
    assert sorted(kinds) == ["customers_merged", "order_placed", "touchpoint"]
    assert service.list_timeline(session, dup.id).items == []
    assert [t.id for t in service.list_touchpoints(session, keep.id).items] == [tp.id]
    undo_merge(session, actor=TEST_ACTOR, merge_id=record.id)
    assert [e.kind for e in service.list_timeline(session, dup.id).items] == ["touchpoint"]
    assert [t.id for t in service.list_touchpoints(session, dup.id).items] == [tp.id]
    assert "touchpoint" not in [e.kind for e in service.list_timeline(session, keep.id).items]
