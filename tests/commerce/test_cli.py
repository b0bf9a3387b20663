"""kokyaku metrics check / recompute: exit codes and what they print, on the test database."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from kokyaku.cli.main import app as cli
from kokyaku.commerce.models import CustomerMetrics
from kokyaku.config import Settings, get_settings
from kokyaku.db import Database
from tests.commerce.factories import make_order
from tests.customers.factories import make_customer

runner = CliRunner()
T0 = datetime(2025, 2, 1, tzinfo=UTC)


@pytest.fixture
def env(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KOKYAKU_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KOKYAKU_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_check_passes_then_reports_drift_until_recompute(env: None, db: Database) -> None:
    with db.session() as s:
        a, b = make_customer(s, name="甲"), make_customer(s, name="乙")
        make_order(s, customer_id=a.id, at=T0, price=1200)
        make_order(s, customer_id=b.id, at=T0, price=800)
    ok = runner.invoke(cli, ["metrics", "check"])
    assert ok.exit_code == 0 and "no drift" in ok.output
    with db.session() as s:  # someone edits the table behind the service's back
        s.execute(update(CustomerMetrics).where(CustomerMetrics.customer_id == b.id).values(order_count=5))
    bad = runner.invoke(cli, ["metrics", "check"])
    assert bad.exit_code == 1
    assert f"customer {b.id}: order_count stored 5 expected 1" in bad.output
    assert f"customer {a.id}" not in bad.output
    assert "1 customers drift" in bad.output
    fixed = runner.invoke(cli, ["metrics", "recompute"])
    assert fixed.exit_code == 0 and "recomputed metrics: 2 customers" in fixed.output
    assert runner.invoke(cli, ["metrics", "check"]).exit_code == 0


def test_recompute_of_chosen_customers(env: None, db: Database) -> None:
    with db.session() as s:
        a = make_customer(s)
        make_order(s, customer_id=a.id, at=T0, price=500)
        s.execute(update(CustomerMetrics).values(total_spend=1))
    result = runner.invoke(cli, ["metrics", "recompute", "--customer", str(a.id)])
    assert result.exit_code == 0 and "1 customers" in result.output
    assert runner.invoke(cli, ["metrics", "check"]).exit_code == 0
