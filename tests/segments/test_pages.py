"""The segment pages: list, the htmx builder (edit in place, live count, errors at the condition), segment
page with breakdown and export, RFM and lifecycle pages, the customer page section; roles, CSRF, Japanese."""

import re

from fastapi.testclient import TestClient

from kokyaku.db import Database
from kokyaku.segments.lifecycle import LifecycleRules
from kokyaku.segments.recompute import recompute_all
from tests.conftest import csrf_of
from tests.segments.factories import TZ, People, make_people

HX = {"HX-Request": "true"}


def _people(db: Database) -> People:
    with db.session() as s:
        people = make_people(s)
        recompute_all(s, rules=LifecycleRules(), tz=TZ)
    return people


def _form(csrf: str, **fields: str | list[str]) -> dict[str, str | list[str]]:
    return {"csrf_token": csrf, **fields}


def test_builder_edits_in_place_and_counts_live(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    _people(db)
    client: TestClient = page_as("marketing")
    page = client.get("/segments/new")
    assert page.status_code == 200 and 'name="c:0:field"' in page.text
    csrf = csrf_of(page.text)
    headers = {**HX, "X-CSRF-Token": csrf}
    base = {
        "g:": "1",
        "g::op": "and",
        "c:0:field": "prefecture",
        "c:0:operator": "in",
        "c:0:value": ["東京都", "神奈川県"],
    }
    # add a condition to the root group: the tree comes back with two conditions, the first kept as typed
    resp = client.post("/segments/builder", data={**base, "action": "add-condition:"}, headers=headers)
    assert resp.status_code == 200 and resp.text.count('data-testid="condition"') == 2
    assert re.search(r'<option value="東京都"\s+selected', resp.text)
    # add a nested group, then remove it
    resp = client.post("/segments/builder", data={**base, "action": "add-group:"}, headers=headers)
    assert 'name="g:1:op"' in resp.text and resp.text.count('data-testid="group"') == 2
    resp = client.post("/segments/builder", data={**base, "g:1": "1", "g:1:op": "or", "c:1.0:field": "age",
                                                   "c:1.0:operator": "gte", "c:1.0:value": "40",
                                                   "action": "remove:1"},
                       headers=headers)  # fmt: skip
    assert resp.text.count('data-testid="group"') == 1
    # changing the field resets operator and value to the new field's
    resp = client.post(
        "/segments/builder", data={**base, "c:0:field": "age", "action": "field:0"}, headers=headers
    )
    assert re.search(r'<option value="eq"\s+selected', resp.text) and 'name="c:0:value"' in resp.text
    # the live count, and a problem shown beside its condition (swapped out of band)
    resp = client.post("/segments/builder/count", data=base, headers=headers)
    assert re.search(r'data-testid="live-count">3<', resp.text)
    assert "Prefecture is any of Tokyo, Kanagawa" in resp.text
    bad = {**base, "g:1": "1", "g:1:op": "or", "c:1.0:field": "age", "c:1.0:operator": "between",
           "c:1.0:value0": "50", "c:1.0:value1": "20"}  # fmt: skip
    resp = client.post("/segments/builder/count", data=bad, headers=headers)
    assert 'data-testid="live-count-invalid"' in resp.text
    assert re.search(
        r'id="err-1-0-value" hx-swap-oob="true">The lower bound is greater than the upper bound.<', resp.text
    )
    assert re.search(r'id="err-0-value" hx-swap-oob="true"><', resp.text)  # cleared where all is well


def test_saving_shows_errors_at_the_condition_then_saves(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    people = _people(db)
    client: TestClient = page_as("marketing", locale="ja")
    csrf = csrf_of(client.get("/segments/new").text)
    data = _form(csrf, name="若い顧客", kind="dynamic", **{"g:": "1", "g::op": "and", "c:0:field": "age",
                 "c:0:operator": "lt", "c:0:value": "abc", "action": "save"})  # fmt: skip
    resp = client.post("/segments/new", data=data)
    assert resp.status_code == 422
    assert (
        re.search(r'id="err-0-value">数値で入力してください。<', resp.text)
        or "Must be a number." in resp.text
    )
    data["c:0:value"] = "30"
    resp = client.post("/segments/new", data=data)
    assert resp.status_code == 303
    detail = client.get(resp.headers["location"])
    assert detail.status_code == 200 and "若い顧客" in detail.text and "Ben Smith" in detail.text
    assert "青井 葵" not in detail.text
    sid = resp.headers["location"].rsplit("/", 1)[1]
    assert f"/exports/customers?segment_id={sid}&amp;format=csv" in detail.text
    export = client.get(f"/exports/customers?segment_id={sid}&format=csv")
    assert export.content.startswith(b"\xef\xbb\xbf") and "Ben Smith" in export.content.decode("utf-8-sig")
    chart = client.get(f"/segments/{sid}/breakdown", params={"by": "lifecycle_stage"}, headers=HX)
    assert chart.status_code == 200 and "Plotly.newPlot" in chart.text
    assert re.search(
        r'data-testid="breakdown-table">\s*<tbody><tr><td>[^<]+</td><td class="num">1</td></tr></tbody>',
        chart.text,
    )
    assert "若い顧客" in client.get("/segments").text
    # the customer page shows the stage, RFM and the segments the customer is in
    page = client.get(f"/customers/{people.ids['ben']}")
    assert 'data-stage="new"' in page.text and "R3" in page.text and "若い顧客" in page.text
    # freezing makes a snapshot; editing keeps the builder
    resp = client.post(f"/segments/{sid}/freeze", data={"csrf_token": csrf})
    assert resp.status_code == 303 and "Ben Smith" in client.get(resp.headers["location"]).text
    assert 'name="c:0:field"' in client.get(f"/segments/{sid}/edit").text
    resp = client.post(f"/segments/{sid}/delete", data={"csrf_token": csrf})
    assert resp.status_code == 303 and client.get(f"/segments/{sid}").status_code == 404


def test_builder_works_without_javascript(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = page_as("manager")
    csrf = csrf_of(client.get("/segments/new").text)
    data = _form(csrf, name="n", **{"g:": "1", "g::op": "and", "c:0:field": "gender", "c:0:operator": "eq",
                 "c:0:value": "female", "action": "add-condition:"})  # fmt: skip
    resp = client.post("/segments/new", data=data)
    assert (
        resp.status_code == 200 and resp.text.count('data-testid="condition"') == 2 and "<html" in resp.text
    )


def test_rfm_and_lifecycle_pages(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    _people(db)
    client: TestClient = page_as("viewer")
    rfm = client.get("/rfm")
    assert (
        rfm.status_code == 200 and 'data-testid="rfm-grid"' in rfm.text and "Can&#39;t lose them" in rfm.text
    )
    assert "Recompute now" not in rfm.text  # viewers read only
    life = client.get("/lifecycle")
    assert life.status_code == 200 and "Plotly.newPlot" in life.text and 'data-stage="lead"' in life.text
    ja = page_as("marketing", locale="ja")
    assert "再計算" in ja.get("/rfm").text or "Recompute now" in ja.get("/rfm").text
    resp = ja.post("/rfm/recompute", data={"csrf_token": csrf_of(ja.get("/rfm").text)})
    assert resp.status_code == 303 and "queued=" in resp.headers["location"]


def test_roles_and_csrf(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    viewer: TestClient = page_as("viewer")
    assert viewer.get("/segments").status_code == 200
    assert viewer.get("/segments/new").status_code == 403
    csrf = csrf_of(viewer.get("/segments").text)
    assert viewer.post("/segments/builder/count", data={"csrf_token": csrf}).status_code == 403
    writer: TestClient = page_as("marketing")
    assert writer.post("/segments/builder/count", data={"g:": "1"}).status_code == 403  # no CSRF token
    assert TestClient(writer.app, follow_redirects=False).get("/segments").status_code == 303  # to the login
