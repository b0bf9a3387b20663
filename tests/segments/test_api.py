"""The segments API: CRUD, members, counts, preview of unsaved rules, static snapshots and freezing, CSV
export, size history, the RFM summary with on-demand recomputation, a customer's lifecycle; errors and
roles."""

import csv
import io
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokyaku.db import Database
from kokyaku.jobs.worker import Worker
from kokyaku.segments import tasks
from tests.customers.factories import make_customer
from tests.segments.factories import People, make_people, rules

TOKYO = rules({"field": "prefecture", "operator": "in", "value": ["東京都"]})


def _people(db: Database) -> People:
    with db.session() as s:
        return make_people(s)


def test_crud_members_count_and_keyset(api: TestClient, db: Database) -> None:
    people = _people(db)
    resp = api.post("/api/v1/segments", json={"name": " 東京の顧客 ", "rules": rules(
        {"field": "prefecture", "operator": "in", "value": ["東京都", "東京都"]},
        {"field": "age", "operator": "gte", "value": "０"}, op="or")})  # fmt: skip
    assert resp.status_code == 201, resp.text
    seg = resp.json()
    assert seg["name"] == "東京の顧客" and seg["kind"] == "dynamic" and seg["size"] == 4
    # stored in canonical form: duplicates dropped, full-width digits read as numbers
    assert seg["rules"]["conditions"] == [
        {"field": "prefecture", "operator": "in", "value": ["東京都"]},
        {"field": "age", "operator": "gte", "value": 0},
    ]  # fmt: skip
    sid = seg["id"]
    assert api.get(f"/api/v1/segments/{sid}").json()["name"] == "東京の顧客"
    assert [s["id"] for s in api.get("/api/v1/segments").json()["items"]] == [sid]
    assert api.get(f"/api/v1/segments/{sid}/count").json()["count"] == 4
    seen, cursor = [], None
    while True:
        page = api.get(
            f"/api/v1/segments/{sid}/members", params={"limit": 1, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(people.ids[k] for k in ("aoi", "ben", "dcorp", "emi"))
    resp = api.patch(f"/api/v1/segments/{sid}", json={"name": "東京", "rules": TOKYO})
    assert resp.status_code == 200 and resp.json()["size"] == 2
    assert api.get(f"/api/v1/segments/{sid}/count").json()["count"] == 2
    assert api.delete(f"/api/v1/segments/{sid}").status_code == 204
    resp = api.get(f"/api/v1/segments/{sid}")
    assert resp.status_code == 404 and resp.json()["error"] == "segment_not_found"


def test_preview_counts_an_unsaved_definition(api: TestClient, db: Database) -> None:
    _people(db)
    body = {"rules": rules({"field": "order_count", "operator": "gte", "value": 1},
                           {"field": "gender", "operator": "eq", "value": "female"})}  # fmt: skip
    out = api.post("/api/v1/segments/preview", json=body).json()
    assert out["count"] == 1 and [m["name"] for m in out["sample"]] == ["青井 葵"]
    assert out["description"] == "Number of orders at least 1 AND Gender is female"
    assert api.get("/api/v1/segments").json()["items"] == []  # nothing saved


def test_bad_rules_name_the_condition_and_reason(api: TestClient, db: Database) -> None:
    bad = rules({"field": "age", "operator": "eq", "value": 30},
                rules({"field": "prefecture", "operator": "in", "value": ["東京", "大阪府"]},
                      op="or"))  # fmt: skip
    for resp in (api.post("/api/v1/segments", json={"name": "x", "rules": bad}),
                 api.post("/api/v1/segments/preview", json={"rules": bad})):  # fmt: skip
        assert resp.status_code == 422
        assert resp.json() == {"error": "invalid", "detail": [
            {"field": "conditions.1.conditions.0.value.0",
             "message": "Not a prefecture of Japan."}]}  # fmt: skip
    resp = api.post("/api/v1/segments", json={"name": "", "rules": []})
    assert resp.status_code == 422 and resp.json()["error"] == "validation_error"
    assert {d["field"] for d in resp.json()["detail"]} == {"name", "rules"}
    assert api.get("/api/v1/segments").json()["items"] == []
    assert api.post("/api/v1/segments/preview", content=b"{not json",
                    headers={"content-type": "application/json"}).status_code == 422  # fmt: skip
    assert api.get("/api/v1/segments/1/members", params={"cursor": "!!"}).status_code in (400, 404)


def test_static_segments_keep_their_members_and_freeze_makes_a_snapshot(
    api: TestClient, db: Database
) -> None:
    _people(db)
    static = api.post("/api/v1/segments", json={"name": "固定", "kind": "static", "rules": TOKYO}).json()
    dynamic = api.post("/api/v1/segments", json={"name": "動的", "rules": TOKYO}).json()
    assert static["frozen_at"] and static["size"] == 2
    with db.session() as s:
        make_customer(s, name="新 顧客", prefecture="東京都")
    assert api.get(f"/api/v1/segments/{dynamic['id']}/count").json()["count"] == 3
    assert api.get(f"/api/v1/segments/{static['id']}/count").json()["count"] == 2
    resp = api.post(f"/api/v1/segments/{dynamic['id']}/freeze", json={"name": "スナップショット"})
    assert resp.status_code == 201
    snap = resp.json()
    assert snap["kind"] == "static" and snap["source_id"] == dynamic["id"] and snap["size"] == 3
    assert api.post(f"/api/v1/segments/{static['id']}/freeze").status_code == 409
    resp = api.patch(
        f"/api/v1/segments/{static['id']}",
        json={"rules": rules({"field": "age", "operator": "gte", "value": 1})},
    )
    assert resp.status_code == 409 and resp.json()["error"] == "segment_static"
    assert api.patch(f"/api/v1/segments/{static['id']}", json={"name": "固定 2"}).json()["name"] == "固定 2"


def test_export_goes_through_the_exports_module(api: TestClient, db: Database) -> None:
    """A segment's members download as CSV (BOM, formulas neutralised) from /api/v1/exports/customers."""
    _people(db)
    with db.session() as s:
        make_customer(s, name='=HYPERLINK("http://x")', name_kana=None, prefecture="東京都", city="@SUM(1)")
    sid = api.post("/api/v1/segments", json={"name": "東京", "rules": TOKYO}).json()["id"]
    resp = api.get("/api/v1/exports/customers", params={"segment_id": sid, "format": "csv", "lang": "en"})
    assert resp.status_code == 200 and resp.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"))))
    assert [r["Name"] for r in rows] == ["青井 葵", "D株式会社", '\'=HYPERLINK("http://x")']
    assert rows[-1]["City"] == "'@SUM(1)"


def test_merged_customers_leave_segments_and_snapshots_follow_the_survivor(
    api: TestClient, db: Database
) -> None:
    from kokyaku.customers.merge import merge_customers, undo_merge
    from tests.conftest import TEST_ACTOR

    people = _people(db)
    with db.session() as s:
        twin = make_customer(s, name="青井 葵 (2)", prefecture="東京都").id
    snap = api.post("/api/v1/segments", json={"name": "固定", "kind": "static", "rules": rules(
        {"field": "city", "operator": "is_empty"},
        {"field": "prefecture", "operator": "eq", "value": "東京都"})}).json()  # fmt: skip
    dynamic = api.post("/api/v1/segments", json={"name": "東京", "rules": TOKYO}).json()
    assert snap["size"] == 2 and dynamic["size"] == 3  # dcorp and the twin; aoi, dcorp and the twin
    with db.session() as s:
        record = merge_customers(s, actor=TEST_ACTOR, survivor_id=people.ids["aoi"], merged_id=twin)
        merge_id = record.id
    members = lambda sid: {m["id"] for m in api.get(f"/api/v1/segments/{sid}/members").json()["items"]}  # noqa: E731
    assert members(dynamic["id"]) == {people.ids["aoi"], people.ids["dcorp"]}  # the hidden twin is gone
    assert members(snap["id"]) == {people.ids["aoi"], people.ids["dcorp"]}  # the survivor took its place
    with db.session() as s:
        undo_merge(s, actor=TEST_ACTOR, merge_id=merge_id)
    assert members(snap["id"]) == {twin, people.ids["dcorp"]}
    assert members(dynamic["id"]) == {people.ids["aoi"], people.ids["dcorp"], twin}


def test_size_history_and_fields(api: TestClient, db: Database) -> None:
    _people(db)
    sid = api.post("/api/v1/segments", json={"name": "東京", "rules": TOKYO}).json()["id"]
    history = api.get(f"/api/v1/segments/{sid}/history").json()
    assert len(history) == 1 and history[0]["size"] == 2
    fields = {f["key"]: f for f in api.get("/api/v1/segments/fields").json()}
    assert "between" in fields["age"]["operators"] and len(fields["prefecture"]["choices"]) == 47
    assert fields["custom.plan"]["choices"] == ["gold", "silver"] and fields["bought_category"]["days"]


def test_rfm_recompute_job_summary_and_lifecycle(api: TestClient, db: Database) -> None:
    people = _people(db)
    resp = api.post("/api/v1/rfm/recompute")
    assert resp.status_code == 202
    job_id = resp.json()["job_id"]
    assert api.post("/api/v1/rfm/recompute").json()["job_id"] == job_id  # one at a time
    sid = api.post("/api/v1/segments", json={"name": "東京", "rules": TOKYO}).json()["id"]
    outcomes = Worker(db, handlers={tasks.RECOMPUTE: tasks.run_recompute}, run_schedules=False).drain()
    assert outcomes["succeeded"] == 1
    summary = api.get("/api/v1/rfm").json()
    assert summary["active"] == 2 and summary["customers"] == 5
    cells = {(c["r"], c["f"]): c for c in summary["grid"]}
    assert (
        cells[(1, 3)]["customers"] == 1
        and cells[(1, 3)]["revenue"] == 6000
        and cells[(1, 3)]["segment"] == "at_risk"
    )
    assert {s["key"]: s["customers"] for s in summary["segments"]}["about_to_sleep"] == 1
    life = api.get(f"/api/v1/customers/{people.ids['ben']}/lifecycle").json()
    assert life["stage"] == "new" and life["rfm"]["segment"] == "about_to_sleep"
    assert [(h["from_stage"], h["stage"]) for h in life["history"]] == [("lead", "new")]
    assert api.get(f"/api/v1/customers/{people.ids['chika']}/lifecycle").json()["stage"] == "lead"
    assert api.get("/api/v1/customers/999999/lifecycle").status_code == 404
    assert len(api.get(f"/api/v1/segments/{sid}/history").json()) == 1  # today's point, updated by the job


def test_roles(api_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    _people(db)
    admin = api_as("admin").client
    sid = admin.post("/api/v1/segments", json={"name": "東京", "rules": TOKYO}).json()["id"]
    for role in ("viewer", "sales", "support"):
        client = api_as(role).client
        assert client.get("/api/v1/segments").status_code == 200
        assert client.get(f"/api/v1/segments/{sid}/members").status_code == 200
        assert client.get("/api/v1/rfm").status_code == 200
        assert client.post("/api/v1/segments/preview", json={"rules": TOKYO}).status_code == 200
        for method, url, body in (("post", "/api/v1/segments", {"name": "x", "rules": TOKYO}),
                                  ("patch", f"/api/v1/segments/{sid}", {"name": "y"}),
                                  ("delete", f"/api/v1/segments/{sid}", None),
                                  ("post", f"/api/v1/segments/{sid}/freeze", None),
                                  ("post", "/api/v1/rfm/recompute", None)):  # fmt: skip
            resp = client.request(method, url, json=body)
            assert resp.status_code == 403 and resp.json()["error"] == "forbidden", (role, method, url)
    for role in ("marketing", "manager"):
        assert (
            api_as(role).client.post("/api/v1/segments", json={"name": role, "rules": TOKYO}).status_code
            == 201
        )
    assert TestClient(admin.app).get("/api/v1/segments").status_code == 401


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3)
    | st.dictionaries(
        st.sampled_from(["op", "conditions", "field", "operator", "value", "days", "x"]), c, max_size=4
    ),
    max_leaves=10,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["rules", "name", "kind"]), JSONISH, max_size=3))
def test_any_body_is_answered_without_a_server_error(api: TestClient, body: dict[str, Any]) -> None:
    for url in ("/api/v1/segments/preview", "/api/v1/segments"):
        resp = api.post(url, json=body)
        assert resp.status_code in (200, 201, 422), (url, body, resp.text)
        assert "error" in resp.json() or resp.status_code < 300
