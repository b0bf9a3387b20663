"""REST API of products and orders: status codes, errors that name the field, permissions, pagination."""

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from kokyaku.db import Database
from tests.commerce.factories import make_order, make_product
from tests.customers.factories import make_customer

T0 = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo


def _customer(db: Database) -> int:
    with db.session() as s:
        return make_customer(s).id


def _fields(resp) -> list[str]:  # type: ignore[no-untyped-def]
    return [d["field"] for d in resp.json()["detail"]]


def test_products_crud_and_keyset_list(api: TestClient) -> None:
    for i in range(5):
        r = api.post(
            "/api/v1/products",
            json={"sku": f"SKU-{i}", "name": f"商品{i}", "price": 100 * i, "category": "食品"},
        )
        assert r.status_code == 201, r.text
    dup = api.post("/api/v1/products", json={"sku": "SKU-1", "name": "x", "price": 1})
    assert dup.status_code == 409 and dup.json()["detail"][0]["field"] == "sku"
    first = api.get("/api/v1/products", params={"limit": 3}).json()
    second = api.get("/api/v1/products", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [p["sku"] for p in first["items"] + second["items"]] == [f"SKU-{i}" for i in range(5)]
    assert second["next_cursor"] is None
    pid = first["items"][1]["id"]
    r = api.patch(f"/api/v1/products/{pid}", json={"price": 1500, "name": "新しい名前"})
    assert r.status_code == 200 and r.json()["price"] == 1500 and r.json()["sku"] == "SKU-1"
    assert api.patch(f"/api/v1/products/{pid}", json={"price": -1}).status_code == 422
    assert api.delete(f"/api/v1/products/{pid}").status_code == 204
    assert api.get(f"/api/v1/products/{pid}").json()["error"] == "product_not_found"


def test_place_order_by_sku_and_product_id_with_defaults(api: TestClient, db: Database) -> None:
    cid = _customer(db)
    with db.session() as s:
        tea = make_product(s, sku="TEA", price=1200)
        make_product(s, sku="CUP", price=800)
    body = {
        "customer_id": cid, "channel": "store", "ordered_at": "2025-06-01T12:00:00+09:00",
        "lines": [{"sku": "CUP", "quantity": 2}, {"product_id": tea.id, "unit_price": 1000}],
    }  # fmt: skip
    r = api.post("/api/v1/orders", json=body)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["total"] == 2600 and order["currency"] == "JPY" and order["status"] == "placed"
    assert order["ordered_at"].startswith("2025-06-01T03:00:00")
    assert [(line["sku"], line["unit_price"]) for line in order["lines"]] == [("CUP", 800), ("TEA", 1000)]
    m = api.get(f"/api/v1/customers/{cid}/metrics").json()
    assert (m["order_count"], m["total_spend"], m["avg_order_value"]) == (1, 2600, 2600)
    assert api.get(f"/api/v1/orders/{order['id']}").json() == order


def test_same_external_id_returns_the_existing_order(api: TestClient, db: Database) -> None:
    cid = _customer(db)
    body = {"customer_id": cid, "external_id": "POS-77", "lines": [{"name": "弁当", "unit_price": 650}]}
    first = api.post("/api/v1/orders", json=body)
    again = api.post("/api/v1/orders", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert api.get(f"/api/v1/customers/{cid}/metrics").json()["order_count"] == 1


def test_bad_orders_get_4xx_naming_the_field(api: TestClient, db: Database) -> None:
    cid = _customer(db)
    with db.session() as s:
        make_product(s, sku="OK", price=10)

    def post(**changes: object):  # type: ignore[no-untyped-def]
        return api.post("/api/v1/orders", json={"customer_id": cid, "lines": [{"sku": "OK"}], **changes})

    r = post(lines=[{"sku": "OK"}, {"sku": "MISSING"}])
    assert (
        r.status_code == 422
        and _fields(r) == ["lines.1.sku"]
        and "MISSING" in r.json()["detail"][0]["message"]
    )
    r = post(lines=[{"product_id": 98765}])
    assert r.status_code == 422 and _fields(r) == ["lines.0.product_id"]
    r = post(lines=[{"sku": "OK", "quantity": -2}])
    assert r.status_code == 422 and _fields(r) == ["lines.0.quantity"]
    r = post(customer_id=424242)
    assert r.status_code == 422 and _fields(r) == ["customer_id"]
    r = post(channel="fax")
    assert r.status_code == 422 and _fields(r) == ["channel"]
    r = post(ordered_at="2025-01-01T10:00:00")  # no time zone
    assert r.status_code == 422 and _fields(r) == ["ordered_at"]
    r = post(lines=[])
    assert r.status_code == 422 and _fields(r) == ["lines"]
    r = post(lines=[{"quantity": 1}])  # neither product nor name and price
    assert r.status_code == 422 and _fields(r) == ["lines.0"]
    assert api.get(f"/api/v1/customers/{cid}/orders").json()["items"] == []


def test_status_returns_and_refunds_through_the_api(api: TestClient, db: Database) -> None:
    cid = _customer(db)
    r = api.post("/api/v1/orders", json={
        "customer_id": cid, "status": "paid",
        "lines": [{"name": "靴", "unit_price": 9000}, {"name": "靴下", "unit_price": 500, "quantity": 4}],
    })  # fmt: skip
    order = r.json()
    oid, socks = order["id"], order["lines"][1]["id"]
    r = api.patch(f"/api/v1/orders/{oid}", json={"status": "placed"})
    assert r.status_code == 409 and r.json()["error"] == "bad_transition" and _fields(r) == ["status"]
    assert api.patch(f"/api/v1/orders/{oid}", json={"status": "lost"}).status_code == 422
    r = api.post(f"/api/v1/orders/{oid}/returns", json={"lines": [{"line_id": socks, "quantity": 5}]})
    assert r.status_code == 422 and _fields(r) == ["lines.0.quantity"]
    r = api.post(
        f"/api/v1/orders/{oid}/returns",
        json={"lines": [{"line_id": socks, "quantity": 2}], "reason": "サイズ違い"},
    )
    assert (
        r.status_code == 200 and r.json()["total"] == 10000 and r.json()["lines"][1]["returned_quantity"] == 2
    )
    r = api.post(f"/api/v1/orders/{oid}/refunds", json={"amount": 20000})
    assert r.status_code == 422 and _fields(r) == ["amount"]
    r = api.post(f"/api/v1/orders/{oid}/refunds", json={"amount": 1000})
    assert r.status_code == 200 and (r.json()["total"], r.json()["refunded"]) == (9000, 1000)
    assert api.patch(f"/api/v1/orders/{oid}", json={"status": "shipped"}).json()["status"] == "shipped"
    m = api.get(f"/api/v1/customers/{cid}/metrics").json()
    assert (m["order_count"], m["total_spend"]) == (1, 9000)
    assert api.patch(f"/api/v1/orders/{oid}", json={"status": "returned"}).json()["total"] == 0
    assert api.get(f"/api/v1/customers/{cid}/metrics").json()["order_count"] == 0
    assert api.get("/api/v1/orders/999999").status_code == 404


def test_order_list_filters_and_keyset_pages(api: TestClient, db: Database) -> None:
    with db.session() as s:
        a, b = make_customer(s, name="A").id, make_customer(s, name="B").id
        for i in range(7):  # two orders share each timestamp so the id breaks ties
            make_order(s, customer_id=a if i % 2 else b, at=T0 + timedelta(days=i // 2), price=100 + i,
                       channel="store" if i < 4 else "online")  # fmt: skip
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/orders", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [(o["ordered_at"], o["id"]) for o in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)
    online = api.get("/api/v1/orders", params={"channel": "online"}).json()["items"]
    assert {o["total"] for o in online} == {104, 105, 106}
    # date range in Tokyo days: T0 is 2025-06-01 12:00 JST; days 1..2 after it
    ranged = api.get("/api/v1/orders", params={"date_from": "2025-06-02", "date_to": "2025-06-03"}).json()[
        "items"
    ]
    assert sorted(o["total"] for o in ranged) == [102, 103, 104, 105]
    mine = api.get(f"/api/v1/customers/{a}/orders").json()["items"]
    assert {o["customer_id"] for o in mine} == {a} and len(mine) == 3
    assert api.get("/api/v1/orders", params={"customer_id": a, "status": "paid"}).json()["items"] == []
    assert api.get("/api/v1/orders", params={"cursor": "garbage!"}).status_code == 400
    assert api.get("/api/v1/customers/99999/orders").status_code == 404


def test_viewer_reads_but_cannot_write(api_as, db: Database) -> None:  # type: ignore[no-untyped-def]
    cid = _customer(db)
    with db.session() as s:
        make_product(s, sku="V1", price=10)
        oid = make_order(s, customer_id=cid, at=T0, price=50, status="paid").id
    viewer = api_as("viewer").client
    assert viewer.get(f"/api/v1/orders/{oid}").status_code == 200
    assert viewer.get("/api/v1/products").status_code == 200
    assert viewer.get(f"/api/v1/customers/{cid}/metrics").status_code == 200
    body = {"customer_id": cid, "lines": [{"sku": "V1"}]}
    assert viewer.post("/api/v1/orders", json=body).status_code == 403
    assert viewer.patch(f"/api/v1/orders/{oid}", json={"status": "shipped"}).status_code == 403
    assert viewer.post(f"/api/v1/orders/{oid}/refunds", json={"amount": 1}).status_code == 403
    assert viewer.post("/api/v1/products", json={"sku": "X", "name": "x", "price": 1}).status_code == 403
    sales = api_as("sales").client
    assert sales.post("/api/v1/orders", json=body).status_code == 201
    assert sales.post("/api/v1/products", json={"sku": "X", "name": "x", "price": 1}).status_code == 403
    assert TestClient(viewer.app).get("/api/v1/orders").status_code == 401
