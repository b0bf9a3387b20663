"""The import pages as a user goes through them: upload, preview and mapping, dry run, import, results."""

import re
from collections import Counter
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kokyaku.app import create_app
from kokyaku.config import Settings
from kokyaku.customers.models import Customer
from kokyaku.db import Database
from kokyaku.i18n import gettext
from kokyaku.imports.models import ImportMapping, ImportRun
from kokyaku.jobs.worker import Worker
from tests.conftest import csrf_of
from tests.imports.helpers import JA_HEADER, person, write_csv


@pytest.fixture
def app(settings: Settings, db: Database, tmp_path: Path) -> FastAPI:
    """The app with uploads under the test's folder and a 1 MB upload limit."""
    changed = settings.model_copy(update={"data_dir": str(tmp_path / "data"), "import_max_upload_mb": 1})
    return create_app(changed, db)


def drain(db: Database) -> Counter[str]:
    """Run the queued jobs, as the worker of `kokyaku serve` would."""
    return Worker(db, run_schedules=False, poll_interval=0.01).drain()


def csv_bytes(tmp_path: Path, rows: list[list[str]], encoding: str = "cp932") -> bytes:
    return write_csv(tmp_path / "upload.csv", rows, encoding).read_bytes()


def upload(client: TestClient, content: bytes, kind: str = "customers", name: str = "顧客.csv") -> TestClient:
    token = csrf_of(client.get("/imports").text)
    return client.post(  # type: ignore[return-value]
        "/imports", data={"csrf_token": token, "kind": kind}, files={"file": (name, content, "text/csv")}
    )


def mapping_form(html: str) -> dict[str, str]:
    """The column selects as the browser would post them, with what the page proposed selected."""
    out = {}
    for name, body in re.findall(r'<select name="(col-\d+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        out[name] = chosen.group(1) if chosen else ""
    return out


def test_upload_preview_dry_run_then_import(page_as, db: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = page_as("sales", locale="ja")
    bad = ["不正 データ", "", "not-an-email", "", "", "", "", "", ""]
    resp = upload(client, csv_bytes(tmp_path, [JA_HEADER, person(1), bad, person(2)]))
    assert resp.status_code == 303
    page = client.get(resp.headers["location"])
    assert page.status_code == 200 and "Shift_JIS" in page.text and "山田 太郎1" in page.text
    columns = mapping_form(page.text)
    assert columns["col-0"] == "name" and columns["col-2"] == "email" and columns["col-6"] == "birthday"
    run_url = resp.headers["location"]
    token = csrf_of(page.text)

    started = client.post(f"{run_url}/start", data={"csrf_token": token, "mode": "dry_run", **columns})
    assert started.status_code == 303 and started.headers["location"] == run_url
    queued = client.get(run_url)
    assert 'data-status="queued"' in queued.text and "job-progress" in queued.text
    assert drain(db)["succeeded"] == 1
    checked = client.get(run_url).text
    assert re.search(r'data-testid="count-created">2<', checked) and re.search(
        r'data-testid="count-invalid">1<', checked
    )
    assert gettext("ja", "Not a valid email address.") in checked  # the problem in the user's language
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 0

    now = client.post(f"{run_url}/start", data={"csrf_token": csrf_of(checked), "mode": "skip_invalid"})
    assert now.status_code == 303 and now.headers["location"] != run_url
    drain(db)
    done = client.get(now.headers["location"]).text
    assert 'data-status="done"' in done and re.search(r'data-testid="count-created">2<', done)
    errors = client.get(now.headers["location"] + "/errors.csv")
    assert errors.status_code == 200 and errors.content.decode("utf-8-sig").splitlines()[1].startswith("3,")
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 2
        runs = s.scalars(select(ImportRun).order_by(ImportRun.id)).all()
    assert [(r.mode, r.status) for r in runs] == [("dry_run", "done"), ("skip_invalid", "done")]
    assert "顧客.csv" in client.get("/imports").text


def test_all_or_nothing_from_the_page_reports_and_writes_nothing(
    page_as, db: Database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    client = page_as("admin")
    resp = upload(
        client, csv_bytes(tmp_path, [JA_HEADER, person(1), ["x", "", "bad", "", "", "", "", "", ""]])
    )
    page = client.get(resp.headers["location"])
    data = {"csrf_token": csrf_of(page.text), "mode": "all_or_nothing", **mapping_form(page.text)}
    client.post(resp.headers["location"] + "/start", data=data)
    drain(db)
    result = client.get(resp.headers["location"]).text
    assert 'data-status="invalid"' in result and "nothing was imported" in result
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 0


def test_changed_mapping_and_saved_mapping(page_as, db: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = page_as("manager")
    rows = [["お客様", "連絡先メール", "ランク"], ["山田 太郎", "taro@example.jp", "A"]]
    resp = upload(client, csv_bytes(tmp_path, rows, "utf-8"))
    run_url = resp.headers["location"]
    page = client.get(run_url)
    assert mapping_form(page.text) == {"col-0": "", "col-1": "", "col-2": ""}  # nothing recognised
    assert "お客様" in page.text and "not imported" in page.text
    token = csrf_of(page.text)
    # starting without a name column is refused at the mapping, not at row 2
    refused = client.post(f"{run_url}/start", data={"csrf_token": token, "mode": "dry_run"})
    assert refused.status_code == 422 and "Map a column" in refused.text
    chosen = {"col-0": "name", "col-1": "email", "col-2": ""}
    saved = client.post(f"{run_url}/mapping", data={"csrf_token": token, "mapping_name": "shop A", **chosen})
    assert saved.status_code == 303 and saved.headers["location"].endswith("?mapping=shop%20A")
    with db.session(write=False) as s:
        mapping = s.scalar(select(ImportMapping))
    assert mapping is not None and mapping.columns == {
        "お客様": "name",
        "連絡先メール": "email",
        "ランク": "",
    }
    # the next file of the same shop: choosing the saved mapping selects its fields
    second = upload(client, csv_bytes(tmp_path, [*rows, ["佐藤 花子", "hanako@example.jp", "B"]], "utf-8"))
    again = client.get(second.headers["location"] + "?mapping=shop A")
    assert mapping_form(again.text) == chosen
    client.post(
        second.headers["location"] + "/start", data={"csrf_token": token, "mode": "all_or_nothing", **chosen}
    )
    drain(db)
    with db.session(write=False) as s:
        assert sorted(s.scalars(select(Customer.email))) == ["hanako@example.jp", "taro@example.jp"]


@pytest.mark.parametrize(
    ("content", "status", "text"),
    [
        (b"", 400, "The file is empty."),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", 400, "binary data"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00", 400, "Excel workbook"),
        (b'name,email\n"A,a@example.jp\n', 200, None),  # malformed further down: refused when run
        (b"a" * (1024 * 1024 + 10), 413, "larger than the limit of 1 MB"),
    ],
)
def test_bad_uploads_get_a_clear_message(
    page_as, db: Database, content: bytes, status: int, text: str | None
) -> None:  # type: ignore[no-untyped-def]
    client = page_as("sales")
    resp = upload(client, content)
    if text is None:
        assert resp.status_code == 303 or "not closed" in resp.text
        return
    assert resp.status_code == status and text in resp.text
    with db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(ImportRun)) == 0


def test_malformed_file_fails_the_run_with_the_row(page_as, db: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = page_as("sales")
    content = (
        "氏名,メール\n" + "".join(f"人{i},p{i}@example.jp\n" for i in range(30)) + '"壊れ,x@example.jp\n'
    )
    resp = upload(client, content.encode("utf-8"))
    page = client.get(resp.headers["location"])
    client.post(
        resp.headers["location"] + "/start",
        data={"csrf_token": csrf_of(page.text), "mode": "all_or_nothing", **mapping_form(page.text)},
    )
    drain(db)
    result = client.get(resp.headers["location"]).text
    assert 'data-status="failed"' in result and "Row 32" in result


def test_import_pages_need_write_permission_and_csrf(page_as, db: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    viewer = page_as("viewer")
    assert viewer.get("/imports").status_code == 403
    sales = page_as("sales")
    no_token = sales.post(
        "/imports", data={"kind": "customers"}, files={"file": ("a.csv", b"name\nA\n", "text/csv")}
    )
    assert no_token.status_code == 403
    resp = upload(sales, csv_bytes(tmp_path, [JA_HEADER, person(1)]))
    run_url = resp.headers["location"]
    # another user of a role that sees only its own imports does not see this one
    other = page_as("support")
    assert other.get(run_url).status_code == 404
    assert page_as("manager").get(run_url).status_code == 200


def test_list_pages_link_to_exports(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    client = page_as("sales")
    page = client.get("/customers?prefecture=東京都").text
    link = re.search(r'href="(/exports/customers\?[^"]+format=csv)"', page)
    assert link is not None
    resp = client.get(link.group(1).replace("&amp;", "&"))
    assert resp.status_code == 200 and resp.content.startswith(b"\xef\xbb\xbf")
    assert page_as("viewer").get("/exports/customers?format=csv").status_code == 403
