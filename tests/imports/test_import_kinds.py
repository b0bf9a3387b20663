"""Products, orders (one row per line) and touchpoints from CSV; each re-import adds nothing."""

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from kokyaku.audit.models import AuditEntry
from kokyaku.commerce.models import CustomerMetrics, Order, OrderLine, Product
from kokyaku.customers import service as customers
from kokyaku.customers.schemas import CustomerCreate
from kokyaku.db import Database
from kokyaku.imports.models import ImportRun
from kokyaku.imports.service import Options, run_import
from kokyaku.timeline.models import Touchpoint
from tests.conftest import TEST_ACTOR
from tests.imports.helpers import write_csv


def run(db: Database, path: Path, kind: str, **options: Any) -> ImportRun:
    return run_import(db, kind=kind, path=path, actor=TEST_ACTOR, options=Options(**options))


def count(db: Database, model: Any) -> int:
    with db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def customer(db: Database, name: str, email: str, external: str | None = None) -> int:
    ids = [{"source": "pos", "value": external}] if external else None
    with db.session() as s:
        data = CustomerCreate(name=name, emails=[email], external_ids=ids)  # type: ignore[arg-type]
        return customers.create_customer(s, actor=TEST_ACTOR, data=data).id


def test_products_upsert_by_sku(db: Database, tmp_path: Path) -> None:
    rows = [
        ["商品コード", "商品名", "カテゴリ", "価格"],
        ["TEA-1", "煎茶", "お茶", "￥1,200"],
        ["TEA-2", "ほうじ茶", "お茶", "980円"],
    ]
    first = run(db, write_csv(tmp_path / "p.csv", rows, "cp932"), "products")
    assert (first.created, first.invalid) == (2, 0)
    audits = count(db, AuditEntry)
    again = run(db, tmp_path / "p.csv", "products")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2) and count(db, AuditEntry) == audits
    changed = [["SKU", "Price"], ["TEA-1", "1300"], ["TEA-3", "500"]]
    result = run(db, write_csv(tmp_path / "p2.csv", changed), "products", mode="skip_invalid")
    assert (result.updated, result.invalid) == (1, 1)  # a new SKU needs a name
    assert {e["field"] for e in result.errors} == {"name"}
    with db.session(write=False) as s:
        assert s.scalar(select(Product.price).where(Product.sku == "TEA-1")) == 1300


ORDER_HEADER = [
    "注文番号",
    "注文日時",
    "メールアドレス",
    "販売チャネル",
    "ステータス",
    "商品コード",
    "商品名",
    "数量",
    "単価",
]


def test_orders_group_lines_and_reimport_adds_nothing(db: Database, tmp_path: Path) -> None:
    taro = customer(db, "山田 太郎", "taro@example.jp")
    with db.session() as s:
        s.add(Product(sku="TEA-1", name="煎茶", price=1200, currency="JPY"))
    rows = [
        ORDER_HEADER,
        ["A-1", "2025/04/01 10:30", "taro@example.jp", "店舗", "支払済", "TEA-1", "", "2", ""],
        ["A-1", "2025/04/01 10:30", "taro@example.jp", "店舗", "支払済", "", "紙袋", "1", "10"],
        ["A-2", "2025-05-02", "TARO@example.jp", "オンライン", "", "TEA-1", "", "1", "1,100"],
    ]
    path = write_csv(tmp_path / "o.csv", rows, "cp932")
    dry = run(db, path, "orders", mode="dry_run")
    assert (dry.created, dry.invalid, count(db, Order)) == (3, 0, 0)
    result = run(db, path, "orders")
    assert (result.status, result.created, result.invalid) == ("done", 3, 0)
    with db.session(write=False) as s:
        orders = {o.external_id: o for o in s.scalars(select(Order))}
        lines = s.scalars(
            select(OrderLine).where(OrderLine.order_id == orders["A-1"].id).order_by(OrderLine.id)
        )
        names = [(ln.name, ln.quantity, ln.unit_price) for ln in lines]
        metrics = s.get(CustomerMetrics, taro)
    assert orders["A-1"].total == 2410 and orders["A-1"].channel == "store" and orders["A-1"].status == "paid"
    assert orders["A-1"].ordered_at.isoformat() == "2025-04-01T01:30:00+00:00"  # 10:30 in Tokyo
    assert names == [("煎茶", 2, 1200), ("紙袋", 1, 10)]
    assert orders["A-2"].total == 1100 and orders["A-2"].status == "placed"
    assert metrics is not None and metrics.order_count == 2 and metrics.total_spend == 3510
    again = run(db, path, "orders")
    assert (again.created, again.unchanged) == (0, 3) and count(db, Order) == 2


def test_order_rows_name_their_problems(db: Database, tmp_path: Path) -> None:
    customer(db, "山田 太郎", "taro@example.jp", external="M-1")
    rows = [
        ["注文番号", "注文日", "顧客番号", "メール", "商品コード", "商品名", "数量", "単価"],
        ["B-1", "2025/04/01", "M-1", "", "", "一品", "1", "100"],
        ["B-2", "2025/04/01", "", "nobody@example.jp", "", "一品", "1", "100"],
        ["B-3", "2025/13/01", "M-1", "", "", "一品", "1", "100"],
        ["B-4", "2025/04/01", "M-1", "", "NO-SUCH", "", "1", ""],
        ["B-4", "2025/04/01", "M-1", "", "", "送料", "1", "500"],
        ["B-5", "2025/04/01", "M-1", "", "", "一品", "0", "100"],
    ]
    result = run(db, write_csv(tmp_path / "o.csv", rows), "orders", mode="skip_invalid")
    problems = {(e["row"], e["field"]) for e in result.errors}
    assert problems == {
        (3, "customer_email"),
        (4, "ordered_at"),
        (5, "sku"),
        (6, "order_id"),
        (7, "quantity"),
    }
    assert result.created == 1 and count(db, Order) == 1


def test_touchpoints_reimport_adds_nothing(db: Database, tmp_path: Path) -> None:
    customer(db, "山田 太郎", "taro@example.jp")
    rows = [
        ["日時", "メールアドレス", "チャネル", "種別", "内容"],
        ["2025/04/01 10:00", "taro@example.jp", "電話", "問い合わせ", "配送について"],
        ["2025/04/02 11:00", "taro@example.jp", "来店", "visit", ""],
        ["2025/04/03 12:00", "nobody@example.jp", "メール", "newsletter", ""],
    ]
    path = write_csv(tmp_path / "t.csv", rows, "cp932")
    result = run(db, path, "touchpoints", mode="skip_invalid")
    assert (result.created, result.invalid) == (2, 1) and result.errors[0]["field"] == "customer_email"
    again = run(db, path, "touchpoints", mode="skip_invalid")
    assert (again.created, again.unchanged) == (0, 2) and count(db, Touchpoint) == 2
    with db.session(write=False) as s:
        channels = sorted(s.scalars(select(Touchpoint.channel)))
    assert channels == ["phone", "store"]


def test_dry_run_sees_what_earlier_batches_would_create(db: Database, tmp_path: Path) -> None:
    rows = [["SKU", "Name", "Price"], ["S-1", "一", "100"], ["S-2", "二", "200"], ["S-1", "一", "150"]]
    path = write_csv(tmp_path / "p.csv", rows)
    dry = run(db, path, "products", mode="dry_run", batch_rows=1)
    real = run(db, path, "products", batch_rows=1)
    assert (dry.created, dry.updated) == (real.created, real.updated) == (2, 1)
    assert count(db, Product) == 2
