"""Customer service: identities, audit, search and keyset pagination, custom fields."""

import pytest
from sqlalchemy import func, select

from kokyaku.audit.models import AuditEntry
from kokyaku.customers import service
from kokyaku.customers.models import Customer, Identity
from kokyaku.customers.schemas import CustomerCreate, CustomerUpdate, CustomFieldIn
from kokyaku.db import Database
from kokyaku.errors import ValidationFailed
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer


def _names(db: Database, q: str, **filters: object) -> list[str]:
    with db.session(write=False) as s:
        page = service.list_customers(s, service.CustomerFilters(q=q, **filters), limit=50)  # type: ignore[arg-type]
        return [c.name for c in page.items]


def test_create_stores_normalised_identities_and_audits(db: Database) -> None:
    with db.session() as s:
        c = make_customer(
            s, emails=[" Taro@Example.JP "], phones=["０９０-１２３４-５６７８"], interests=["旅行", "旅行"]
        )
        out = service.to_out(s, c)
    assert out.emails == ["taro@example.jp"] and out.email == "taro@example.jp"
    assert out.phones == ["+819012345678"]
    assert out.interests == ["旅行"]
    with db.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.entity_id == c.id)).one()
    assert entry.action == "create" and entry.actor_label == "test"
    assert entry.changes["name"] == [None, "山田 太郎"]
    assert entry.changes["emails"] == [None, ["taro@example.jp"]]


def test_identity_of_another_customer_is_refused_and_nothing_is_written(db: Database) -> None:
    with db.session() as s:
        first = make_customer(s, emails=["taro@example.jp"])
    with pytest.raises(Exception) as info, db.session() as s:
        make_customer(s, name="別人", emails=["new@example.jp", "TARO@example.jp"])
    assert info.value.code == "identity_taken"  # type: ignore[attr-defined]
    assert info.value.field == "emails.1"  # type: ignore[attr-defined]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 1
        assert s.scalars(select(Identity.value)).all() == ["taro@example.jp"]
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 1
        assert first.id


def test_update_records_old_and_new_per_field(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s, prefecture="東京都", emails=["a@example.jp"])
    with db.session() as s:
        service.update_customer(
            s,
            actor=TEST_ACTOR,
            customer_id=c.id,
            data=CustomerUpdate(prefecture="大阪府", emails=["b@example.jp"], city="大阪市"),
        )
    with db.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "update")).one()
        assert entry.changes == {
            "prefecture": ["東京都", "大阪府"],
            "emails": [["a@example.jp"], ["b@example.jp"]],
            "city": [None, "大阪市"],
        }
        assert s.get(Customer, c.id).email == "b@example.jp"  # type: ignore[union-attr]
        # the released email can now be taken by someone else
        make_customer(s, name="別人", emails=["a@example.jp"])


def test_an_update_that_changes_nothing_writes_no_audit(db: Database) -> None:
    with db.session() as s:
        c = make_customer(s, prefecture="東京都")
    with db.session() as s:
        service.update_customer(
            s, actor=TEST_ACTOR, customer_id=c.id, data=CustomerUpdate(prefecture="東京都")
        )
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("山", {"山田 太郎", "山本 花子"}),  # one character
        ("山田", {"山田 太郎"}),  # two characters
        ("やまだ", {"山田 太郎"}),  # hiragana meets katakana kana
        ("ヤマモト", {"山本 花子"}),
        ("ﾔﾏﾓﾄ", {"山本 花子"}),  # half-width katakana
        ("田太", {"山田 太郎"}),  # across the space
        ("花子", {"山本 花子"}),
        ("smith", {"John Smith"}),
        ("Jo", {"John Smith"}),
        ("hanako@", {"山本 花子"}),  # email prefix
        ("090-1111", {"山本 花子"}),  # phone prefix as people type it
        ("鈴木", set()),
    ],
)
def test_search_by_name_kana_email_and_phone(db: Database, query: str, expected: set[str]) -> None:
    with db.session() as s:
        make_customer(s, name="山田 太郎", name_kana="ヤマダ タロウ")
        make_customer(
            s,
            name="山本 花子",
            name_kana="やまもと はなこ",
            emails=["hanako@example.jp"],
            phones=["090-1111-2222"],
        )
        make_customer(s, name="John Smith", name_kana=None)
    assert set(_names(db, query)) == expected


def test_search_combines_with_filters(db: Database) -> None:
    with db.session() as s:
        make_customer(s, name="山田 太郎", prefecture="東京都")
        make_customer(s, name="山田 次郎", name_kana="ヤマダ ジロウ", prefecture="大阪府")
    assert _names(db, "山田", prefecture="大阪府") == ["山田 次郎"]


def test_keyset_pages_neither_skip_nor_repeat(db: Database) -> None:
    with db.session() as s:
        ids = [make_customer(s, name=f"田中 {i}", name_kana="タナカ").id for i in range(23)]
    for q in (None, "田中"):
        seen: list[int] = []
        cursor = None
        while True:
            with db.session(write=False) as s:
                page = service.list_customers(s, service.CustomerFilters(q=q), cursor=cursor, limit=5)
            seen += [c.id for c in page.items]
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        assert seen == sorted(ids, reverse=True)


def test_custom_fields_are_validated_by_type(db: Database) -> None:
    with db.session() as s:
        for key, kind, choices in (
            ("rank", "choice", ["gold", "silver"]),
            ("visits", "number", []),
            ("joined", "date", []),
        ):
            service.create_custom_field(
                s,
                actor=TEST_ACTOR,
                data=CustomFieldIn(key=key, label_ja=key, label_en=key, type=kind, choices=choices),  # type: ignore[arg-type]
            )
    with pytest.raises(ValidationFailed) as info, db.session() as s:
        make_customer(s, custom={"rank": "bronze", "visits": "many", "joined": "2024-13-01", "nope": 1})
    fields = {f for f, _m, _p in info.value.problems}
    assert fields == {"custom.rank", "custom.visits", "custom.joined", "custom.nope"}
    with db.session() as s:
        c = make_customer(s, custom={"rank": "gold", "visits": "１２", "joined": "2024-01-05"})
        assert c.custom == {"rank": "gold", "visits": 12, "joined": "2024-01-05"}


def test_contacts_belong_to_a_company(db: Database) -> None:
    with db.session() as s:
        company = service.create_customer(
            s, actor=TEST_ACTOR, data=CustomerCreate(kind="company", name="株式会社サンプル")
        )
        person = make_customer(s, company_id=company.id)
        assert [p.id for p in service.contacts_of(s, company.id)] == [person.id]
    with pytest.raises(ValidationFailed), db.session() as s:
        make_customer(s, name="誰か", company_id=person.id)  # a person is not a company
