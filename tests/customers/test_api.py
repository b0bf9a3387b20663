"""The customers and companies REST API: shapes, errors, permissions, pagination."""

from fastapi.testclient import TestClient

PERSON = {
    "name": "佐藤 花子",
    "name_kana": "サトウ ハナコ",
    "emails": ["Hanako.Sato@Example.jp"],
    "phones": ["080-2222-3333"],
    "birthday": "1990-04-01",
    "gender": "female",
    "postal_code": "1500001",
    "prefecture": "東京都",
    "city": "渋谷区",
    "street": "神宮前1-2-3",
    "interests": ["コスメ", "旅行"],
    "source": "Instagram",
    "channel": "sns",
}


def test_create_read_update_delete(api: TestClient) -> None:
    resp = api.post("/api/v1/customers", json=PERSON)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["emails"] == ["hanako.sato@example.jp"] and body["phones"] == ["+818022223333"]
    assert body["postal_code"] == "150-0001"
    cid = body["id"]
    resp = api.patch(f"/api/v1/customers/{cid}", json={"city": "港区", "interests": ["旅行"]})
    assert resp.status_code == 200 and resp.json()["city"] == "港区" and resp.json()["interests"] == ["旅行"]
    history = api.get(f"/api/v1/customers/{cid}/audit").json()
    assert history[0]["action"] == "update"
    assert history[0]["changes"]["city"] == ["渋谷区", "港区"]
    assert api.delete(f"/api/v1/customers/{cid}").status_code == 204
    resp = api.get(f"/api/v1/customers/{cid}")
    assert resp.status_code == 404 and resp.json()["error"] == "customer_not_found"


def test_bad_input_names_each_field(api: TestClient) -> None:
    resp = api.post(
        "/api/v1/customers",
        json={
            "name": "x" * 201,
            "emails": ["not-an-email"],
            "phones": ["12"],
            "prefecture": "東京",
            "name_kana": "山田",
            "birthday": "2999-01-01",
            "gender": "robot",
            "emial": "typo@example.jp",
        },
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "validation_error"
    fields = {d["field"] for d in body["detail"]}
    assert fields == {
        "name",
        "emails.0",
        "phones.0",
        "prefecture",
        "name_kana",
        "birthday",
        "gender",
        "emial",
    }
    assert api.get("/api/v1/customers").json()["items"] == []


def test_an_identity_owned_by_another_customer_is_a_conflict(api: TestClient) -> None:
    api.post("/api/v1/customers", json=PERSON)
    resp = api.post("/api/v1/customers", json={"name": "別の人", "emails": ["HANAKO.sato@example.jp"]})
    assert resp.status_code == 409
    assert resp.json() == {
        "error": "identity_taken",
        "detail": [{"field": "emails.0", "message": resp.json()["detail"][0]["message"]}],
    }
    assert "hanako.sato@example.jp" in resp.json()["detail"][0]["message"]


def test_malformed_json_and_wrong_types_are_4xx(api: TestClient) -> None:
    resp = api.post("/api/v1/customers", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"] == "validation_error"
    resp = api.get("/api/v1/customers?cursor=%%%")
    assert resp.status_code == 400 and resp.json()["error"] == "bad_cursor"
    resp = api.get("/api/v1/customers?limit=100000")
    assert resp.status_code == 422


def test_companies_and_their_contacts(api: TestClient) -> None:
    company = api.post(
        "/api/v1/companies",
        json={
            "name": "株式会社さくら商事",
            "name_kana": "サクラショウジ",
            "industry": "小売",
            "company_size": "10-49",
            "website": "https://sakura.example.co.jp",
        },
    ).json()
    assert company["kind"] == "company"
    person = api.post("/api/v1/customers", json={**PERSON, "company_id": company["id"]}).json()
    assert person["company_id"] == company["id"]
    assert [c["id"] for c in api.get(f"/api/v1/customers?company_id={company['id']}").json()["items"]] == [
        person["id"]
    ]
    assert api.get(f"/api/v1/companies/{person['id']}").status_code == 404
    assert [c["id"] for c in api.get("/api/v1/companies").json()["items"]] == [company["id"]]
    bad = api.post("/api/v1/customers", json={"name": "x", "company_id": person["id"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "company_id"


def test_list_filters_search_and_keyset(api: TestClient) -> None:
    for i in range(7):
        api.post(
            "/api/v1/customers", json={"name": f"高橋 {i}", "name_kana": "タカハシ", "prefecture": "愛知県"}
        )
    api.post("/api/v1/customers", json={"name": "伊藤 一", "prefecture": "大阪府", "interests": ["ワイン"]})
    page1 = api.get("/api/v1/customers?q=たかはし&limit=4").json()
    page2 = api.get(f"/api/v1/customers?q=たかはし&limit=4&cursor={page1['next_cursor']}").json()
    names = [c["name"] for c in page1["items"] + page2["items"]]
    assert names == [f"高橋 {i}" for i in range(6, -1, -1)] and page2["next_cursor"] is None
    assert [c["name"] for c in api.get("/api/v1/customers?tag=ワイン").json()["items"]] == ["伊藤 一"]
    assert len(api.get("/api/v1/customers?prefecture=愛知県").json()["items"]) == 7


def test_roles(api_as, app) -> None:  # type: ignore[no-untyped-def]
    viewer = api_as("viewer").client
    sales = api_as("sales").client
    created = sales.post("/api/v1/customers", json={"name": "木村 一"})
    assert created.status_code == 201
    cid = created.json()["id"]
    assert viewer.get(f"/api/v1/customers/{cid}").status_code == 200
    for resp in (
        viewer.post("/api/v1/customers", json={"name": "x"}),
        viewer.patch(f"/api/v1/customers/{cid}", json={"name": "y"}),
        viewer.delete(f"/api/v1/customers/{cid}"),
        sales.delete(f"/api/v1/customers/{cid}"),
        sales.get("/api/v1/users"),
        sales.post(
            "/api/v1/custom-fields", json={"key": "k", "label_ja": "k", "label_en": "k", "type": "text"}
        ),
    ):
        assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
    assert TestClient(app).get("/api/v1/customers").status_code == 401
    bad = TestClient(app, headers={"Authorization": "Bearer kky_nope"}).get("/api/v1/customers")
    assert bad.status_code == 401 and bad.json()["error"] == "not_authenticated"


def test_custom_field_definitions_and_values(api: TestClient) -> None:
    resp = api.post(
        "/api/v1/custom-fields",
        json={
            "key": "rank",
            "label_ja": "ランク",
            "label_en": "Rank",
            "type": "choice",
            "choices": ["gold", "silver"],
        },
    )
    assert resp.status_code == 201
    assert (
        api.post(
            "/api/v1/custom-fields", json={"key": "rank", "label_ja": "a", "label_en": "a", "type": "text"}
        ).status_code
        == 409
    )
    assert (
        api.post(
            "/api/v1/custom-fields", json={"key": "Bad Key", "label_ja": "a", "label_en": "a", "type": "text"}
        ).status_code
        == 422
    )
    bad = api.post("/api/v1/customers", json={"name": "x", "custom": {"rank": "bronze"}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "custom.rank"
    ok = api.post("/api/v1/customers", json={"name": "x", "custom": {"rank": "gold"}})
    assert ok.json()["custom"] == {"rank": "gold"}


def test_openapi_and_health(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    assert client.get("/healthz").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/customers" in paths and "/api/v1/companies/{customer_id}" in paths
    assert client.get("/api/v1/nothing-here").json()["error"] == "not_found"


def test_null_for_every_optional_field_is_accepted_or_refused_cleanly(api: TestClient) -> None:
    fields = [f for f in PERSON if f != "name"] + [
        "company_id",
        "owner_id",
        "job_title",
        "industry",
        "company_size",
        "website",
        "note",
        "custom",
        "locale",
    ]
    resp = api.post("/api/v1/customers", json={"name": "空欄 太郎", **dict.fromkeys(fields)})
    assert resp.status_code == 201, resp.text
    cid = resp.json()["id"]
    resp = api.patch(f"/api/v1/customers/{cid}", json=dict.fromkeys(fields))
    assert resp.status_code == 200, resp.text
    resp = api.patch(f"/api/v1/customers/{cid}", json={"name": None})
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "name"


def test_control_characters_are_refused_at_the_field(api: TestClient) -> None:
    body = {"name": "山田\x01太郎", "city": "札幌\n市", "note": "一行目\n二行目"}
    resp = api.post("/api/v1/customers", json=body)
    assert resp.status_code == 422
    assert {d["field"] for d in resp.json()["detail"]} == {"name", "city"}
    ok = api.post("/api/v1/customers", json={"name": "山田 太郎", "note": "一行目\n二行目"})
    assert ok.status_code == 201 and ok.json()["note"] == "一行目\n二行目"
