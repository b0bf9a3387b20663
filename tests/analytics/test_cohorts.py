"""Cohort retention: the matrix from orders; the page with its heatmap, table, filter and login check."""

from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from kokyaku.analytics.cohorts import cohorts
from kokyaku.commerce.bulk import bulk_insert_orders
from kokyaku.customers.bulk import Prospect, create_prospects
from kokyaku.db import Database
from tests.conftest import TEST_ACTOR


def _order(cid: int, y: int, m: int, total: int, status: str = "placed") -> dict:  # type: ignore[type-arg]
    return {
        "customer_id": cid, "channel": "online", "status": status,
        "ordered_at": datetime(y, m, 10, 3, tzinfo=UTC),
        "lines": [{"name": "item", "quantity": 1, "unit_price": total}],
    }  # fmt: skip


@pytest.fixture
def shop(db: Database) -> list[int]:
    with db.session() as s:
        people = [Prospect(name=f"p{i}", identities=[], source="test", channel=ch)
                  for i, ch in enumerate(["web", "web", "store", "store"])]  # fmt: skip
        ids = create_prospects(s, actor=TEST_ACTOR, prospects=people)
        a, b, c, d = ids
        orders = [
            _order(a, 2026, 1, 1000), _order(a, 2026, 2, 2000), _order(a, 2026, 4, 500),
            _order(b, 2026, 1, 3000),
            _order(c, 2026, 2, 1500), _order(c, 2026, 3, 700),
            _order(d, 2026, 2, 900, status="cancelled"), _order(d, 2026, 3, 800),
        ]  # fmt: skip
        bulk_insert_orders(s, orders, actor=TEST_ACTOR, timeline=False)
    return ids


def test_cohort_matrix(db: Database, shop: list[int]) -> None:
    with db.session(write=False) as s:
        rows = cohorts(s, months=6, today=date(2026, 4, 20))
        web = cohorts(s, months=6, channel="web", today=date(2026, 4, 20))
    by = {c.month: c for c in rows}
    assert list(by) == ["2026-01", "2026-02", "2026-03"]  # d's cancelled February order does not count
    jan = by["2026-01"]
    assert jan.size == 2 and jan.retained == [2, 1, 0, 1] and jan.revenue == [4000, 2000, 0, 500]
    assert jan.percent(1) == 50.0
    assert by["2026-02"].retained == [1, 1, 0] and by["2026-03"].retained == [1, 0]
    assert [c.month for c in web] == ["2026-01"]


def test_cohort_page(db: Database, shop: list[int], page_as, app) -> None:  # type: ignore[no-untyped-def]
    client = page_as("viewer", locale="en")
    html = client.get("/analytics/cohorts?months=36").text
    assert "Cohort retention" in html and 'id="cohort-heat"' in html and "plotly.min.js" in html
    assert 'data-cohort="2026-01"' in html and "50.0%" in html and "Definitions" in html
    only_store = client.get("/analytics/cohorts?months=36&channel=store").text
    assert 'data-cohort="2026-01"' not in only_store and 'data-cohort="2026-02"' in only_store
    odd = client.get("/analytics/cohorts?months=abc&channel=<script>")
    assert odd.status_code == 200 and "<script>alert" not in odd.text
    anonymous = TestClient(app).get("/analytics/cohorts", follow_redirects=False)
    assert anonymous.status_code in (302, 303, 401) and "cohort-table" not in anonymous.text


def test_kpi_board(db: Database, shop: list[int], page_as) -> None:  # type: ignore[no-untyped-def]
    from kokyaku.analytics.kpis import board

    with db.session(write=False) as s:
        b = board(s, start=date(2026, 2, 1), end=date(2026, 3, 1), tz="Asia/Tokyo")
    v = b.values
    # February: a (2000) and c (1500) bought; d's order was cancelled. January's buyers: a and b, a came back.
    assert v["active"] == 2 and v["new"] == 1 and v["aov"] == 1750 and v["revenue_per_customer"] == 1750
    assert v["retention"] == 50.0 and v["churn"] == 50.0 and v["repeat"] == 0.0 and v["frequency"] == 1.0
    client = page_as("viewer", locale="en")
    html = client.get("/analytics?from=2026-02-01&to=2026-02-28").text
    assert "Customer KPIs" in html and 'data-kpi="retention"' in html and "Retention rate" in html
    assert "the share who bought again in this period." in html  # every KPI shows its definition
    bad = client.get("/analytics?from=2026-03-01&to=2026-02-01")
    assert bad.status_code == 422 and "must not be after" in bad.text
    assert client.get("/analytics?from=garbage").status_code == 200


def test_cohorts_of_a_segment(db: Database, shop: list[int], page_as, api) -> None:  # type: ignore[no-untyped-def]
    from kokyaku.analytics.cohorts import segment_members
    from kokyaku.segments import service as segments
    from kokyaku.segments.schemas import SegmentIn

    def rule(field: str, operator: str, value: int) -> dict:  # type: ignore[type-arg]
        return {"op": "and", "conditions": [{"field": field, "operator": operator, "value": value}]}

    with db.session() as s:
        # a bought 3 times (dynamic: evaluated now); a, b and c spent 2,000 or more (static: frozen list).
        loyal = segments.create_segment(
            s,
            actor=TEST_ACTOR,
            tz="Asia/Tokyo",
            data=SegmentIn(name="3+", rules=rule("order_count", "gte", 3)),
        ).id
        big = segments.create_segment(
            s, actor=TEST_ACTOR, tz="Asia/Tokyo",
            data=SegmentIn(name="big", kind="static", rules=rule("total_spend", "gte", 2000)),
        ).id  # fmt: skip
    today = date(2026, 4, 20)
    with db.session(write=False) as s:
        everyone = {c.month: c.size for c in cohorts(s, months=6, today=today)}
        only_a = cohorts(s, months=6, today=today, members=segment_members(s, loyal, "Asia/Tokyo"))
        spenders = cohorts(s, months=6, today=today, members=segment_members(s, big, "Asia/Tokyo"))
    assert everyone == {"2026-01": 2, "2026-02": 1, "2026-03": 1}
    assert [(c.month, c.size, c.retained) for c in only_a] == [("2026-01", 1, [1, 1, 0, 1])]
    assert {c.month: c.size for c in spenders} == {"2026-01": 2, "2026-02": 1}  # d (March) spent 800
    client = page_as("viewer", locale="ja")
    html = client.get(f"/analytics/cohorts?months=36&segment_id={loyal}").text
    assert 'data-cohort="2026-01"' in html and 'data-cohort="2026-02"' not in html
    assert f'<option value="{loyal}" selected>3+</option>' in html and "セグメント" in html
    body = api.get("/api/v1/analytics/cohorts", params={"months": 36, "segment_id": big}).json()
    assert [(c["month"], c["size"]) for c in body["cohorts"]] == [("2026-01", 2), ("2026-02", 1)]
    both = api.get("/api/v1/analytics/cohorts", params={"months": 36, "segment_id": big, "channel": "store"})
    assert [(c["month"], c["size"]) for c in both.json()["cohorts"]] == [("2026-02", 1)]
    missing = api.get("/api/v1/analytics/cohorts", params={"segment_id": 10**6})
    assert missing.status_code == 404 and missing.json()["error"] == "segment_not_found"
    stale = client.get("/analytics/cohorts?months=36&segment_id=999999").text
    assert "そのセグメントは存在しません" in stale and 'data-cohort="2026-02"' in stale  # everyone, said so
