"""Order and product pages: the customer page's Orders section, status/returns/refund forms with CSRF,
the new-order form, the product catalogue, and who may do what."""

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from kokyaku.commerce.models import Order, OrderLine
from kokyaku.db import Database
from tests.commerce.factories import make_order, make_product
from tests.conftest import csrf_of
from tests.customers.factories import make_customer

T0 = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)


def _shop(db: Database) -> tuple[int, int]:
    with db.session() as s:
        c = make_customer(s, name="佐藤 花子", name_kana="サトウ ハナコ")
        make_product(s, sku="TEA", name="煎茶", price=1200)
        order = make_order(s, customer_id=c.id, at=T0, lines=[{"sku": "TEA", "quantity": 3}], status="paid")
        make_order(s, customer_id=c.id, at=T0.replace(month=7), price=800, channel="store")
        return c.id, order.id


def _metric(html: str, name: str) -> str:
    match = re.search(rf'data-metric="{name}">([^<]*)<', html)
    assert match, name
    return match.group(1)


def test_customer_page_shows_orders_and_metrics(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    cid, oid = _shop(db)
    html = page_as("viewer").get(f"/customers/{cid}").text
    assert _metric(html, "order_count") == "2"
    assert _metric(html, "first_order_at") == "2025-06-01 12:00"  # shown in Tokyo time
    assert _metric(html, "total_spend") == "¥4,400"
    assert _metric(html, "avg_order_value") == "¥2,200"
    assert f'href="/orders/{oid}"' in html and ">Paid<" in html and ">Store<" in html
    assert "/orders/new" not in html  # a viewer gets no new-order button


def test_status_change_through_the_form_updates_the_page(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    cid, oid = _shop(db)
    client: TestClient = page_as("sales")
    page = client.get(f"/orders/{oid}").text
    assert "¥3,600" in page and 'value="shipped"' in page
    assert (
        client.post(f"/orders/{oid}/status", data={"status": "shipped"}).status_code == 403
    )  # no CSRF token
    resp = client.post(f"/orders/{oid}/status", data={"status": "shipped", "csrf_token": csrf_of(page)})
    assert resp.status_code == 303
    page = client.get(f"/orders/{oid}").text
    assert 'data-testid="order-status">Shipped<' in page
    resp = client.post(f"/orders/{oid}/status", data={"status": "placed", "csrf_token": csrf_of(page)})
    assert resp.status_code == 409 and "cannot go from Shipped to Placed" in resp.text


def test_return_and_refund_forms(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    cid, oid = _shop(db)
    client: TestClient = page_as("support")
    page = client.get(f"/orders/{oid}").text
    token = csrf_of(page)
    with db.session(write=False) as s:
        line_id = s.scalars(select(OrderLine.id).where(OrderLine.order_id == oid)).one()
    resp = client.post(f"/orders/{oid}/returns", data={f"qty.{line_id}": "5", "csrf_token": token})
    assert resp.status_code == 422 and "At most 3 can be returned." in resp.text
    resp = client.post(
        f"/orders/{oid}/returns", data={f"qty.{line_id}": "1", "reason": "破損", "csrf_token": token}
    )
    assert resp.status_code == 303
    resp = client.post(f"/orders/{oid}/refunds", data={"amount": "¥9,999", "csrf_token": token})
    assert resp.status_code == 422 and "Between 1 and 2400." in resp.text
    resp = client.post(f"/orders/{oid}/refunds", data={"amount": "1,000", "csrf_token": token})
    assert resp.status_code == 303
    page = client.get(f"/orders/{oid}").text
    assert 'data-testid="order-total"><strong>¥1,400<' in page and "破損" in page
    assert _metric(client.get(f"/customers/{cid}").text, "total_spend") == "¥2,200"


def test_new_order_form_places_an_order_or_points_at_the_bad_row(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    cid, _ = _shop(db)
    client: TestClient = page_as("sales")
    form = client.get(f"/customers/{cid}/orders/new").text
    data = {"csrf_token": csrf_of(form), "channel": "phone", "status": "placed", "sku.0": "TEA",
            "quantity.0": "2", "sku.2": "NOPE", "quantity.2": "1"}  # fmt: skip
    resp = client.post(f"/customers/{cid}/orders/new", data=data)
    assert resp.status_code == 422 and "No product has SKU NOPE." in resp.text
    assert 'value="NOPE"' in resp.text  # the typed rows come back
    data.pop("sku.2")
    data.pop("quantity.2")
    data["ordered_at"] = "2025-08-01T10:30"
    resp = client.post(f"/customers/{cid}/orders/new", data=data)
    assert resp.status_code == 303
    with db.session(write=False) as s:
        order = s.get(Order, int(resp.headers["location"].rsplit("/", 1)[1]))
        assert order is not None
        assert (order.channel, order.total, order.ordered_at) == (
            "phone",
            2400,
            datetime(2025, 8, 1, 1, 30, tzinfo=UTC),
        )


def test_order_list_filters_and_viewer_has_no_forms(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    cid, oid = _shop(db)
    client: TestClient = page_as("viewer")
    html = client.get("/orders").text
    assert "佐藤 花子" in html and f"#{oid}" in html
    rows = client.get("/orders?channel=store", headers={"HX-Request": "true"}).text
    assert "<html" not in rows and rows.count("/orders/") == 1 and f"/orders/{oid}" not in rows
    page = client.get(f"/orders/{oid}").text
    assert "/status" not in page and "/refunds" not in page
    token = csrf_of(page)
    assert (
        client.post(f"/orders/{oid}/status", data={"status": "shipped", "csrf_token": token}).status_code
        == 403
    )


def test_products_page_adds_and_edits_products(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    _shop(db)
    manager: TestClient = page_as("manager")
    page = manager.get("/products").text
    assert "煎茶" in page and "New product" in page
    token = csrf_of(page)
    resp = manager.post("/products", data={"sku": "TEA", "name": "重複", "price": "100", "csrf_token": token})
    assert resp.status_code == 422 and "SKU TEA is already used by another product." in resp.text
    new = {"sku": "MUG", "name": "湯呑み", "price": "２，５００", "category": "食器", "csrf_token": token}
    resp = manager.post("/products", data=new)
    assert resp.status_code == 303
    assert "¥2,500" in manager.get("/products?q=MUG", headers={"HX-Request": "true"}).text
    sales_page = page_as("sales").get("/products").text
    assert "New product" not in sales_page and "湯呑み" in sales_page


def test_pages_render_in_japanese(page_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    cid, oid = _shop(db)
    client: TestClient = page_as("manager", locale="ja")
    for path in (
        f"/customers/{cid}",
        "/orders",
        f"/orders/{oid}",
        "/products",
        f"/customers/{cid}/orders/new",
    ):
        resp = client.get(path)
        assert resp.status_code == 200 and '<html lang="ja">' in resp.text, path
    assert "￥4,400" in client.get(f"/customers/{cid}").text  # the full-width yen sign of ja_JP
