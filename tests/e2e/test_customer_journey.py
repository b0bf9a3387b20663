"""A user, in a real browser at phone width: log in, create a customer with a Japanese name and kana,
find them with a two-character query, open the page, edit a field, see the audit entry, switch language."""

import re

import pytest
from playwright.sync_api import Page, expect

from kokyaku.config import Settings
from kokyaku.db import Database
from tests.conftest import PASSWORD, make_user, screenshot

pytestmark = pytest.mark.e2e


def test_customer_journey(page: Page, live_server: str, db: Database, settings: Settings) -> None:
    make_user(db, settings, role="sales", email="hanako@example.com")
    # the browser says Japanese, so the login page is Japanese
    page.goto(f"{live_server}/customers")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("メールアドレス").fill("hanako@example.com")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("heading", name="顧客")).to_be_visible()

    page.get_by_role("link", name="新規顧客").click()
    page.get_by_label("名前", exact=True).fill("小松 菜奈")
    page.get_by_label("フリガナ").fill("こまつ なな")
    page.get_by_label("メールアドレス（カンマ区切り）").fill("nana.komatsu@example.jp")
    page.get_by_label("電話番号（カンマ区切り）").fill("０９０－５５５５－１２３４")
    page.get_by_label("都道府県").select_option("北海道")
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_test_id("customer-name")).to_contain_text("小松 菜奈")
    expect(page.get_by_text("090-5555-1234")).to_be_visible()  # stored as E.164, shown the Japanese way

    # search as you type: two characters, in katakana, while the stored kana is hiragana
    page.get_by_role("link", name="顧客").first.click()
    page.get_by_test_id("search").press_sequentially("コマ", delay=50)
    result = page.locator("#rows a", has_text="小松 菜奈")
    expect(result).to_be_visible()
    expect(page).to_have_url(re.compile(r"q=%E3%82%B3%E3%83%9E"))
    screenshot(page, "search-ja")
    result.click()

    page.get_by_role("link", name="編集").click()
    page.get_by_label("市区町村").fill("札幌市")
    page.get_by_role("button", name="保存").click()
    audit = page.get_by_test_id("audit")
    expect(audit).to_contain_text("市区町村")
    expect(audit.locator("ins", has_text="札幌市")).to_be_visible()
    screenshot(page, "customer-ja")

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Change history")).to_be_visible()
    expect(page.get_by_test_id("audit")).to_contain_text("City")
    expect(page.get_by_text("Hokkaido")).to_be_visible()
    screenshot(page, "customer-en")


def test_form_errors_are_shown_at_the_field(
    page: Page, live_server: str, db: Database, settings: Settings
) -> None:
    make_user(db, settings, role="sales", email="taro@example.com", locale="en")
    page.goto(f"{live_server}/login")
    page.get_by_label("メールアドレス").fill("taro@example.com")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.goto(f"{live_server}/customers/new")
    page.get_by_label("Name", exact=True).fill("Test")
    page.get_by_label("Emails (comma-separated)").fill("not-an-email")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#err-emails")).to_have_text("Not a valid email address.")
    expect(page.get_by_label("Emails (comma-separated)")).to_have_attribute("aria-invalid", "true")
