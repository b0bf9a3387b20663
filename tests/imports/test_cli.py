"""kokyaku import / kokyaku export: summaries, exit codes, saved mappings; and how headers are recognised."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from kokyaku.cli.main import app as cli
from kokyaku.config import Settings, get_settings
from kokyaku.customers.models import Customer
from kokyaku.db import Database
from kokyaku.imports import mapping
from kokyaku.imports.mapping import save_mapping
from tests.conftest import TEST_ACTOR
from tests.imports.helpers import JA_HEADER, person, write_csv

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KOKYAKU_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KOKYAKU_ENVIRONMENT", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def customers_in(db: Database) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(Customer)) or 0)


def test_import_exit_codes_and_summary(env: None, db: Database, tmp_path: Path) -> None:
    bad = ["x", "", "bad@", "", "", "", "", "", ""]
    path = write_csv(tmp_path / "c.csv", [JA_HEADER, person(1), bad, person(2)], "cp932")
    refused = runner.invoke(cli, ["import", "customers", str(path), "--errors", str(tmp_path / "e.csv")])
    assert refused.exit_code == 1 and customers_in(db) == 0
    assert (
        "invalid 1" in refused.output
        and "row 3, メールアドレス: Not a valid email address." in refused.output
    )
    assert (
        refused.output.strip().splitlines()[-1].startswith("error: 1 invalid rows, so nothing was imported")
    )
    assert (tmp_path / "e.csv").read_text(encoding="utf-8-sig").splitlines()[1].startswith("3,")
    dry = runner.invoke(cli, ["import", "customers", str(path), "--dry-run", "--skip-invalid"])
    assert dry.exit_code == 0 and "would be created 2" in dry.output and customers_in(db) == 0
    done = runner.invoke(cli, ["import", "customers", str(path), "--skip-invalid"])
    assert done.exit_code == 0 and "created 2" in done.output and customers_in(db) == 2
    again = runner.invoke(cli, ["import", "customers", str(path), "--skip-invalid"])
    assert "created 0, updated 0, unchanged 2, invalid 1" in again.output


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["import", "things", "x.csv"], "unknown kind"),
        (["import", "customers", "missing.csv"], "no such file"),
        (["import", "customers", "{empty}"], "The file is empty."),
        (["import", "customers", "{big}", "--max-size", "1"], "larger than the limit of 1 MB"),
        (["import", "customers", "{nomap}"], "the column mapping is not usable"),
        (["import", "customers", "{big}", "--mapping", "nope"], "There is no saved mapping named nope."),
    ],
)
def test_file_level_errors_are_one_line(env: None, tmp_path: Path, args: list[str], reason: str) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    write_csv(tmp_path / "big.csv", [JA_HEADER] + [person(i) for i in range(16_000)])
    write_csv(tmp_path / "nomap.csv", [["好きな色"], ["赤"]])
    files = {"{empty}": "empty.csv", "{big}": "big.csv", "{nomap}": "nomap.csv"}
    resolved = [str(tmp_path / files[a]) if a in files else a for a in args]
    result = runner.invoke(cli, resolved)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert reason in lines[-1] and lines[-1].startswith("error:") and "Traceback" not in result.output


def test_saved_mapping_and_map_option(env: None, db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "shop.csv", [["お客様", "連絡先"], ["山田 太郎", "taro@example.jp"]])
    with db.session() as s:
        save_mapping(
            s, actor=TEST_ACTOR, kind="customers", name="shop", columns={"お客様": "name", "連絡先": "email"}
        )
    assert runner.invoke(cli, ["import", "customers", str(path), "--mapping", "shop"]).exit_code == 0
    other = write_csv(tmp_path / "other.csv", [["お客様", "連絡先"], ["佐藤 花子", "hanako@example.jp"]])
    mapped = runner.invoke(
        cli, ["import", "customers", str(other), "--map", "お客様=name", "--map", "連絡先=email"]
    )
    assert mapped.exit_code == 0, mapped.output
    assert customers_in(db) == 2


def test_export_command(env: None, db: Database, tmp_path: Path) -> None:
    write_csv(tmp_path / "c.csv", [JA_HEADER, person(1), person(2)])
    assert runner.invoke(cli, ["import", "customers", str(tmp_path / "c.csv")]).exit_code == 0
    out = runner.invoke(
        cli, ["export", "customers", str(tmp_path / "out.xlsx"), "--format", "xlsx", "--prefecture", "大阪府"]
    )
    assert out.exit_code == 0 and "exported 1 rows" in out.output
    rows = list(load_workbook(tmp_path / "out.xlsx").active.iter_rows(values_only=True))
    assert rows[1][1] == "山田 太郎1"
    csv_out = runner.invoke(cli, ["export", "orders", str(tmp_path / "o.csv"), "--from", "2025-01-01"])
    assert csv_out.exit_code == 0 and (tmp_path / "o.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    bad = runner.invoke(cli, ["export", "orders", str(tmp_path / "o.csv"), "--status", "lost"])
    assert bad.exit_code == 1 and "--status" in bad.output


@pytest.mark.parametrize(
    ("kind", "headers", "expected"),
    [
        (
            "customers",
            ["氏名", "フリガナ", "メールアドレス", "電話番号", "郵便番号", "都道府県", "誕生日", "性別"],
            ["name", "name_kana", "email", "phone", "postal_code", "prefecture", "birthday", "gender"],
        ),
        (
            "customers",
            ["Name", "Kana", "E-mail", "Phone Number", "ZIP code", "Prefecture", "Date of birth", "Sex"],
            ["name", "name_kana", "email", "phone", "postal_code", "prefecture", "birthday", "gender"],
        ),
        (
            "customers",
            ["姓", "名", "セイ", "メイ", "メール1", "メール2", "携帯電話", "住所"],
            [
                "last_name",
                "first_name",
                "last_name_kana",
                "first_name_kana",
                "email",
                "email",
                "phone",
                "address",
            ],
        ),
        (
            "orders",
            ["注文番号", "注文日", "会員ID", "商品コード", "数量", "単価"],
            ["order_id", "ordered_at", "customer_external_id", "sku", "quantity", "unit_price"],
        ),
        ("products", ["品番", "商品名", "カテゴリー", "販売価格"], ["sku", "name", "category", "price"]),
        ("companies", ["会社名", "業種", "従業員数", "URL"], ["name", "industry", "company_size", "website"]),
    ],
)
def test_headers_in_japanese_and_english(kind: str, headers: list[str], expected: list[str]) -> None:
    assert list(mapping.propose(kind, headers, []).values()) == expected


def test_import_reviews_goes_to_the_feedback_domain(env: None, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "r.csv",
        [["サイト", "口コミID", "評価", "投稿日", "本文"], ["Google", "R-1", "5", "2025/04/01", "良い"]],
    )
    first = runner.invoke(cli, ["import", "reviews", str(path)])
    again = runner.invoke(cli, ["import", "reviews", str(path)])
    assert first.exit_code == 0 and "created 1" in first.output
    assert again.exit_code == 0 and "unchanged 1" in again.output
