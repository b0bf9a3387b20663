"""Small helpers for the import tests: writing CSV files in a given encoding, counting rows."""

import csv
import io
from pathlib import Path

from sqlalchemy import func, select

from kokyaku.audit.models import AuditEntry
from kokyaku.customers import search_index
from kokyaku.customers.models import Customer, Identity, Interest
from kokyaku.db import Database

JA_HEADER = [
    "氏名",
    "フリガナ",
    "メールアドレス",
    "電話番号",
    "郵便番号",
    "都道府県",
    "生年月日",
    "性別",
    "興味",
]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", newline: str = "\r\n") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def person(i: int) -> list[str]:
    """A valid row for JA_HEADER."""
    prefectures = ["東京都", "大阪府", "北海道", "福岡県", "愛知県"]
    return [
        f"山田 太郎{i}",
        "やまだ たろう",
        f"taro.{i}@example.jp",
        f"090-{1000 + i % 9000:04d}-{i % 10000:04d}",
        "100-0001",
        prefectures[i % 5],
        "1990/1/2",
        "男",
        "旅行",
    ]


def counts(db: Database) -> dict[str, int]:
    """Rows per table a customer import writes (grams: (customer, gram) pairs in the search index)."""
    with db.session(write=False) as s:
        out = {
            name: int(s.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in (
                ("customers", Customer),
                ("identities", Identity),
                ("interests", Interest),
                ("audit", AuditEntry),
            )
        }
        indexed = search_index.grams_of(s, s.scalars(select(Customer.id)))
        out["grams"] = sum(map(len, indexed.values()))
        return out
