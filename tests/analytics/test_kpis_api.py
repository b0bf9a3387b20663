"""The KPI board over a chosen period (at-risk and churned from the stage-change history) on the page and the
API, and a customer's scores through the API."""

from datetime import UTC, date, datetime

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from kokyaku.analytics.kpis import board
from kokyaku.analytics.scoring import write_scores
from kokyaku.commerce.bulk import bulk_insert_orders
from kokyaku.customers.bulk import Prospect, create_prospects
from kokyaku.db import Database, utcnow
from kokyaku.segments.models import CustomerLifecycle, LifecycleChange
from tests.conftest import TEST_ACTOR


def _order(cid: int, when: datetime) -> dict:  # type: ignore[type-arg]
    return {"customer_id": cid, "channel": "online", "ordered_at": when,
            "lines": [{"name": "item", "quantity": 1, "unit_price": 1000}]}  # fmt: skip


@pytest.fixture
def february(db: Database) -> list[int]:
    """Six customers and their stage changes around February 2026 (Tokyo: the month starts at Jan 31 15:00 UTC
    and ends at Feb 28 15:00 UTC)."""
    with db.session() as s:
        ids = create_prospects(
            s, actor=TEST_ACTOR, prospects=[Prospect(name=f"c{i}", identities=[]) for i in range(6)]
        )
        c1, c2, c3, c4, c5, c6 = ids
        t = lambda *a: datetime(*a, tzinfo=UTC)  # noqa: E731
        changes = [
            (c1, "at_risk", "repeat", t(2026, 1, 20)),  # before the period
            (c1, "churned", "at_risk", t(2026, 2, 10)),  # churned in February
            (c2, "at_risk", "new", t(2026, 2, 5)),  # at risk in February...
            (c2, "won_back", "at_risk", t(2026, 2, 15)),
            (c2, "at_risk", "won_back", t(2026, 2, 25)),  # ...twice: counted once
            (c3, "at_risk", "repeat", t(2026, 2, 28, 14)),  # Feb 28 23:00 in Tokyo: inside
            (c4, "at_risk", "repeat", t(2026, 2, 28, 15, 30)),  # Mar 1 00:30 in Tokyo: outside
            (c5, "churned", "at_risk", t(2026, 1, 31, 15, 30)),  # Feb 1 00:30 in Tokyo: inside
            (c6, "new", None, t(2026, 2, 3)),
        ]
        s.execute(
            insert(LifecycleChange),
            [{"customer_id": c, "stage": st, "from_stage": f, "changed_at": at} for c, st, f, at in changes],
        )
        now = {c1: "churned", c2: "at_risk", c3: "at_risk", c4: "at_risk", c5: "churned", c6: "new"}
        s.execute(
            insert(CustomerLifecycle),
            [
                {"customer_id": c, "stage": st, "since": utcnow(), "computed_at": utcnow()}
                for c, st in now.items()
            ],
        )
        orders = [
            _order(c1, t(2025, 12, 1, 3)), _order(c1, t(2026, 2, 3, 3)),  # c1: old customer, active
            _order(c6, t(2026, 2, 3, 3)), _order(c6, t(2026, 2, 20, 3)),  # c6: new, bought twice
        ]  # fmt: skip
        bulk_insert_orders(s, orders, actor=TEST_ACTOR, timeline=False)
    return ids


def test_kpi_board_counts_the_period(db: Database, february: list[int], page_as, api) -> None:  # type: ignore[no-untyped-def]
    with db.session(write=False) as s:
        v = board(s, start=date(2026, 2, 1), end=date(2026, 3, 1), tz="Asia/Tokyo").values
    assert (v["new"], v["active"], v["repeat"]) == (1, 2, 50.0)
    assert (v["at_risk"], v["churned"]) == (2, 2)  # c2 and c3; c1 and c5
    assert (v["at_risk_now"], v["churned_now"]) == (3, 2)
    with db.session(write=False) as s:
        march = board(s, start=date(2026, 3, 1), end=date(2026, 4, 1), tz="Asia/Tokyo").values
    assert (march["at_risk"], march["churned"], march["new"]) == (1, 0, 0)  # c4
    html = page_as("viewer", locale="en").get("/analytics?from=2026-02-01&to=2026-02-28").text
    assert "entered the at-risk lifecycle stage during the period" in html
    assert "in the at-risk lifecycle stage today" in html
    ja = page_as("sales", locale="ja").get("/analytics?from=2026-02-01&to=2026-02-28").text
    assert "期間内にライフサイクルが「離反予備軍」になった顧客" in ja
    body = api.get("/api/v1/analytics/kpis", params={"from": "2026-02-01", "to": "2026-02-28"}).json()
    assert (body["start"], body["end"]) == ("2026-02-01", "2026-02-28")
    kpis = body["kpis"]
    assert kpis["at_risk"]["value"] == 2 and kpis["churned"]["value"] == 2 and kpis["new"]["value"] == 1
    assert kpis["at_risk"]["definition"].startswith("Customers who entered the at-risk")
    assert all(k["definition"] and k["label"] for k in kpis.values()) and body["nps"]["definition"]
    only_from = api.get("/api/v1/analytics/kpis", params={"from": "2026-03-01"}).json()
    assert only_from["start"] == "2026-03-01" and only_from["kpis"]["at_risk"]["value"] == 1
    backwards = api.get("/api/v1/analytics/kpis", params={"from": "2026-03-01", "to": "2026-02-01"})
    assert backwards.status_code == 422 and backwards.json()["detail"][0]["field"] == "from"
    ancient = api.get("/api/v1/analytics/kpis", params={"from": "0001-01-01"})
    assert ancient.status_code == 422 and ancient.json()["error"] == "invalid"


def test_customer_scores_api(db: Database, february: list[int], api_as, app) -> None:  # type: ignore[no-untyped-def]
    c1, c2 = february[:2]
    with db.session() as s:
        write_scores(
            s, customer_ids=np.array([c1]), p_alive=np.array([0.82]), expected_90d=np.array([0.4]),
            expected_365d=np.array([1.5]), clv_12m=np.array([12000]), model="bgnbd", scored_at=utcnow(),
        )  # fmt: skip
    viewer = api_as("viewer").client
    got = viewer.get(f"/api/v1/customers/{c1}/scores")
    assert got.status_code == 200
    body = got.json()
    assert body["p_alive"] == 0.82 and body["clv_12m"] == 12000 and body["currency"] == "JPY"
    assert body["churn_band"] == "low" and body["model"] == "bgnbd" and body["expected_365d"] == 1.5
    unscored = viewer.get(f"/api/v1/customers/{c2}/scores")
    assert unscored.status_code == 404 and unscored.json()["error"] == "scores_not_found"
    nobody = viewer.get("/api/v1/customers/999999/scores")
    assert nobody.status_code == 404 and nobody.json()["error"] == "customer_not_found"
    assert viewer.get("/api/v1/customers/0/scores").json()["error"] == "validation_error"
    assert TestClient(app).get(f"/api/v1/customers/{c1}/scores").status_code == 401
