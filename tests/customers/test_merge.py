"""Merging customers and undoing it: every row follows the survivor, the merged customer leaves the lists,
and undo gives both customers back exactly as they were."""

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

from kokyaku.audit.models import AuditEntry
from kokyaku.commerce.models import CustomerMetrics, Order
from kokyaku.customers import merge, search_index, service
from kokyaku.customers.merge_models import CustomerMerge
from kokyaku.customers.models import Customer, Identity, Interest
from kokyaku.customers.schemas import CustomerUpdate
from kokyaku.db import Database
from kokyaku.timeline import service as timeline
from kokyaku.timeline.models import TimelineEntry, Touchpoint
from kokyaku.timeline.schemas import TouchpointIn
from tests.commerce.factories import make_order
from tests.conftest import TEST_ACTOR, csrf_of
from tests.customers.factories import make_customer

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def _pair(s: Session) -> tuple[int, int]:
    """A survivor with little data and a duplicate with more: orders, a touchpoint, address, birthday."""
    a = make_customer(s, name="山田 太郎", name_kana="ヤマダ タロウ", emails=["taro@example.jp"],
                      interests=["旅行"])  # fmt: skip
    b = make_customer(
        s, name="山田太郎", name_kana=None, emails=["t.yamada@example.com", "taro.work@example.com"],
        phones=["090-1234-5678"], birthday=date(1980, 1, 2), gender="male", postal_code="1500001",
        prefecture="東京都", city="渋谷区", street="神宮前1-2-3", interests=["旅行", "ワイン"], note="VIP",
    )  # fmt: skip
    make_order(s, customer_id=a.id, at=T0, price=1000)
    make_order(s, customer_id=b.id, at=T0.replace(month=4), price=5000)
    make_order(s, customer_id=b.id, at=T0.replace(month=5), price=3000)
    call = TouchpointIn(channel="phone", type="call", at=T0, summary="問い合わせ")
    timeline.record_touchpoint(s, actor=TEST_ACTOR, customer_id=b.id, data=call)
    return a.id, b.id


def _snapshot(s: Session, *ids: int) -> dict[str, Any]:
    """Everything a user could see of these customers, row ids included."""
    s.expire_all()
    people = {}
    for cid in ids:
        c = s.get(Customer, cid)
        assert c is not None
        out = service.to_out(s, c).model_dump(exclude={"updated_at"})
        people[cid] = {**out, "merged_into_id": c.merged_into_id, "search_text": c.search_text}

    def rows(stmt: Any) -> list[tuple[Any, ...]]:
        return sorted(tuple(r) for r in s.execute(stmt))

    m = CustomerMetrics
    return {
        "people": people,
        "identities": rows(
            select(Identity.id, Identity.customer_id, Identity.kind, Identity.value).where(
                Identity.customer_id.in_(ids)
            )
        ),
        "interests": rows(select(Interest.customer_id, Interest.tag).where(Interest.customer_id.in_(ids))),
        "grams": sorted(search_index.grams_of(s, ids).items()),
        "orders": rows(select(Order.id, Order.customer_id).where(Order.customer_id.in_(ids))),
        "metrics": rows(
            select(m.customer_id, m.order_count, m.total_spend, m.first_order_at, m.last_order_at).where(
                m.customer_id.in_(ids)
            )
        ),
        "touchpoints": rows(
            select(Touchpoint.id, Touchpoint.customer_id).where(Touchpoint.customer_id.in_(ids))
        ),
        # the "customers merged" and "merge undone" lines on the survivor's timeline stay as history
        "timeline": rows(
            select(TimelineEntry.id, TimelineEntry.customer_id).where(
                TimelineEntry.customer_id.in_(ids),
                TimelineEntry.kind.not_in(["customers_merged", "customers_unmerged"]),
            )
        ),
    }


def test_merge_moves_everything_and_undo_restores_both_exactly(db: Database) -> None:
    with db.session() as s:
        a, b = _pair(s)
    with db.session(write=False) as s:
        before = _snapshot(s, a, b)

    with db.session() as s:
        record = merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=a, merged_id=b, reason="同一人物")
        merge_id = record.id
    with db.session(write=False) as s:
        survivor = service.to_out(s, service.get_customer(s, a))
        # the survivor keeps its own values and gains the empty ones and every identity
        assert survivor.name == "山田 太郎" and survivor.name_kana == "ヤマダ タロウ"
        assert survivor.email == "taro@example.jp"
        assert survivor.emails == ["taro@example.jp", "t.yamada@example.com", "taro.work@example.com"]
        assert survivor.phones == ["+819012345678"] and survivor.phone == "+819012345678"
        assert survivor.birthday == date(1980, 1, 2) and survivor.gender == "male" and survivor.note == "VIP"
        assert (survivor.postal_code, survivor.city, survivor.street) == ("150-0001", "渋谷区", "神宮前1-2-3")
        assert survivor.interests == ["ワイン", "旅行"]
        # orders, metrics and the timeline follow, through the registered participants
        assert s.scalar(select(CustomerMetrics.order_count).where(CustomerMetrics.customer_id == a)) == 3
        assert s.scalar(select(CustomerMetrics.total_spend).where(CustomerMetrics.customer_id == a)) == 9000
        assert set(s.scalars(select(Order.customer_id))) == {a}
        assert set(s.scalars(select(Touchpoint.customer_id))) == {a}
        kinds = [e.kind for e in timeline.list_timeline(s, a).items]
        assert "customers_merged" in kinds and kinds.count("order_placed") == 3
        # the merged customer is hidden but kept, with its own audit trail and one merge row on each side
        with pytest.raises(service.CustomerMerged):
            service.get_customer(s, b)
        assert s.get(Customer, b).merged_into_id == a  # type: ignore[union-attr]
        actions = {(e.entity_id, e.action) for e in s.scalars(select(AuditEntry))}
        assert {(a, "create"), (b, "create"), (a, "merge"), (b, "merged_into")} <= actions
        m = s.get(CustomerMerge, merge_id)
        assert (
            m is not None and m.actor_label == TEST_ACTOR.label and m.reason == "同一人物" and not m.automatic
        )
        assert set(m.moved) >= {"commerce", "timeline"} and len(m.moved["commerce"]["orders"]) == 2
        assert m.interests == {"moved": ["ワイン"], "dropped": ["旅行"]}

    with db.session() as s:
        merge.undo_merge(s, actor=TEST_ACTOR, merge_id=merge_id)
    with db.session(write=False) as s:
        assert _snapshot(s, a, b) == before
        actions = [e.action for e in s.scalars(select(AuditEntry).where(AuditEntry.entity_id.in_([a, b])))]
        assert actions.count("unmerge") == 2
        # the survivor's timeline says both what happened and that it was undone, newest first
        kinds = [e.kind for e in timeline.list_timeline(s, a).items]
        assert kinds[:2] == ["customers_unmerged", "customers_merged"]
        assert s.get(CustomerMerge, merge_id).undone_at is not None  # type: ignore[union-attr]


def test_merged_customer_is_gone_from_lists_search_and_counts(db: Database, api: TestClient) -> None:
    with db.session() as s:
        a, b = _pair(s)
        merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=a, merged_id=b)
    with db.session(write=False) as s:
        listed = [c.id for c in service.list_customers(s, service.CustomerFilters()).items]
        assert listed == [a]
        for q in ("山田", "やまだ", "t.yamada@example.com", "090-1234"):
            found = [c.id for c in service.list_customers(s, service.CustomerFilters(q=q)).items]
            assert found == [a], q
        assert service.count_customers(s) == 1
    resp = api.get(f"/api/v1/customers/{b}")
    assert resp.status_code == 404
    assert resp.json() == {
        "error": "customer_merged",
        "detail": f"Customer {b} was merged into customer {a}.",
    }
    assert [c["id"] for c in api.get("/api/v1/customers").json()["items"]] == [a]
    # deleting the survivor takes the merged row (and its personal data) with it
    assert api.delete(f"/api/v1/customers/{a}").status_code == 204
    with db.session(write=False) as s:
        assert s.get(Customer, b) is None


def test_a_company_merge_moves_its_contacts_and_undo_moves_them_back(db: Database) -> None:
    with db.session() as s:
        keep = make_customer(s, name="株式会社サンプル", name_kana=None, kind="company")
        dup = make_customer(
            s, name="(株)サンプル", name_kana=None, kind="company", website="https://sample.example.jp"
        )
        p1 = make_customer(s, name="佐藤 一郎", name_kana=None, company_id=dup.id)
        p2 = make_customer(s, name="鈴木 二郎", name_kana=None, company_id=keep.id)
        ids = keep.id, dup.id, p1.id, p2.id
    with db.session(write=False) as s:
        before = _snapshot(s, *ids)
    with db.session() as s:
        record = merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=ids[0], merged_id=ids[1])
        merge_id = record.id
    with db.session(write=False) as s:
        assert [c.id for c in service.contacts_of(s, ids[0])] == [ids[2], ids[3]]
        assert service.get_customer(s, ids[0]).website == "https://sample.example.jp"
    with db.session() as s:
        merge.undo_merge(s, actor=TEST_ACTOR, merge_id=merge_id)
    with db.session(write=False) as s:
        assert _snapshot(s, *ids) == before


def test_undo_keeps_edits_made_after_the_merge(db: Database) -> None:
    with db.session() as s:
        a, b = _pair(s)
        merge_id = merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=a, merged_id=b).id
    with db.session() as s:
        # the note came from the merged customer; someone rewrote it since: that edit is not undone
        service.update_customer(s, actor=TEST_ACTOR, customer_id=a, data=CustomerUpdate(note="優良顧客"))
    with db.session() as s:
        merge.undo_merge(s, actor=TEST_ACTOR, merge_id=merge_id)
    with db.session(write=False) as s:
        survivor = service.get_customer(s, a)
        assert survivor.note == "優良顧客" and survivor.birthday is None and survivor.phone is None
        assert service.get_customer(s, b).note == "VIP"


# ---------------------------------------------------------------- participants


@pytest.fixture
def notes_participant(db: Database) -> Iterator[Table]:
    """A participant owned by this test: a table of notes that must follow their customer."""
    table = Table("test_merge_notes", MetaData(), Column("id", Integer, primary_key=True),
                  Column("customer_id", Integer, nullable=False),
                  Column("text", String(50)))  # fmt: skip
    table.create(db.engine)

    def move(s: Session, from_id: int, to_id: int) -> dict[str, list[int]]:
        ids = list(s.scalars(select(table.c.id).where(table.c.customer_id == from_id)))
        s.execute(table.update().where(table.c.id.in_(ids)).values(customer_id=to_id))
        return {"test_merge_notes": ids}

    def move_back(s: Session, from_id: int, to_id: int, moved: dict[str, list[int]]) -> None:
        ids = moved["test_merge_notes"]
        s.execute(
            table.update()
            .where(table.c.id.in_(ids), table.c.customer_id == to_id)
            .values(customer_id=from_id)
        )

    merge.register_merge_participant("test_notes", move, move_back)
    yield table
    merge._PARTICIPANTS.pop("test_notes", None)
    table.drop(db.engine)


def test_registered_participant_rows_follow_the_merge_and_come_back(
    db: Database, notes_participant: Table
) -> None:
    notes = notes_participant
    with db.session() as s:
        a, b = _pair(s)
        s.execute(insert(notes), [{"customer_id": b, "text": "one"}, {"customer_id": b, "text": "two"},
                                  {"customer_id": a, "text": "mine"}])  # fmt: skip
    with db.session() as s:
        record = merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=a, merged_id=b)
        merge_id, moved = record.id, record.moved["test_notes"]
    with db.session() as s:
        assert set(s.scalars(select(notes.c.customer_id))) == {a}
        s.execute(insert(notes), [{"customer_id": a, "text": "after the merge"}])
    assert len(moved["test_merge_notes"]) == 2
    with db.session() as s:
        merge.undo_merge(s, actor=TEST_ACTOR, merge_id=merge_id)
    with db.session(write=False) as s:
        by_text = dict(s.execute(select(notes.c.text, notes.c.customer_id)).tuples().all())
        assert by_text == {"one": b, "two": b, "mine": a, "after the merge": a}


def test_a_failing_participant_leaves_nothing_half_merged(db: Database) -> None:
    def broken(s: Session, from_id: int, to_id: int) -> dict[str, list[int]]:
        raise RuntimeError("disk full")

    with db.session() as s:
        a, b = _pair(s)
    with db.session(write=False) as s:
        before = _snapshot(s, a, b)
    merge.register_merge_participant("test_broken", broken, lambda *args: None)
    try:
        with pytest.raises(RuntimeError), db.session() as s:
            merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=a, merged_id=b)
    finally:
        merge._PARTICIPANTS.pop("test_broken", None)
    with db.session(write=False) as s:
        assert _snapshot(s, a, b) == before
        assert s.scalar(select(CustomerMerge.id)) is None


# ---------------------------------------------------------------- errors and permissions


def test_bad_merges_get_clear_errors(db: Database, api: TestClient) -> None:
    with db.session() as s:
        a, b = _pair(s)
        c = make_customer(s, name="別人 花子", name_kana=None).id
        company = make_customer(s, name="株式会社テスト", name_kana=None, kind="company").id

    def post(survivor: int, merged: int) -> tuple[int, dict[str, Any]]:
        resp = api.post("/api/v1/merges", json={"survivor_id": survivor, "merged_id": merged})
        return resp.status_code, resp.json()

    assert post(a, a) == (422, {"error": "merge_self", "detail": [
        {"field": "merged_id", "message": "A customer cannot be merged into itself."}]})  # fmt: skip
    assert post(a, 999_999) == (404, {"error": "customer_not_found", "detail": [
        {"field": "merged_id", "message": "Customer 999999 does not exist."}]})  # fmt: skip
    status, body = post(company, a)
    assert status == 422 and body["error"] == "merge_kind_mismatch"
    status, body = post(a, company)
    assert status == 422 and body["error"] == "merge_kind_mismatch"
    status, body = post(a, b)
    assert status == 201
    merge_id = body["id"]
    assert body["survivor_id"] == a and body["merged_id"] == b and body["actor"] == "admin@example.com"
    message = f"Customer {b} has already been merged into customer {a}."
    assert post(c, b) == (
        409,
        {"error": "already_merged", "detail": [{"field": "merged_id", "message": message}]},
    )
    status, body = post(b, c)
    assert status == 409 and body["detail"][0]["field"] == "survivor_id"
    resp = api.post("/api/v1/merges", json={"survivor_id": "x", "merged_id": c, "reason": "r" * 501})
    assert resp.status_code == 422 and {d["field"] for d in resp.json()["detail"]} == {
        "survivor_id",
        "reason",
    }

    # undo order: a later merge of the survivor must be undone first
    status, body = post(c, a)
    assert status == 201
    second = body["id"]
    resp = api.post(f"/api/v1/merges/{merge_id}/undo")
    assert resp.status_code == 409 and resp.json()["error"] == "merge_undo_blocked"
    assert api.post(f"/api/v1/merges/{second}/undo").status_code == 200
    resp = api.post(f"/api/v1/merges/{merge_id}/undo")
    assert resp.status_code == 200 and resp.json()["undone_at"] is not None and resp.json()["undone_by"]
    resp = api.post(f"/api/v1/merges/{merge_id}/undo")
    assert resp.status_code == 409 and resp.json()["error"] == "merge_already_undone"
    resp = api.post("/api/v1/merges/424242/undo")
    assert resp.status_code == 404 and resp.json()["error"] == "merge_not_found"
    with db.session(write=False) as s:
        assert s.get(Customer, b).merged_into_id is None and s.get(Customer, a).merged_into_id is None  # type: ignore[union-attr]


def test_only_managers_and_admins_merge(db: Database, api_as) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        a, b = _pair(s)
    for role in ("sales", "support", "marketing", "viewer"):
        client = api_as(role).client
        assert client.post("/api/v1/merges", json={"survivor_id": a, "merged_id": b}).status_code == 403, role
        assert client.get("/api/v1/duplicates").status_code == 403, role
        assert client.post("/api/v1/duplicates/scan").status_code == 403, role
    assert (
        api_as("viewer").client.get("/api/v1/merges").status_code == 200
    )  # history is part of the audit trail
    manager = api_as("manager").client
    resp = manager.post("/api/v1/merges", json={"survivor_id": a, "merged_id": b})
    assert resp.status_code == 201
    merge_id = resp.json()["id"]
    assert api_as("sales").client.post(f"/api/v1/merges/{merge_id}/undo").status_code == 403
    assert manager.post(f"/api/v1/merges/{merge_id}/undo").status_code == 200


def test_merge_history_api(db: Database, api: TestClient) -> None:
    with db.session() as s:
        a, b = _pair(s)
        c = make_customer(s, name="別人 花子", name_kana=None).id
    first = api.post("/api/v1/merges", json={"survivor_id": a, "merged_id": b, "reason": "電話で確認"}).json()
    second = api.post("/api/v1/merges", json={"survivor_id": a, "merged_id": c}).json()
    page = api.get("/api/v1/merges", params={"limit": 1}).json()
    assert [m["id"] for m in page["items"]] == [second["id"]]
    page2 = api.get("/api/v1/merges", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [m["id"] for m in page2["items"]] == [first["id"]] and page2["next_cursor"] is None
    assert [m["id"] for m in api.get("/api/v1/merges", params={"customer_id": b}).json()["items"]] == [
        first["id"]
    ]
    detail = api.get(f"/api/v1/merges/{first['id']}").json()
    assert detail["reason"] == "電話で確認" and detail["merged_customer"]["id"] == b
    assert [h["action"] for h in detail["merged_history"]] == ["merged_into", "create"]
    assert detail["filled"]["birthday"] == [None, "1980-01-02"]
    assert api.get("/api/v1/merges", params={"cursor": "%%%"}).status_code == 400


# ---------------------------------------------------------------- pages


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_merge_from_the_page_and_undo(db: Database, page_as, locale: str) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        a, b = _pair(s)
        # the same name and birthday make them a candidate pair
        service.update_customer(
            s, actor=TEST_ACTOR, customer_id=a, data=CustomerUpdate(birthday=date(1980, 1, 2))
        )
    client: TestClient = page_as("manager", locale=locale)
    page = client.get("/duplicates")
    assert page.status_code == 200 and f'<html lang="{locale}">' in page.text
    token = csrf_of(page.text)
    assert client.post("/duplicates/scan", data={"csrf_token": token}).status_code == 303
    html = client.get("/duplicates").text
    assert html.count('data-testid="candidate"') == 1 and "山田太郎" in html and "山田 太郎" in html
    cand_id = int(html.split('id="candidate-')[1].split('"')[0])

    assert (
        client.post(f"/duplicates/{cand_id}/merge", data={"survivor_id": str(a)}).status_code == 403
    )  # no CSRF
    resp = client.post(f"/duplicates/{cand_id}/merge", data={"csrf_token": token, "survivor_id": "12345"})
    assert resp.status_code == 422 and 'data-testid="merge-error"' in resp.text
    resp = client.post(f"/duplicates/{cand_id}/merge", data={"csrf_token": token, "survivor_id": str(a)})
    assert resp.status_code == 303
    merge_url = resp.headers["location"]
    detail = client.get(merge_url).text
    assert f"#{b}" in detail and 'data-testid="merged-history"' in detail

    survivor_page = client.get(f"/customers/{a}").text
    assert 'data-testid="merged-from"' in survivor_page and f'href="{merge_url}"' in survivor_page
    assert client.get(f"/customers/{b}").status_code == 404
    assert 'data-testid="candidate"' not in client.get("/duplicates").text

    resp = client.post(f"{merge_url}/undo", data={"csrf_token": token})
    assert resp.status_code == 303
    assert client.get(f"/customers/{b}").status_code == 200
    resp = client.post(f"{merge_url}/undo", data={"csrf_token": token})
    assert resp.status_code == 409 and 'data-testid="merge-error"' in resp.text


def test_manual_merge_form_reports_errors(db: Database, page_as) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        a, _b = _pair(s)
    client: TestClient = page_as("admin", locale="en")
    token = csrf_of(client.get("/duplicates").text)
    resp = client.post("/merges", data={"csrf_token": token, "survivor_id": str(a), "merged_id": str(a)})
    assert resp.status_code == 422 and "A customer cannot be merged into itself." in resp.text
    resp = client.post("/merges", data={"csrf_token": token, "survivor_id": "abc", "merged_id": ""})
    assert resp.status_code == 422 and 'value="abc"' in resp.text
    with db.session(write=False) as s:
        assert s.scalar(select(CustomerMerge.id)) is None


def test_duplicates_page_is_for_managers(db: Database, page_as) -> None:  # type: ignore[no-untyped-def]
    assert page_as("sales").get("/duplicates").status_code == 403


# ---------------------------------------------------------------- CLI


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KOKYAKU_DATABASE_URL": database_url, "KOKYAKU_ENVIRONMENT": "test"}
    exe = os.path.join(os.path.dirname(sys.executable), "kokyaku")
    return subprocess.run([exe, "customers", *args], env=env, capture_output=True, text=True, timeout=120)


def test_cli_merge_and_unmerge(db: Database) -> None:
    with db.session() as s:
        a, b = _pair(s)
    done = _cli(db.url, "merge", str(a), str(b), "--reason", "CLI")
    assert done.returncode == 0, done.stderr
    merge_id = int(done.stdout.strip())
    again = _cli(db.url, "merge", str(a), str(b))
    assert again.returncode == 1 and "already been merged" in again.stderr
    assert _cli(db.url, "unmerge", str(merge_id)).returncode == 0
    with db.session(write=False) as s:
        m = s.get(CustomerMerge, merge_id)
        assert m is not None and m.actor_label == "cli" and m.reason == "CLI" and m.undone_at is not None
