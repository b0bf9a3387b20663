"""Login, throttling, API tokens and the users API."""

from fastapi.testclient import TestClient

from kokyaku.config import Settings
from kokyaku.db import Database
from tests.conftest import PASSWORD, csrf_of, make_user


def _login(client: TestClient, email: str, password: str) -> int:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token}).status_code


def test_login_sets_a_hardened_session_cookie(app, db: Database, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    make_user(db, settings, role="sales", email="s@example.com")
    client = TestClient(app, follow_redirects=False)
    token = csrf_of(client.get("/login").text)
    resp = client.post("/login", data={"email": "S@Example.com", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 303 and resp.headers["location"] == "/customers"
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/customers").status_code == 200


def test_login_without_csrf_token_is_refused(app, db: Database, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    make_user(db, settings, email="s@example.com")
    client = TestClient(app, follow_redirects=False)
    client.get("/login")
    resp = client.post("/login", data={"email": "s@example.com", "password": PASSWORD})
    assert resp.status_code == 403


def test_repeated_failures_lock_the_login_for_a_while(app, db: Database, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    make_user(db, settings, email="s@example.com")
    client = TestClient(app, follow_redirects=False)
    assert [
        _login(client, "s@example.com", "wrong-password") for _ in range(settings.login_max_failures)
    ] == [401] * settings.login_max_failures
    # even the right password is refused while locked
    assert _login(client, "s@example.com", PASSWORD) == 429


def test_open_redirect_after_login_is_prevented(app, db: Database, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    make_user(db, settings, email="s@example.com")
    client = TestClient(app, follow_redirects=False)
    token = csrf_of(client.get("/login").text)
    resp = client.post(
        "/login",
        data={
            "email": "s@example.com",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example.com/x",
        },
    )
    assert resp.headers["location"] == "/customers"


def test_tokens_are_listed_without_secret_and_revocable(api_as) -> None:  # type: ignore[no-untyped-def]
    me = api_as("sales")
    created = me.client.post("/api/v1/tokens", json={"name": "zapier"})
    assert created.status_code == 201
    token = created.json()["token"]
    listed = me.client.get("/api/v1/tokens").json()
    assert {t["name"] for t in listed} == {"api", "zapier"} and all("token" not in t for t in listed)
    other = TestClient(me.client.app, headers={"Authorization": f"Bearer {token}"})
    assert other.get("/api/v1/users/me").json()["email"] == me.user.email
    assert me.client.delete(f"/api/v1/tokens/{created.json()['id']}").status_code == 204
    assert other.get("/api/v1/users/me").status_code == 401


def test_only_admins_manage_users(api_as) -> None:  # type: ignore[no-untyped-def]
    admin = api_as("admin").client
    resp = admin.post(
        "/api/v1/users",
        json={"email": "new@example.com", "name": "新人", "role": "marketing", "password": "long-enough-pw"},
    )
    assert resp.status_code == 201 and resp.json()["role"] == "marketing"
    dup = admin.post(
        "/api/v1/users",
        json={"email": "NEW@example.com", "name": "x", "role": "viewer", "password": "long-enough-pw"},
    )
    assert dup.status_code == 409 and dup.json()["detail"][0]["field"] == "email"
    weak = admin.post(
        "/api/v1/users", json={"email": "w@example.com", "name": "x", "role": "god", "password": "short"}
    )
    assert {d["field"] for d in weak.json()["detail"]} == {"role", "password"}
    assert api_as("manager").client.post("/api/v1/users", json={}).status_code == 403
