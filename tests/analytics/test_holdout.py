"""The calibration/holdout check on data in the database: the BG/NBD paper's CDNOW figure through the CLI, the
page and the API, and clear errors when there is nothing to fit or the fit fails."""

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from kokyaku.analytics.models import BGNBD, expected_cumulative_repeats, repeat_purchase_tracking, summarize
from kokyaku.cli.main import app as cli
from kokyaku.commerce.bulk import bulk_insert_orders
from kokyaku.commerce.models import Order
from kokyaku.config import Settings, get_settings
from kokyaku.customers.bulk import Prospect, create_prospects
from kokyaku.db import Database
from tests.analytics.cdnow import CDNOW, import_cdnow
from tests.conftest import TEST_ACTOR, _wipe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def usd(settings: Settings, database: Database) -> Iterator[None]:
    """CDNOW is in dollars; the CLI uses the test database. The module's CDNOW import is wiped at its end."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOKYAKU_DATABASE_URL", settings.database_url)
        mp.setenv("KOKYAKU_DEFAULT_CURRENCY", "USD")
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()
    _wipe(database)


@pytest.fixture
def cdnow(database: Database, usd: None) -> None:
    """CDNOW imported once for this module's tests (a test using `db` empties it; the next imports again)."""
    with database.session() as session:
        if not session.scalar(select(func.count()).select_from(Order)):
            import_cdnow(session)


def holdout(*args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(cli, ["analytics", "holdout", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def paper_curve() -> tuple[np.ndarray, np.ndarray]:
    """The same check computed from the raw file with the pure functions (what test_models verifies)."""
    raw = np.loadtxt(CDNOW, dtype=str)
    ids, when = (
        raw[:, 0].astype(np.int64),
        np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in raw[:, 2]], "M8[D]"),
    )
    s = summarize(ids, when, raw[:, 4].astype(float), calibration_end="1997-09-30")
    model = BGNBD.fit(s.frequency, s.recency, s.age)
    tracking = repeat_purchase_tracking(ids, when, start="1997-01-01", end="1998-06-30")
    return tracking.cumulative, expected_cumulative_repeats(model.expected_purchases_new, tracking.entry, 78)


def test_cli_reproduces_the_papers_calibration_holdout_check(cdnow: None) -> None:
    out = holdout("--model", "bgnbd", "--until", "1997-09-30", "--unit", "week")
    curve = out["curve"]
    assert len(curve) == 78 and out["calibration_periods"] == 39 and out["holdout_periods"] == 39
    assert out["start"] == "1997-01-01" and out["end"] == "1998-06-30" and out["customers"] == 2357
    assert [f"{out['params'][k]:.3g}" for k in ("r", "alpha", "a", "b")] == ["0.243", "4.41", "0.793", "2.43"]
    # Weeks 1-39 hold the 2,457 calibration repeat purchases, weeks 40-78 the 1,882 of the holdout.
    assert curve[38]["actual"] == 2457 and out["holdout_repeats"]["actual"] == 1882
    assert [p["holdout"] for p in curve].index(True) == 39 and curve[39]["start"] == "1997-10-01"
    assert out["mape_percent"] < 3.5  # measured 2.63
    # Through the database it is the same curve as from the raw file.
    actual, predicted = paper_curve()
    assert [p["actual"] for p in curve] == actual.tolist()
    np.testing.assert_allclose([p["predicted"] for p in curve], predicted, atol=0.051)
    pareto = holdout("--model", "paretonbd", "--until", "1997-09-30", "--end", "1998-06-30")
    assert len(pareto["curve"]) == 78 and pareto["mape_percent"] < 3.5
    runner = CliRunner()
    early = runner.invoke(cli, ["analytics", "holdout", "--model", "bgnbd", "--until", "1996-12-31"])
    assert (
        early.exit_code == 1 and "--until" in early.output and "no purchases up to 1996-12-31" in early.output
    )
    wrong = runner.invoke(cli, ["analytics", "holdout", "--model", "gammagamma", "--until", "1997-09-30"])
    assert wrong.exit_code == 1 and "--model" in wrong.output


def figure_of(html: str) -> dict:  # type: ignore[type-arg]
    found = re.search(r'<script type="application/json" id="holdout-figure">(.*?)</script>', html, re.S)
    assert found, "no chart data on the page"
    return json.loads(found.group(1))


def test_validation_page_and_api_on_cdnow(cdnow: None, page_as, api) -> None:  # type: ignore[no-untyped-def]
    en = page_as("viewer", locale="en")
    kpis = en.get("/analytics").text
    assert 'href="/analytics/validation"' in kpis
    page = en.get("/analytics/validation?model=bgnbd&until=1997-09-30&unit=week")
    assert page.status_code == 200
    figure = figure_of(page.text)
    actual, forecast = figure["data"]
    assert actual["x"] == list(range(1, 79)) and actual["y"][38] == 2457 and actual["y"][77] == 4339
    assert len(forecast["y"]) == 78 and forecast["name"] == "Predicted (BG/NBD)"
    assert figure["layout"]["shapes"][0]["x0"] == 39.0  # the cut-off line after week 39
    mape = float(re.search(r'data-mape="([\d.]+)"', page.text).group(1))  # type: ignore[union-attr]
    assert mape < 3.5
    assert "Over the 39 weeks after the cut-off" in page.text and "Lower is better" in page.text
    ja = page_as("sales", locale="ja").get("/analytics/validation?model=bgnbd&until=1997-09-30&unit=week")
    assert (
        ja.status_code == 200
        and "基準日以降の39週間" in ja.text
        and "実績" in figure_of(ja.text)["data"][0]["name"]
    )
    # No data before the cut-off: a localized message, no chart, no 500.
    none = page_as("support", locale="ja").get("/analytics/validation?model=paretonbd&until=1990-01-01")
    assert none.status_code == 422 and "1990-01-01までの購入がありません" in none.text
    assert 'id="holdout-figure"' not in none.text
    bad = en.get("/analytics/validation?model=bgnbd&until=30/09/1997")
    assert bad.status_code == 422 and "The cut-off date must be a date" in bad.text
    # The form opens with a suggested cut-off halfway through the orders and runs nothing yet.
    blank = en.get("/analytics/validation")
    assert blank.status_code == 200 and 'value="1997-' in blank.text and "holdout-figure" not in blank.text
    # The API returns the same check.
    body = api.get("/api/v1/analytics/holdout", params={"model": "bgnbd", "until": "1997-09-30"}).json()
    assert len(body["curve"]) == 78 and body["mape_percent"] == pytest.approx(mape, abs=0.01)
    early = api.get("/api/v1/analytics/holdout", params={"model": "bgnbd", "until": "1990-01-01"})
    assert early.status_code == 422 and early.json()["error"] == "invalid"
    assert early.json()["detail"][0]["field"] == "until"
    late = api.get("/api/v1/analytics/holdout", params={"model": "bgnbd", "until": "1998-06-30"})
    assert late.status_code == 422 and "shorter than one period" in late.json()["detail"][0]["message"]


def test_a_fit_that_fails_is_explained_not_a_500(db: Database, usd: None, page_as, api) -> None:  # type: ignore[no-untyped-def]
    def order(cid: int, month: int, day: int) -> dict:  # type: ignore[type-arg]
        when = datetime(2026, month, day, 3, tzinfo=UTC)
        lines = [{"name": "item", "quantity": 1, "unit_price": 1000}]
        return {
            "customer_id": cid,
            "channel": "online",
            "ordered_at": when,
            "currency": "USD",
            "lines": lines,
        }

    with db.session() as s:
        ids = create_prospects(
            s, actor=TEST_ACTOR, prospects=[Prospect(name=f"p{i}", identities=[]) for i in range(4)]
        )
        # Nobody buys twice before the cut-off: the models cannot be identified.
        orders = [order(ids[0], 1, 5), order(ids[1], 1, 12), order(ids[2], 1, 20), order(ids[0], 3, 3)]
        bulk_insert_orders(s, orders, actor=TEST_ACTOR, timeline=False)
    page = page_as("viewer", locale="ja").get("/analytics/validation?model=bgnbd&until=2026-01-31")
    assert page.status_code == 400 and "BG/NBD モデルを当てはめられませんでした" in page.text
    assert "別の基準日" in page.text and 'id="holdout-figure"' not in page.text
    failed = api.get(
        "/api/v1/analytics/holdout", params={"model": "paretonbd", "until": str(date(2026, 1, 31))}
    )
    assert failed.status_code == 400 and failed.json()["error"] == "fit_failed"
