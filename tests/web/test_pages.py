"""Pages: permission checks, CSRF, localized messages at the field, the customer page and its audit trail."""

import re

from fastapi.testclient import TestClient

from tests.conftest import csrf_of


def test_pages_need_a_login(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app, follow_redirects=False)
    for path in ("/customers", "/customers/1", "/admin/users", "/account"):
        resp = client.get(path)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/login")


def test_create_with_errors_shows_localized_messages_at_the_field(page_as) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = page_as("sales", locale="ja")
    token = csrf_of(client.get("/customers/new").text)
    resp = client.post(
        "/customers/new",
        data={"csrf_token": token, "name": "", "emails": "bad-address", "phones": "12", "name_kana": "山田"},
    )
    assert resp.status_code == 422
    html = resp.text
    assert "メールアドレスの形式が正しくありません。" in html
    assert "電話番号の形式が正しくありません。" in html
    assert "ひらがなまたはカタカナで入力してください。" in html
    assert "必須項目です。" in html and "Input should be" not in html  # the empty name, in Japanese too
    assert 'value="bad-address"' in html  # what the user typed is kept
    assert "該当する顧客はいません。" in client.get("/customers").text  # nothing was written


def test_create_edit_and_see_the_audit_entry(page_as) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = page_as("sales", locale="en")
    token = csrf_of(client.get("/customers/new").text)
    resp = client.post(
        "/customers/new",
        data={
            "csrf_token": token,
            "name": "中村 美咲",
            "name_kana": "ナカムラ ミサキ",
            "emails": "misaki@example.jp",
            "prefecture": "京都府",
        },
    )
    assert resp.status_code == 303
    url = resp.headers["location"]
    page = client.get(url).text
    assert "中村 美咲" in page and "ナカムラ ミサキ" in page and "Kyoto" in page
    form = client.get(url + "/edit").text
    assert 'value="misaki@example.jp"' in form
    resp = client.post(
        url + "/edit",
        data={
            "csrf_token": csrf_of(form),
            "name": "中村 美咲",
            "name_kana": "ナカムラ ミサキ",
            "emails": "misaki@example.jp",
            "prefecture": "京都府",
            "city": "京都市",
        },
    )
    assert resp.status_code == 303
    history = client.get(url).text
    assert re.search(r"City</span>: <del>—</del> → <ins>京都市</ins>", history)


def test_search_as_you_type_returns_rows(page_as, api) -> None:  # type: ignore[no-untyped-def]
    api.post("/api/v1/customers", json={"name": "渡辺 健", "name_kana": "ワタナベ ケン"})
    api.post("/api/v1/customers", json={"name": "小林 優", "name_kana": "コバヤシ ユウ"})
    client: TestClient = page_as("viewer")
    rows = client.get("/customers?q=わた", headers={"HX-Request": "true"}).text
    assert "渡辺 健" in rows and "小林 優" not in rows and "<html" not in rows


def test_forms_without_csrf_are_refused(page_as) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = page_as("admin")
    resp = client.post("/customers/new", data={"name": "x"})
    assert resp.status_code == 403 and "expired" in resp.text


def test_viewer_sees_no_edit_controls_and_cannot_post(page_as, api) -> None:  # type: ignore[no-untyped-def]
    cid = api.post("/api/v1/customers", json={"name": "森 一"}).json()["id"]
    client: TestClient = page_as("viewer")
    page = client.get(f"/customers/{cid}").text
    assert "/edit" not in page and "New customer" not in client.get("/customers").text
    token = csrf_of(page)
    assert client.post("/customers/new", data={"csrf_token": token, "name": "x"}).status_code == 403


def test_language_follows_choice_then_browser(page_as, app) -> None:  # type: ignore[no-untyped-def]
    anonymous = TestClient(app)
    assert "ログイン" in anonymous.get("/login", headers={"Accept-Language": "ja,en;q=0.5"}).text
    assert "Log in" in anonymous.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"}).text
    client: TestClient = page_as("sales", locale="en")
    assert "Customers" in client.get("/customers").text
    token = csrf_of(client.get("/customers").text)
    client.post("/lang", data={"csrf_token": token, "locale": "ja", "next": "/customers"})
    assert "顧客" in client.get("/customers").text and "新規顧客" in client.get("/customers").text


def test_admin_manages_users_and_custom_fields(page_as) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = page_as("admin", locale="en")
    token = csrf_of(client.get("/admin/users").text)
    bad = client.post(
        "/admin/users",
        data={"csrf_token": token, "name": "x", "email": "nope", "password": "short", "role": "sales"},
    )
    assert bad.status_code == 422 and "Not a valid email address." in bad.text
    ok = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "name": "新人",
            "email": "n@example.com",
            "password": "long-enough-pw",
            "role": "sales",
        },
    )
    assert ok.status_code == 303 and "n@example.com" in client.get("/admin/users").text
    ok = client.post(
        "/admin/fields",
        data={
            "csrf_token": token,
            "key": "rank",
            "label_ja": "ランク",
            "label_en": "Rank",
            "type": "choice",
            "choices": "gold, silver",
            "applies_to": "person",
        },
    )
    assert ok.status_code == 303
    form = client.get("/customers/new").text
    assert 'name="custom.rank"' in form and "<option >gold</option>" in form


def test_sales_cannot_open_admin_pages(page_as) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = page_as("sales")
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/fields").status_code == 403
