"""Scores on the customer page, in segment rules and in the lifecycle's at-risk test."""

from collections.abc import Iterator
from datetime import date

import numpy as np
import pytest
from sqlalchemy import func, select

from kokyaku.analytics.hooks import alive_of
from kokyaku.analytics.scoring import score
from kokyaku.analytics.tables import CustomerScore
from kokyaku.commerce.models import CustomerMetrics
from kokyaku.customers.bulk import Prospect, create_prospects
from kokyaku.db import Database
from kokyaku.segments import service as segments
from kokyaku.segments.lifecycle import ALIVE_SOURCES
from tests.analytics.cdnow import import_cdnow
from tests.conftest import TEST_ACTOR

pytestmark = pytest.mark.slow


@pytest.fixture
def scored(db: Database) -> Iterator[dict[str, int]]:
    """CDNOW in yen (cents as yen), scored as of 1998-06-30."""
    with db.session() as session:
        ids = import_cdnow(session, currency="JPY")
    with db.session() as session:
        score(session, until=date(1998, 6, 30))
    yield ids


def busiest(db: Database) -> tuple[int, CustomerScore, CustomerMetrics]:
    with db.session(write=False) as session:
        best = session.scalars(select(CustomerScore).order_by(CustomerScore.expected_365d.desc())).first()
        assert best is not None
        metrics = session.get(CustomerMetrics, best.customer_id)
        assert metrics is not None
        session.expunge_all()
        return best.customer_id, best, metrics


def test_customer_page_shows_predictions_with_an_explanation(
    db: Database, scored: dict[str, int], page_as
) -> None:  # type: ignore[no-untyped-def]
    cid, s, m = busiest(db)
    viewer = page_as("viewer", locale="en")
    html = viewer.get(f"/customers/{cid}").text
    assert "Predictions" in html
    assert f'data-testid="p-alive">{round(s.p_alive * 100)}%' in html
    assert f"Bought {m.order_count} times, last " in html and "% likely still active." in html
    assert 'data-band="low"' in html and "¥" in html
    ja = page_as("sales", locale="ja").get(f"/customers/{cid}")
    assert ja.status_code == 200 and 'data-testid="predictions"' in ja.text
    # A customer without orders has no score yet and says so.
    with db.session(write=False) as session:
        unscored = session.scalar(select(func.max(CustomerScore.customer_id)))
    assert unscored is not None

    with db.session() as session:
        [new] = create_prospects(session, actor=TEST_ACTOR, prospects=[Prospect(name="New", identities=[])])
    assert 'data-testid="predictions-none"' in viewer.get(f"/customers/{new}").text


def test_scores_in_segment_rules(db: Database, scored: dict[str, int]) -> None:
    with db.session(write=False) as session:
        low = session.scalar(select(func.count()).where(CustomerScore.p_alive < 0.3))
        rich = session.scalar(select(func.count()).where(CustomerScore.clv_12m >= 5000))
        high = session.scalar(select(func.count()).where(CustomerScore.churn_band == "high"))
        rule = lambda c: {"op": "and", "conditions": [c]}  # noqa: E731
        assert (
            segments.count_rules(
                session, rule({"field": "p_alive", "operator": "lt", "value": 30}), "Asia/Tokyo"
            )
            == low
        )
        assert (
            segments.count_rules(
                session, rule({"field": "clv_12m", "operator": "gte", "value": 5000}), "Asia/Tokyo"
            )
            == rich
        )
        band = rule({"field": "churn_band", "operator": "in", "value": ["high"]})
        assert segments.count_rules(session, band, "Asia/Tokyo") == high > 0


def test_lifecycle_reads_probability_alive(db: Database, scored: dict[str, int]) -> None:
    assert alive_of in ALIVE_SOURCES
    ids = np.array([scored["00004"], scored["00018"], 10**9], dtype=np.int64)
    with db.session(write=False) as session:
        p = alive_of(session, ids)
        want = [session.get(CustomerScore, int(i)) for i in ids[:2]]
    assert p is not None and np.isnan(p[2])
    assert p[:2].tolist() == pytest.approx([w.p_alive for w in want if w is not None])
