"""`kokyaku analytics fit` on CDNOW imported through the normal order path reproduces the published fits."""

import json
from collections.abc import Iterator
from datetime import date

import numpy as np
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from kokyaku.analytics.features import extract
from kokyaku.cli.main import app as cli
from kokyaku.commerce.models import Order
from kokyaku.config import Settings, get_settings
from kokyaku.db import Database
from tests.analytics.cdnow import import_cdnow

pytestmark = pytest.mark.slow


def sig3(value: float) -> str:
    return f"{value:.3g}"


@pytest.fixture
def usd(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    """CDNOW is in dollars: the business's currency is USD for these tests; the CLI uses the test database."""
    monkeypatch.setenv("KOKYAKU_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KOKYAKU_DEFAULT_CURRENCY", "USD")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def cdnow(db: Database, usd: None) -> dict[str, int]:
    with db.session() as session:
        return import_cdnow(session)


def fit(*args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(cli, ["analytics", "fit", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_features_count_repeat_days_like_the_paper(db: Database, cdnow: dict[str, int]) -> None:
    with db.session(write=False) as session:
        f = extract(session, until=date(1997, 9, 30))
    assert f.customer_id.size == 2357
    assert int((f.frequency > 0).sum()) == 946
    assert int(f.frequency.sum()) == 2457
    assert f.age("week").max() == pytest.approx(272 / 7)


def test_void_orders_and_later_orders_do_not_count(db: Database, cdnow: dict[str, int]) -> None:
    with db.session() as session:
        session.execute(update(Order).where(Order.customer_id == cdnow["00004"]).values(status="cancelled"))
    with db.session(write=False) as session:
        f = extract(session, until=date(1997, 1, 31))
    assert cdnow["00004"] not in set(f.customer_id.tolist())
    assert f.last_day.max() <= (date(1997, 1, 31) - date(1970, 1, 1)).days
    assert np.isnan(f.monetary[f.frequency == 0]).all()


def test_cli_fits_bgnbd_to_the_published_parameters(cdnow: dict[str, int]) -> None:
    out = fit("--model", "bgnbd", "--until", "1997-09-30", "--unit", "week")
    p = out["params"]
    assert [sig3(p[k]) for k in ("r", "alpha", "a", "b")] == ["0.243", "4.41", "0.793", "2.43"]
    assert out["log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    assert out["customers"] == 2357


def test_cli_fits_paretonbd_and_gammagamma_to_the_published_parameters(cdnow: dict[str, int]) -> None:
    out = fit("--model", "paretonbd", "--until", "1997-09-30")
    p = out["params"]
    assert [sig3(p[k]) for k in ("r", "alpha", "s", "beta")] == ["0.553", "10.6", "0.606", "11.7"]
    assert out["log_likelihood"] == pytest.approx(-9595.0, abs=0.1)
    spend = fit("--model", "gammagamma", "--until", "1997-09-30")
    assert spend["customers"] == 946 and spend["currency"] == "USD"
    assert [sig3(spend["params"][k]) for k in ("p", "q", "gamma")] == ["6.25", "3.74", "15.4"]


def test_cli_fit_failures_are_one_line(db: Database, usd: None) -> None:
    runner = CliRunner()
    empty = runner.invoke(cli, ["analytics", "fit", "--model", "bgnbd", "--until", "1997-09-30"])
    assert empty.exit_code == 1 and "no orders" in empty.output
    bad = runner.invoke(cli, ["analytics", "fit", "--model", "bgnbd", "--until", "30/09/1997"])
    assert bad.exit_code == 1 and "--until" in bad.output
    wrong = runner.invoke(cli, ["analytics", "fit", "--model", "nbd", "--until", "1997-09-30"])
    assert wrong.exit_code == 1 and "--model" in wrong.output
