"""Event ingestion through the real API: validation per event, idempotency, resolution and stitching."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kokyaku.customers.models import Customer, Identity
from kokyaku.db import Database
from kokyaku.timeline.models import TimelineEntry, Touchpoint
from tests.customers.factories import make_customer

AT = "2026-03-01T10:00:00+09:00"


def _event(event_id: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "page_view", "at": AT, **fields}


def _count(db: Database, model: Any) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_mixed_batch_stores_valid_events_and_names_each_bad_field(
    api, db: Database, session: Session
) -> None:
    taro = make_customer(session, emails=["taro@example.jp"])
    session.commit()
    batch = [
        _event("e1", email="TARO@example.jp", channel="email", summary="Opened the spring newsletter"),
        _event("e2", email="not-an-email"),
        {"event_id": "e3", "type": "page_view", "at": "2026-03-01T10:00:00", "anonymous_id": "a1"},
        _event("e4", anonymous_id="a1", channel="carrier-pigeon"),
        {"type": "page_view", "at": AT, "anonymous_id": "a1"},
        _event("e6"),
        "not an object",
        _event("e8", phone="090-1234-5678", properties={"url": "/shop"}),
    ]
    resp = api.post("/api/v1/events", json={"events": batch})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == [
        "created",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "created",
    ]
    assert [r["index"] for r in body["results"]] == list(range(8))
    fields = {r["index"]: [e["field"] for e in r["errors"]] for r in body["results"] if r["errors"]}
    assert fields == {1: ["email"], 2: ["at"], 3: ["channel"], 4: ["event_id"], 5: ["email"], 6: ["event"]}
    assert "zone" in body["results"][2]["errors"][0]["message"]
    assert body["results"][0]["customer_id"] == taro.id
    assert body["counts"]["created"] == 2 and body["counts"]["invalid"] == 6
    # the phone number was unknown: a prospect named after it now holds the event
    prospect_id = body["results"][7]["customer_id"]
    assert prospect_id != taro.id
    with db.session(write=False) as s:
        prospect = s.get(Customer, prospect_id)
        assert prospect is not None and prospect.name == "+819012345678" and prospect.source == "events"
        tp = s.scalar(select(Touchpoint).where(Touchpoint.source_event_id == "e1"))
        assert tp is not None and tp.customer_id == taro.id and tp.channel == "email"
        entry = s.scalar(select(TimelineEntry).where(TimelineEntry.ref_id == tp.id))
        assert entry is not None and entry.summary == "Opened the spring newsletter"
    assert _count(db, Touchpoint) == 2


def test_same_batch_twice_is_all_duplicates_and_stores_nothing_new(api, db: Database) -> None:
    batch = [_event(f"d{i}", anonymous_id=f"visitor-{i % 3}") for i in range(10)]
    first = api.post("/api/v1/events", json={"events": batch}).json()
    assert first["counts"]["created"] == 10
    counts = (_count(db, Touchpoint), _count(db, TimelineEntry), _count(db, Customer), _count(db, Identity))
    again = api.post("/api/v1/events", json={"events": batch}).json()
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 10
    assert [r["customer_id"] for r in again["results"]] == [r["customer_id"] for r in first["results"]]
    assert (
        _count(db, Touchpoint),
        _count(db, TimelineEntry),
        _count(db, Customer),
        _count(db, Identity),
    ) == counts
    assert again["counts"] == {**again["counts"], "created": 0, "duplicate": 10, "prospects_created": 0}


def test_repeated_event_id_within_a_batch_is_stored_once(api, db: Database) -> None:
    batch = [_event("r1", email="hanako@example.jp"), _event("r1", email="hanako@example.jp")]
    body = api.post("/api/v1/events", json={"events": batch}).json()
    assert [r["status"] for r in body["results"]] == ["created", "duplicate"]
    assert body["results"][0]["customer_id"] == body["results"][1]["customer_id"]
    assert _count(db, Touchpoint) == 1


def test_unknown_keys_create_one_prospect_per_person(api, db: Database, settings) -> None:
    batch = [
        _event("p1", anonymous_id="anon-1"),
        _event("p2", anonymous_id="anon-1"),
        _event("p3", email="new@example.com", external_id="C-9", source="shopify"),
    ]
    body = api.post("/api/v1/events", json={"events": batch}).json()
    ids = [r["customer_id"] for r in body["results"]]
    assert ids[0] == ids[1] != ids[2]
    assert body["counts"]["prospects_created"] == 2
    with db.session(write=False) as s:
        anon = s.get(Customer, ids[0])
        known = s.get(Customer, ids[2])
        assert anon is not None and known is not None
        assert anon.name in ("Anonymous visitor", "匿名の訪問者")
        assert known.name == "new@example.com" and known.email == "new@example.com"
        keys = set(
            s.execute(
                select(Identity.kind, Identity.value, Identity.source).where(Identity.customer_id == known.id)
            )
        )
        assert keys == {("email", "new@example.com", None), ("external", "C-9", "shopify")}


def test_anonymous_then_email_stitches_histories_into_one_customer(
    api, db: Database, session: Session
) -> None:
    hanako = make_customer(session, name="佐藤 花子", emails=["hanako@example.jp"])
    session.commit()
    first = api.post("/api/v1/events", json={"events": [
        _event("s1", anonymous_id="browser-42", properties={"url": "/products/1"}),
        _event("s2", anonymous_id="browser-42", properties={"url": "/cart"}),
    ]}).json()  # fmt: skip
    visitor = first["results"][0]["customer_id"]
    assert visitor != hanako.id
    second = api.post("/api/v1/events", json={"events": [
        _event("s3", anonymous_id="browser-42", email="hanako@example.jp", type="login"),
    ]}).json()  # fmt: skip
    assert second["results"][0]["customer_id"] == hanako.id
    assert second["counts"]["customers_merged"] == 1
    timeline = api.get(f"/api/v1/customers/{hanako.id}/timeline").json()["items"]
    assert {e["properties"].get("type") for e in timeline if e["kind"] == "touchpoint"} == {
        "page_view",
        "login",
    }
    assert sum(e["kind"] == "touchpoint" for e in timeline) == 3
    with db.session(write=False) as s:
        owner = s.scalar(
            select(Identity.customer_id).where(Identity.kind == "anonymous", Identity.value == "browser-42")
        )
        assert owner == hanako.id
    # the anonymous id now leads straight to Hanako
    third = api.post("/api/v1/events", json={"events": [_event("s4", anonymous_id="browser-42")]}).json()
    assert third["results"][0]["customer_id"] == hanako.id


def test_stitching_within_one_batch_needs_no_merge(api, db: Database) -> None:
    body = api.post("/api/v1/events", json={"events": [
        _event("b1", anonymous_id="tab-7"),
        _event("b2", email="kenji@example.jp"),
        _event("b3", anonymous_id="tab-7", email="kenji@example.jp"),
    ]}).json()  # fmt: skip
    ids = {r["customer_id"] for r in body["results"]}
    assert len(ids) == 1
    assert body["counts"]["prospects_created"] == 1 and body["counts"]["customers_merged"] == 0
    with db.session(write=False) as s:
        c = s.get(Customer, ids.pop())
        assert c is not None and c.name == "kenji@example.jp"


def test_two_known_customers_are_never_merged_by_an_event(api, db: Database, session: Session) -> None:
    a = make_customer(session, name="A", emails=["a@example.jp"])
    b = make_customer(session, name="B", phones=["090-1111-2222"])
    session.commit()
    body = api.post(
        "/api/v1/events", json={"events": [_event("k1", email="a@example.jp", phone="09011112222")]}
    ).json()
    assert body["results"][0]["customer_id"] == a.id
    assert _count(db, Customer) == 2
    with db.session(write=False) as s:
        assert s.scalar(select(Identity.customer_id).where(Identity.kind == "phone")) == b.id


def test_oversize_batch_is_refused_and_nothing_stored(api, db: Database) -> None:
    batch = [_event(f"o{i}", anonymous_id="x") for i in range(1001)]
    resp = api.post("/api/v1/events", json={"events": batch})
    assert resp.status_code == 413
    assert resp.json()["error"] == "batch_too_large"
    assert "1000" in str(resp.json()["detail"])
    assert _count(db, Touchpoint) == 0


def test_malformed_bodies_get_clear_errors(api) -> None:
    resp = api.post("/api/v1/events", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "body"
    resp = api.post("/api/v1/events", json={"evnts": []})
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "events"
    resp = api.post("/api/v1/events", json={"events": []})
    assert resp.status_code == 200 and resp.json()["results"] == []


def test_future_times_are_invalid(api) -> None:
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    body = api.post("/api/v1/events", json={"events": [_event("f1", anonymous_id="x", at=later)]}).json()
    assert body["results"][0]["status"] == "invalid"
    assert body["results"][0]["errors"][0]["field"] == "at"


def test_viewer_cannot_post_events(api_as, db: Database) -> None:
    viewer = api_as("viewer").client
    resp = viewer.post("/api/v1/events", json={"events": [_event("v1", anonymous_id="x")]})
    assert resp.status_code == 403
    assert _count(db, Touchpoint) == 0
    marketing = api_as("marketing").client
    assert (
        marketing.post("/api/v1/events", json={"events": [_event("v1", anonymous_id="x")]}).status_code == 200
    )


def test_a_refused_stitch_keeps_the_batch(api, db: Database, session: Session) -> None:
    # A visitor who types the company's address: a person cannot be merged into a company.
    company = make_customer(
        session, name="株式会社テスト", name_kana=None, kind="company", emails=["info@test.co.jp"]
    )
    session.commit()
    first = api.post("/api/v1/events", json={"events": [_event("c1", anonymous_id="kiosk-1")]}).json()
    visitor = first["results"][0]["customer_id"]
    body = api.post("/api/v1/events", json={"events": [
        _event("c2", anonymous_id="kiosk-1", email="info@test.co.jp"), _event("c3", anonymous_id="kiosk-9"),
    ]}).json()  # fmt: skip
    assert [r["status"] for r in body["results"]] == ["created", "created"]
    assert body["results"][0]["customer_id"] == company.id and body["counts"]["customers_merged"] == 0
    with db.session(write=False) as s:
        assert s.get(Customer, visitor) is not None
        assert s.scalar(select(func.count()).select_from(Touchpoint)) == 3
