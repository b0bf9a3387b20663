"""The builder in a real browser: conditions are added, changed and removed without a page load, the count
follows as you type, and a problem appears beside its condition."""

import re

import pytest
from playwright.sync_api import Page, expect

from kokyaku.db import Database
from kokyaku.segments.lifecycle import LifecycleRules
from kokyaku.segments.recompute import recompute_all
from tests.conftest import PASSWORD, make_user, screenshot
from tests.segments.factories import TZ, make_people

pytestmark = pytest.mark.e2e


def _login(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit], form button").last.click()
    page.wait_for_url(re.compile(r".*/customers.*"))


def _settled(page: Page) -> None:
    """Wait until htmx has swapped in and wired up the new tree: a change fired at an element htmx has not
    processed yet sends no request (the test raced it on a quiet machine; a person cannot)."""
    page.wait_for_function(
        "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


def test_build_a_segment_without_reloading(page: Page, live_server: str, db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        make_people(s)
        recompute_all(s, rules=LifecycleRules(), tz=TZ)
    user = make_user(db, settings, role="marketing", email="mk@example.com", locale="en")
    page.set_viewport_size({"width": 1280, "height": 900})
    _login(page, live_server, user.email)
    page.goto(f"{live_server}/segments/new")
    page.evaluate("window.__marker = 1")  # survives only if the page is never reloaded
    page.fill("[data-testid=segment-name]", "Tokyo and Kanagawa, 30+")
    page.select_option("select[name='c:0:value']", ["東京都", "神奈川県"])
    expect(page.get_by_test_id("live-count")).to_have_text("3")
    page.get_by_role("button", name="+ Condition").first.click()
    expect(page.locator("[data-testid=condition]")).to_have_count(2)
    _settled(page)
    page.select_option("select[name='c:1:field']", "age")
    expect(page.locator("select[name='c:1:operator']")).to_have_value("eq")
    _settled(page)
    page.select_option("select[name='c:1:operator']", "between")
    page.fill("input[name='c:1:value0']", "60")
    page.fill("input[name='c:1:value1']", "30")
    expect(page.locator("#err-1-value")).to_have_text("The lower bound is greater than the upper bound.")
    expect(page.get_by_test_id("live-count-invalid")).to_be_visible()
    page.fill("input[name='c:1:value0']", "30")
    page.fill("input[name='c:1:value1']", "60")
    expect(page.get_by_test_id("live-count")).to_have_text("2")
    expect(page.locator("#err-1-value")).to_have_text("")
    page.get_by_role("button", name="+ Group").first.click()
    expect(page.locator("[data-testid=group]")).to_have_count(2)
    screenshot(page, "segments-builder")
    page.locator("[data-path='2'] button", has_text="Remove group").click()
    expect(page.locator("[data-testid=group]")).to_have_count(1)
    assert page.evaluate("window.__marker") == 1
    page.get_by_test_id("save-segment").click()
    page.wait_for_url(re.compile(r".*/segments/\d+$"))
    expect(page.get_by_test_id("segment-size")).to_contain_text("2")
    expect(page.locator("#breakdown-chart .main-svg").first).to_be_visible()
    screenshot(page, "segments-detail")
    page.goto(f"{live_server}/rfm")
    expect(page.get_by_test_id("rfm-grid")).to_be_visible()
    screenshot(page, "segments-rfm")
    page.goto(f"{live_server}/lifecycle")
    expect(page.locator("#flow-bars .main-svg").first).to_be_visible()
    screenshot(page, "segments-lifecycle")
