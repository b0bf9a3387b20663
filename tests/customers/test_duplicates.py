"""Duplicate candidates: each rule finds its pairs, different people are left alone, dismissed pairs stay
dismissed, and customers that share an identity can be merged automatically."""

import os
import subprocess
import sys
from datetime import date
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kokyaku.customers import duplicates, merge
from kokyaku.customers.merge_models import CustomerMerge
from kokyaku.customers.models import Customer
from kokyaku.db import Database
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer

BIRTHDAY = date(1975, 5, 5)


def _legacy(s: Session, customer_id: int, **columns: Any) -> None:
    """Set the primary email/phone columns directly, as an old import did without identities."""
    s.execute(update(Customer).where(Customer.id == customer_id).values(**columns))


def _reasons(s: Session) -> dict[tuple[int, int], set[str]]:
    return {key: {r["code"] for r in pair.reason_list()} for key, pair in duplicates.find_pairs(s).items()}


def test_each_rule_finds_its_pair(db: Database) -> None:
    with db.session() as s:
        ids: dict[str, tuple[int, int]] = {}

        def pair(label: str, x: Customer, y: Customer) -> None:
            ids[label] = (min(x.id, y.id), max(x.id, y.id))

        a = make_customer(s, name="小林 一郎", name_kana=None, emails=["ichiro@example.jp"])
        b = make_customer(s, name="小林 イチロー", name_kana=None)
        _legacy(s, b.id, email=" Ichiro@Example.JP")
        pair("legacy email", a, b)
        a = make_customer(s, name="Hanako Sato", name_kana=None, emails=["hanako@example.jp"])
        b = make_customer(s, name="Sato H.", name_kana=None,
                          external_ids=[{"source": "shopify", "value": "hanako@example.jp"}])  # fmt: skip
        pair("external id that is an email", a, b)
        a = make_customer(s, name="中村 二郎", name_kana=None, phones=["090-1111-2222"])
        b = make_customer(s, name="中村 次郎", name_kana=None)
        _legacy(s, b.id, phone="+819011112222")
        pair("legacy phone", a, b)
        a = make_customer(s, name="高橋 健一", name_kana="タカハシ ケンイチ", birthday=BIRTHDAY)
        b = make_customer(s, name="高橋健一", name_kana=None, birthday=BIRTHDAY)
        pair("name and birthday", a, b)
        a = make_customer(s, name="渡辺 翔太", name_kana="ワタナベ ショウタ", birthday=date(1990, 2, 3))
        b = make_customer(s, name="渡部 翔太", name_kana="わたなべ しょうた", birthday=date(1990, 2, 3))
        pair("kana and birthday", a, b)
        a = make_customer(
            s, name="伊藤 翔", name_kana=None, postal_code="100-0001", birthday=date(1960, 1, 1)
        )
        b = make_customer(
            s, name="伊藤　翔", name_kana=None, postal_code="1000001", birthday=date(1988, 8, 8)
        )
        pair("name and postal code", a, b)
        a = make_customer(s, name="斉藤 美咲", name_kana="サイトウ ミサキ", postal_code="150-0001")
        b = make_customer(s, name="斎藤 美咲", name_kana="サイトウ ミサキ", postal_code="150-0001")
        pair("variant kanji at one address", a, b)
        a = make_customer(s, name="Christopher Johnson", name_kana=None, postal_code="060-0001")
        b = make_customer(s, name="Christopher Jonson", name_kana=None, postal_code="060-0001")
        pair("similar name and postal code", a, b)
    with db.session(write=False) as s:
        found = _reasons(s)
    expected = {
        "legacy email": {"same_email"},
        "external id that is an email": {"same_email"},
        "legacy phone": {"same_phone"},
        "name and birthday": {"same_name_birthday"},
        "kana and birthday": {"same_kana_birthday"},
        "name and postal code": {"same_name_postal"},
        "variant kanji at one address": {"same_kana_postal", "similar_name_postal"},
        "similar name and postal code": {"similar_name_postal"},
    }
    assert {label: found.get(key) for label, key in ids.items()} == expected
    assert len(found) == len(expected)  # and nothing else


def test_different_people_are_not_candidates(db: Database) -> None:
    with db.session() as s:
        # a common name, but born on different days and living elsewhere
        make_customer(
            s, name="佐藤 太郎", name_kana="サトウ タロウ", birthday=date(1970, 1, 1), postal_code="100-0001"
        )
        make_customer(
            s, name="佐藤 太郎", name_kana="サトウ タロウ", birthday=date(1985, 6, 1), postal_code="530-0001"
        )
        # neighbours born on the same day
        make_customer(
            s, name="田中 花子", name_kana="タナカ ハナコ", birthday=BIRTHDAY, postal_code="150-0001"
        )
        make_customer(
            s, name="鈴木 一郎", name_kana="スズキ イチロウ", birthday=BIRTHDAY, postal_code="150-0001"
        )
        # different names in one building
        make_customer(s, name="山本 大輔", name_kana="ヤマモト ダイスケ", postal_code="150-0001")
        # a person and a company sharing the office phone
        person = make_customer(s, name="加藤 亮", name_kana=None, phones=["03-1234-5678"])
        company = make_customer(s, name="株式会社加藤商店", name_kana=None, kind="company")
        _legacy(s, company.id, phone="+81312345678")
        assert person.id
    with db.session(write=False) as s:
        assert duplicates.find_pairs(s) == {}


def test_merged_customers_and_oversized_blocks_are_skipped(db: Database) -> None:
    with db.session() as s:
        a = make_customer(s, name="高橋 健一", name_kana=None, birthday=BIRTHDAY).id
        b = make_customer(s, name="高橋 健一", name_kana=None, birthday=BIRTHDAY).id
        c = make_customer(s, name="高橋 健一", name_kana=None, birthday=BIRTHDAY).id
    with db.session(write=False) as s:
        assert set(duplicates.find_pairs(s)) == {(a, b), (a, c), (b, c)}
    with db.session() as s:
        merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=a, merged_id=b)
    with db.session(write=False) as s:
        assert set(duplicates.find_pairs(s)) == {(a, c)}
    with db.session() as s:
        # more people on one key than MAX_BLOCK is shared data, not duplicates: no flood of pairs
        for i in range(duplicates.MAX_BLOCK + 1):
            make_customer(s, name="共有 番号", name_kana=None, birthday=date(2000, 1, 1), note=str(i))
    with db.session(write=False) as s:
        assert set(duplicates.find_pairs(s)) == {(a, c)}


def _names(api: TestClient, **params: Any) -> list[tuple[str, str]]:
    items = api.get("/api/v1/duplicates", params=params).json()["items"]
    return [(i["customers"][0]["name"], i["customers"][1]["name"]) for i in items]


def test_scan_keeps_dismissed_pairs_dismissed_and_drops_stale_ones(db: Database, api: TestClient) -> None:
    with db.session() as s:
        a = make_customer(s, name="高橋 健一", name_kana=None, birthday=BIRTHDAY, emails=["ken@example.jp"])
        b = make_customer(s, name="高橋健一", name_kana=None, birthday=BIRTHDAY)
        c = make_customer(s, name="伊藤 翔", name_kana=None, postal_code="100-0001")
        d = make_customer(s, name="伊藤 翔", name_kana=None, postal_code="100-0001")
        _legacy(s, b.id, email="ken@example.jp")
        ids = a.id, b.id, c.id, d.id
    scan = api.post("/api/v1/duplicates/scan").json()
    assert (scan["found"], scan["added"]) == (2, 2)
    body = api.get("/api/v1/duplicates").json()
    # best first: the shared email and the same name and birthday together beat a name at one address
    first, second = body["items"]
    assert [cu["id"] for cu in first["customers"]] == [ids[0], ids[1]]
    assert [r["code"] for r in first["reasons"]] == ["same_email", "same_name_birthday"]
    assert first["reasons"][0]["value"] == "ken@example.jp" and first["score"] > second["score"]
    assert second["reasons"] == [{"code": "same_name_postal", "value": "100-0001"}]

    page = api.get("/api/v1/duplicates", params={"limit": 1}).json()
    assert [i["id"] for i in page["items"]] == [first["id"]]
    page = api.get("/api/v1/duplicates", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [i["id"] for i in page["items"]] == [second["id"]] and page["next_cursor"] is None

    assert api.post(f"/api/v1/duplicates/{second['id']}/dismiss").status_code == 204
    assert api.post("/api/v1/duplicates/999999/dismiss").status_code == 404
    scan = api.post("/api/v1/duplicates/scan").json()
    assert (scan["found"], scan["added"], scan["dismissed"]) == (2, 0, 1)
    assert [i["id"] for i in api.get("/api/v1/duplicates").json()["items"]] == [first["id"]]
    assert [
        i["id"] for i in api.get("/api/v1/duplicates", params={"status": "dismissed"}).json()["items"]
    ] == [second["id"]]
    # someone corrects the data: the pair no longer matches and leaves the list
    api.patch(f"/api/v1/customers/{ids[1]}", json={"birthday": "1976-06-06"})
    with db.session() as s:
        _legacy(s, ids[1], email=None)
    scan = api.post("/api/v1/duplicates/scan").json()
    assert scan["removed"] == 1 and api.get("/api/v1/duplicates").json()["items"] == []
    assert api.get("/api/v1/duplicates", params={"cursor": "bad!"}).status_code == 400


def test_merging_settles_the_open_candidate(db: Database, api: TestClient) -> None:
    with db.session() as s:
        a = make_customer(s, name="高橋 健一", name_kana=None, birthday=BIRTHDAY).id
        b = make_customer(s, name="高橋健一", name_kana=None, birthday=BIRTHDAY).id
    api.post("/api/v1/duplicates/scan")
    assert len(api.get("/api/v1/duplicates").json()["items"]) == 1
    assert api.post("/api/v1/merges", json={"survivor_id": a, "merged_id": b}).status_code == 201
    assert api.get("/api/v1/duplicates").json()["items"] == []


# ---------------------------------------------------------------- automatic merge


def _shared_identities(s: Session) -> tuple[int, int, int, int, int]:
    old = make_customer(s, name="森 優子", name_kana=None, emails=["yuko@example.jp"]).id
    new = make_customer(s, name="森 ゆうこ", name_kana=None)
    _legacy(s, new.id, email="yuko@example.jp")
    third = make_customer(s, name="Yuko Mori", name_kana=None,
                          external_ids=[{"source": "pos", "value": "yuko@example.jp"}]).id  # fmt: skip
    phone_a = make_customer(s, name="石井 父", name_kana=None, phones=["0422-11-2233"]).id
    phone_b = make_customer(s, name="石井 娘", name_kana=None)
    _legacy(s, phone_b.id, phone="+81422112233")
    return old, new.id, third, phone_a, phone_b.id


def test_customers_sharing_an_email_are_merged_automatically(db: Database) -> None:
    with db.session() as s:
        old, new, third, phone_a, phone_b = _shared_identities(s)
    with db.session() as s:
        plan = duplicates.merge_shared_identities(s, actor=TEST_ACTOR, dry_run=True)
        assert [(p.survivor_id, p.merged_id) for p in plan] == [(old, new), (old, third)]
    with db.session(write=False) as s:
        assert s.scalar(select(CustomerMerge.id)) is None  # a dry run changes nothing
    with db.session() as s:
        duplicates.merge_shared_identities(s, actor=TEST_ACTOR)
    with db.session(write=False) as s:
        merges = list(s.scalars(select(CustomerMerge).order_by(CustomerMerge.id)))
        assert [(m.survivor_id, m.merged_id, m.automatic) for m in merges] == [
            (old, new, True),
            (old, third, True),
        ]
        assert "yuko@example.jp" in (merges[0].reason or "")
        # a shared phone (a family, an office) is not enough on its own
        assert s.get(Customer, phone_b).merged_into_id is None  # type: ignore[union-attr]
    with db.session() as s:
        plan = duplicates.merge_shared_identities(s, actor=TEST_ACTOR, include_phone=True)
        assert [(p.survivor_id, p.merged_id) for p in plan] == [(phone_a, phone_b)]
    with db.session() as s:
        assert duplicates.merge_shared_identities(s, actor=TEST_ACTOR, include_phone=True) == []


def test_cli_duplicates_and_automatic_merge(db: Database) -> None:
    with db.session() as s:
        old, new, third, _a, _b = _shared_identities(s)
    env = {**os.environ, "KOKYAKU_DATABASE_URL": db.url, "KOKYAKU_ENVIRONMENT": "test"}
    exe = os.path.join(os.path.dirname(sys.executable), "kokyaku")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, "customers", *args], env=env, capture_output=True, text=True, timeout=120)

    done = run("duplicates")
    assert done.returncode == 0, done.stderr
    assert "4 pairs found" in done.stderr and "森 優子" in done.stdout
    done = run("merge-shared-identities", "--dry-run")
    assert done.returncode == 0 and f"#{new} -> #{old}" in done.stdout and "would merge 2" in done.stderr
    done = run("merge-shared-identities")
    assert done.returncode == 0 and "merged 2 customers" in done.stderr
    with db.session(write=False) as s:
        assert {c for c in s.scalars(select(Customer.merged_into_id)) if c} == {old}
        assert s.get(Customer, third).merged_into_id == old  # type: ignore[union-attr]
