"""Plain keyword-only factories for customers."""

from typing import Any

from sqlalchemy.orm import Session

from kokyaku.customers import service
from kokyaku.customers.models import Customer
from kokyaku.customers.schemas import CustomerCreate
from tests.conftest import TEST_ACTOR


def make_customer(
    session: Session, *, name: str = "山田 太郎", name_kana: str | None = "ヤマダ タロウ", **fields: Any
) -> Customer:
    return service.create_customer(
        session, actor=TEST_ACTOR, data=CustomerCreate(name=name, name_kana=name_kana, **fields)
    )
