"""A small hand-built population whose every field value is known, for the rule, RFM and lifecycle tests."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from kokyaku.customers import service as customers
from kokyaku.customers.schemas import CustomFieldIn
from kokyaku.segments.rules import years_before
from tests.commerce.factories import make_order, make_product
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer

TZ = "Asia/Tokyo"


def today() -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(TZ)).date()


def days_ago(n: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=n)


@dataclass
class People:
    ids: dict[str, int]

    def names(self, ids: set[int]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in ids}


def make_people(session: Session) -> People:
    """aoi (35, Tokyo, 3 orders), ben (29, Osaka, 1 order), chika (no data), dcorp (a company), emi (50,
    Kanagawa, works at dcorp, only a cancelled order)."""
    for key, kind, choices in (("plan", "choice", ["gold", "silver"]), ("score", "number", []),
                               ("joined", "date", []), ("memo", "text", [])):  # fmt: skip
        customers.create_custom_field(
            session, actor=TEST_ACTOR,
            data=CustomFieldIn(key=key, label_ja=key, label_en=key, type=kind, choices=choices),  # type: ignore[arg-type]
        )  # fmt: skip
    wine = make_product(session, sku="W-1", name="赤ワイン", price=3000, category="ワイン")
    tea = make_product(session, sku="T-1", name="煎茶", price=1000, category="茶")
    t = today()
    aoi = make_customer(session, name="青井 葵", gender="female", prefecture="東京都", city="渋谷区",
                        birthday=years_before(t, 35), interests=["ワイン", "旅行"],
                        custom={"plan": "gold", "score": 80, "joined": "2020-04-01",
                                "memo": "=cmd|' /C calc'!A0"})  # fmt: skip
    ben = make_customer(session, name="Ben Smith", name_kana=None, gender="male", prefecture="大阪府",
                        city="大阪市北区", birthday=years_before(t, 30) + timedelta(days=1),
                        interests=["旅行"], custom={"plan": "silver", "score": 12.5})  # fmt: skip
    chika = make_customer(session, name="千葉 ちか", name_kana=None, gender="other")
    dcorp = make_customer(session, name="D株式会社", name_kana=None, kind="company", industry="IT",
                          company_size="10-49", prefecture="東京都")  # fmt: skip
    emi = make_customer(session, name="江美 恵", name_kana=None, gender="female", prefecture="神奈川県",
                        birthday=years_before(t, 50), company_id=dcorp.id)  # fmt: skip
    make_order(session, customer_id=aoi.id, at=days_ago(10), channel="online", lines=[{"sku": "W-1"}])
    make_order(session, customer_id=aoi.id, at=days_ago(100), channel="store", lines=[{"sku": "T-1"}])
    make_order(session, customer_id=aoi.id, at=days_ago(400), channel="online", price=2000)
    make_order(
        session, customer_id=ben.id, at=days_ago(5), channel="sns", lines=[{"sku": "T-1", "quantity": 2}]
    )
    make_order(session, customer_id=emi.id, at=days_ago(3), channel="online", status="cancelled",
               lines=[{"sku": "W-1"}])  # fmt: skip
    del wine, tea
    session.flush()
    return People({"aoi": aoi.id, "ben": ben.id, "chika": chika.id, "dcorp": dcorp.id, "emi": emi.id})


def rules(*conditions: dict, op: str = "and") -> dict:  # type: ignore[type-arg]
    return {"op": op, "conditions": list(conditions)}
