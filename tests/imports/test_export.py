"""Exports: CSV for Excel and XLSX, the list's filters, formulas neutralised, and an export imports back
without changing anything."""

import csv
import gc
import io
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select

from kokyaku.audit.models import AuditEntry
from kokyaku.customers import service as customers
from kokyaku.customers.models import Customer
from kokyaku.customers.schemas import CustomerCreate, CustomFieldIn
from kokyaku.db import Database
from kokyaku.imports import export
from kokyaku.imports.service import Options, run_import
from tests.commerce.factories import make_order
from tests.conftest import TEST_ACTOR

EVIL = '=HYPERLINK("http://x","y")'


def _people(db: Database) -> dict[str, int]:
    with db.session() as s:
        customers.create_custom_field(
            s,
            actor=TEST_ACTOR,
            data=CustomFieldIn(key="visits", label_ja="来店回数", label_en="Visits", type="number"),
        )
        company = customers.create_customer(
            s,
            actor=TEST_ACTOR,
            data=CustomerCreate(kind="company", name="株式会社テスト", phones=["0312345678"]),
        )
        made = {
            "taro": customers.create_customer(
                s,
                actor=TEST_ACTOR,
                data=CustomerCreate(
                    name="山田 太郎",
                    name_kana="やまだ たろう",
                    emails=["taro@example.jp", "t2@example.jp"],
                    phones=["090-1234-5678", "+1 415 555 2671"],
                    prefecture="東京都",
                    birthday="1990-01-02",
                    gender="male",
                    interests=["旅行", "グルメ"],
                    company_id=company.id,
                    custom={"visits": 3},
                    external_ids=[{"source": "pos", "value": "M-1"}],
                ),
            ).id,  # type: ignore[list-item]
            "evil": customers.create_customer(
                s,
                actor=TEST_ACTOR,
                data=CustomerCreate(
                    name=EVIL, note="+81 is a prefix; -5 a number; @home", emails=["evil@example.jp"]
                ),
            ).id,
            "plain": customers.create_customer(
                s, actor=TEST_ACTOR, data=CustomerCreate(name="名前だけ", prefecture="大阪府")
            ).id,
        }
        made["company"] = company.id
    return made


def _csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel opens Japanese correctly
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_customer_csv_in_the_users_language(db: Database, api: TestClient) -> None:
    ids = _people(db)
    resp = api.get("/api/v1/exports/customers", params={"format": "csv", "kind": "person", "lang": "ja"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    rows = _csv(resp.content)
    header, body = rows[0], {int(r[0]): dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert "来店回数" in header and len(body) == 3 and ids["company"] not in body
    taro = list(body[ids["taro"]].values())
    assert "taro@example.jp" in taro and "t2@example.jp" in taro and "090-1234-5678" in taro
    assert "株式会社テスト" in taro and "グルメ; 旅行" in taro and "3" in taro
    assert "'+1 415-555-2671" in taro  # an international number starts with +: neutralised
    evil = list(body[ids["evil"]].values())
    assert "'" + EVIL in evil and "'+81 is a prefix; -5 a number; @home" in evil
    only_osaka = _csv(api.get("/api/v1/exports/customers", params={"prefecture": "大阪府"}).content)
    assert [r[0] for r in only_osaka[1:]] == [str(ids["plain"])]


def test_xlsx_opens_and_neutralises_formulas(db: Database, api: TestClient, tmp_path: Path) -> None:
    ids = _people(db)
    resp = api.get("/api/v1/exports/customers", params={"format": "xlsx", "lang": "en"})
    assert resp.status_code == 200 and "spreadsheetml" in resp.headers["content-type"]
    path = tmp_path / "c.xlsx"
    path.write_bytes(resp.content)
    sheet = load_workbook(path).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][:3] == ["Kokyaku ID", "Name", "Kana"]
    evil = next(r for r in rows[1:] if r[0] == ids["evil"])
    assert evil[1] == "'" + EVIL
    cell = next(c for c in sheet.iter_rows() if c[0].value == ids["evil"])[1]
    assert cell.data_type == "s"  # text, not a formula


def test_export_then_import_changes_nothing(db: Database, api: TestClient, tmp_path: Path) -> None:
    _people(db)
    for lang in ("ja", "en"):
        people = api.get("/api/v1/exports/customers", params={"kind": "person", "lang": lang})
        companies = api.get("/api/v1/exports/customers", params={"kind": "company", "lang": lang})
        (tmp_path / "people.csv").write_bytes(people.content)
        (tmp_path / "companies.csv").write_bytes(companies.content)
        with db.session(write=False) as s:
            audit_before = s.scalar(select(func.count()).select_from(AuditEntry))
            customers_before = s.scalar(select(func.count()).select_from(Customer))
        back = run_import(
            db, kind="customers", path=tmp_path / "people.csv", actor=TEST_ACTOR, options=Options()
        )
        co = run_import(
            db, kind="companies", path=tmp_path / "companies.csv", actor=TEST_ACTOR, options=Options()
        )
        assert (back.status, back.created, back.updated, back.unchanged, back.invalid) == (
            "done",
            0,
            0,
            3,
            0,
        ), back.errors
        assert (co.created, co.updated, co.unchanged, co.invalid) == (0, 0, 1, 0), co.errors
        with db.session(write=False) as s:
            assert s.scalar(select(func.count()).select_from(AuditEntry)) == audit_before
            assert s.scalar(select(func.count()).select_from(Customer)) == customers_before


def test_orders_export_one_row_per_line(db: Database, api: TestClient) -> None:
    ids = _people(db)
    with db.session() as s:
        make_order(
            s,
            customer_id=ids["taro"],
            at=datetime(2025, 4, 1, 1, 30, tzinfo=UTC),
            external_id="A-1",
            lines=[{"name": "煎茶", "unit_price": 1200, "quantity": 2}, {"name": "紙袋", "unit_price": 10}],
        )
        make_order(
            s,
            customer_id=ids["plain"],
            at=datetime(2025, 6, 1, tzinfo=UTC),
            external_id="A-2",
            channel="store",
        )
    rows = _csv(api.get("/api/v1/exports/orders", params={"from": "2025-04-01", "to": "2025-04-30"}).content)
    assert len(rows) == 3 and rows[1][0] == "A-1" and rows[1][1] == "2025-04-01 10:30:00"
    assert {r[9] for r in rows[1:]} == {"煎茶", "紙袋"} and rows[1][-1] == "2410"
    store = _csv(api.get("/api/v1/exports/orders", params={"channel": "store", "format": "csv"}).content)
    assert [r[0] for r in store[1:]] == ["A-2"]
    bad = api.get("/api/v1/exports/orders", params={"status": "lost"})
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"


def test_export_needs_the_export_permission(db: Database, api_as) -> None:  # type: ignore[no-untyped-def]
    viewer = api_as("viewer").client
    assert viewer.get("/api/v1/exports/customers").json()["error"] == "forbidden"
    assert api_as("marketing").client.get("/api/v1/exports/customers").status_code == 200
    assert TestClient(viewer.app).get("/api/v1/exports/orders").status_code == 401


def test_an_xlsx_export_that_fails_half_way_leaves_no_writer_behind(tmp_path: Path) -> None:
    """A read that fails mid-export (or a download abandoned) ends the sheet's writer there and then, instead
    of leaving openpyxl to end its XML in a closed file whenever the garbage collector gets to it."""

    def rows() -> Iterator[list[Any]]:
        yield ["山田 太郎", 1]
        raise RuntimeError("the database went away")

    unraisable: list[Any] = []
    previous, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with pytest.raises(RuntimeError):
            export.write_xlsx(rows(), str(tmp_path / "half.xlsx"))
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert unraisable == []
