"""Every rule field and operator against a population whose answers are known; nested groups; every problem
named by its condition path; and rules that try to smuggle SQL in."""

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kokyaku.customers.models import Customer
from kokyaku.db import Database
from kokyaku.errors import ValidationFailed
from kokyaku.segments import service
from kokyaku.segments.lifecycle import LifecycleRules
from kokyaku.segments.recompute import recompute_all
from tests.segments.factories import TZ, People, make_people, rules, today


@pytest.fixture
def people(db: Database) -> People:
    with db.session() as s:
        found = make_people(s)
        recompute_all(s, rules=LifecycleRules(), tz=TZ)
    return found


def members(db: Database, people: People, raw: dict[str, Any]) -> set[str]:
    with db.session(write=False) as s:
        compiled = service.compile_rules(s, raw, TZ)
        ids = set(s.scalars(compiled.select_from(Customer.id)))
        assert service.count_compiled(s, compiled) == len(ids)
    return people.names(ids)


ALL = {"aoi", "ben", "chika", "dcorp", "emi"}
d = today().isoformat()


def ago(n: int) -> str:
    return (today() - timedelta(days=n)).isoformat()


CASES: list[tuple[dict[str, Any], set[str]]] = [
    # demographic
    ({"field": "age", "operator": "eq", "value": 35}, {"aoi"}),
    ({"field": "age", "operator": "ne", "value": 35}, ALL - {"aoi"}),
    ({"field": "age", "operator": "gte", "value": 30}, {"aoi", "emi"}),  # ben turns 30 tomorrow
    ({"field": "age", "operator": "gt", "value": 35}, {"emi"}),
    ({"field": "age", "operator": "lt", "value": 30}, {"ben"}),
    ({"field": "age", "operator": "lte", "value": 35}, {"aoi", "ben"}),
    ({"field": "age", "operator": "between", "value": [29, 35]}, {"aoi", "ben"}),
    ({"field": "age", "operator": "not_between", "value": [29, 35]}, {"chika", "dcorp", "emi"}),
    ({"field": "age", "operator": "is_empty"}, {"chika", "dcorp"}),
    ({"field": "age", "operator": "is_not_empty"}, {"aoi", "ben", "emi"}),
    ({"field": "gender", "operator": "in", "value": ["female", "other"]}, {"aoi", "chika", "emi"}),
    ({"field": "gender", "operator": "eq", "value": "male"}, {"ben"}),
    ({"field": "gender", "operator": "ne", "value": "female"}, {"ben", "chika", "dcorp"}),
    ({"field": "gender", "operator": "not_in", "value": ["female"]}, {"ben", "chika", "dcorp"}),
    ({"field": "prefecture", "operator": "in", "value": ["東京都", "神奈川県"]}, {"aoi", "dcorp", "emi"}),
    ({"field": "prefecture", "operator": "is_empty"}, {"chika"}),
    ({"field": "city", "operator": "contains", "value": "大阪"}, {"ben"}),
    ({"field": "city", "operator": "starts_with", "value": "渋谷"}, {"aoi"}),
    ({"field": "city", "operator": "eq", "value": "渋谷区"}, {"aoi"}),
    ({"field": "city", "operator": "in", "value": ["渋谷区", "大阪市北区"]}, {"aoi", "ben"}),
    ({"field": "city", "operator": "contains", "value": "%"}, set()),  # LIKE wildcards are literal
    ({"field": "kind", "operator": "eq", "value": "company"}, {"dcorp"}),
    ({"field": "kind", "operator": "in", "value": ["person"]}, ALL - {"dcorp"}),
    ({"field": "company_industry", "operator": "in", "value": ["IT"]}, {"dcorp", "emi"}),  # emi works there
    ({"field": "company_industry", "operator": "is_empty"}, {"aoi", "ben", "chika"}),
    ({"field": "company_size", "operator": "in", "value": ["10-49"]}, {"dcorp", "emi"}),
    ({"field": "created", "operator": "on", "value": d}, ALL),
    ({"field": "created", "operator": "before", "value": d}, set()),
    ({"field": "created", "operator": "in_last_days", "value": 0}, ALL),
    ({"field": "created", "operator": "more_than_days_ago", "value": 1}, set()),
    # psychographic
    ({"field": "interests", "operator": "any_of", "value": ["ワイン", "料理"]}, {"aoi"}),
    ({"field": "interests", "operator": "all_of", "value": ["ワイン", "旅行"]}, {"aoi"}),
    ({"field": "interests", "operator": "all_of", "value": ["旅行"]}, {"aoi", "ben"}),
    ({"field": "interests", "operator": "none_of", "value": ["ワイン"]}, ALL - {"aoi"}),
    ({"field": "interests", "operator": "is_empty"}, {"chika", "dcorp", "emi"}),
    ({"field": "interests", "operator": "is_not_empty"}, {"aoi", "ben"}),
    ({"field": "custom.plan", "operator": "eq", "value": "gold"}, {"aoi"}),
    ({"field": "custom.plan", "operator": "not_in", "value": ["gold"]}, ALL - {"aoi"}),
    ({"field": "custom.score", "operator": "gt", "value": 12}, {"aoi", "ben"}),
    ({"field": "custom.score", "operator": "between", "value": [50, 100]}, {"aoi"}),
    ({"field": "custom.joined", "operator": "before", "value": "2021-01-01"}, {"aoi"}),
    ({"field": "custom.memo", "operator": "is_not_empty"}, {"aoi"}),
    # behavioural
    # a cancelled order is none
    ({"field": "order_count", "operator": "eq", "value": 0}, {"chika", "dcorp", "emi"}),
    ({"field": "order_count", "operator": "gte", "value": 1}, {"aoi", "ben"}),
    ({"field": "order_count", "operator": "lt", "value": 3}, ALL - {"aoi"}),
    ({"field": "order_count", "operator": "between", "value": [1, 2]}, {"ben"}),
    ({"field": "order_count", "operator": "not_between", "value": [1, 2]}, ALL - {"ben"}),
    ({"field": "order_count", "operator": "ne", "value": 1}, ALL - {"ben"}),
    ({"field": "total_spend", "operator": "gte", "value": 6000}, {"aoi"}),
    ({"field": "total_spend", "operator": "lte", "value": 2000}, ALL - {"aoi"}),
    ({"field": "avg_order_value", "operator": "eq", "value": 2000}, {"aoi", "ben"}),
    ({"field": "days_since_last_order", "operator": "lte", "value": 5}, {"ben"}),
    ({"field": "days_since_last_order", "operator": "eq", "value": 10}, {"aoi"}),
    ({"field": "days_since_last_order", "operator": "between", "value": [6, 30]}, {"aoi"}),
    ({"field": "days_since_last_order", "operator": "gt", "value": 5}, {"aoi"}),  # never bought: no match
    ({"field": "days_since_last_order", "operator": "lt", "value": 10}, {"ben"}),
    ({"field": "days_since_last_order", "operator": "ne", "value": 10}, ALL - {"aoi"}),
    ({"field": "days_since_last_order", "operator": "is_empty"}, {"chika", "dcorp", "emi"}),
    ({"field": "first_order_date", "operator": "in_last_days", "value": 30}, {"ben"}),
    ({"field": "last_order_date", "operator": "more_than_days_ago", "value": 7}, {"aoi"}),
    ({"field": "channels", "operator": "any_of", "value": ["store"]}, {"aoi"}),
    ({"field": "channels", "operator": "any_of", "value": ["store"], "days": 30}, set()),
    ({"field": "channels", "operator": "all_of", "value": ["store", "online"]}, {"aoi"}),
    ({"field": "channels", "operator": "any_of", "value": ["online"], "days": 30}, {"aoi"}),  # emi's is void
    ({"field": "channels", "operator": "none_of", "value": ["online", "sns"]}, {"chika", "dcorp", "emi"}),
    ({"field": "bought_category", "operator": "any_of", "value": ["茶"]}, {"aoi", "ben"}),
    ({"field": "bought_category", "operator": "any_of", "value": ["茶"], "days": 30}, {"ben"}),
    ({"field": "bought_category", "operator": "none_of", "value": ["ワイン"]}, ALL - {"aoi"}),
    ({"field": "bought_category", "operator": "all_of", "value": ["ワイン", "茶"]}, {"aoi"}),
    ({"field": "bought_product", "operator": "any_of", "value": ["W-1"], "days": 11}, {"aoi"}),
    ({"field": "bought_product", "operator": "any_of", "value": ["W-1"], "days": 9}, set()),
    ({"field": "rfm_segment", "operator": "is_not_empty"}, {"aoi", "ben"}),
    ({"field": "rfm_segment", "operator": "is_empty"}, {"chika", "dcorp", "emi"}),
    # two buyers: the better of the two has half the buyers below it, so 1 + floor(5 x 1/2) = 3
    ({"field": "rfm_f", "operator": "eq", "value": 3}, {"aoi"}),
    ({"field": "rfm_r", "operator": "in", "value": [3]}, {"ben"}),
    ({"field": "rfm_r", "operator": "lte", "value": 1}, {"aoi"}),
    ({"field": "rfm_m", "operator": "between", "value": [1, 5]}, {"aoi", "ben"}),
    ({"field": "lifecycle_stage", "operator": "in", "value": ["lead"]}, {"chika", "dcorp", "emi"}),
    ({"field": "lifecycle_stage", "operator": "eq", "value": "new"}, {"ben"}),
    ({"field": "lifecycle_stage", "operator": "not_in", "value": ["lead"]}, {"aoi", "ben"}),
    ({"field": "lifecycle_stage", "operator": "ne", "value": "new"}, ALL - {"ben"}),
    # the remaining operators of each field
    ({"field": "gender", "operator": "is_empty"}, {"dcorp"}),
    ({"field": "gender", "operator": "is_not_empty"}, ALL - {"dcorp"}),
    ({"field": "prefecture", "operator": "not_in", "value": ["東京都"]}, {"ben", "chika", "emi"}),
    ({"field": "prefecture", "operator": "eq", "value": "大阪府"}, {"ben"}),
    ({"field": "prefecture", "operator": "ne", "value": "東京都"}, {"ben", "chika", "emi"}),
    ({"field": "prefecture", "operator": "is_not_empty"}, ALL - {"chika"}),
    ({"field": "city", "operator": "ne", "value": "渋谷区"}, ALL - {"aoi"}),
    ({"field": "city", "operator": "not_in", "value": ["渋谷区"]}, ALL - {"aoi"}),
    ({"field": "city", "operator": "is_empty"}, {"chika", "dcorp", "emi"}),
    ({"field": "city", "operator": "is_not_empty"}, {"aoi", "ben"}),
    ({"field": "kind", "operator": "ne", "value": "company"}, ALL - {"dcorp"}),
    ({"field": "kind", "operator": "not_in", "value": ["company"]}, ALL - {"dcorp"}),
    ({"field": "company_industry", "operator": "eq", "value": "IT"}, {"dcorp", "emi"}),
    ({"field": "company_industry", "operator": "ne", "value": "IT"}, {"aoi", "ben", "chika"}),
    ({"field": "company_industry", "operator": "not_in", "value": ["IT"]}, {"aoi", "ben", "chika"}),
    ({"field": "company_industry", "operator": "contains", "value": "T"}, {"dcorp", "emi"}),
    ({"field": "company_industry", "operator": "starts_with", "value": "i"}, {"dcorp", "emi"}),  # any case
    ({"field": "company_industry", "operator": "is_not_empty"}, {"dcorp", "emi"}),
    ({"field": "company_size", "operator": "not_in", "value": ["10-49"]}, {"aoi", "ben", "chika"}),
    ({"field": "company_size", "operator": "eq", "value": "10-49"}, {"dcorp", "emi"}),
    ({"field": "company_size", "operator": "ne", "value": "10-49"}, {"aoi", "ben", "chika"}),
    ({"field": "company_size", "operator": "is_empty"}, {"aoi", "ben", "chika"}),
    ({"field": "company_size", "operator": "is_not_empty"}, {"dcorp", "emi"}),
    ({"field": "created", "operator": "after", "value": d}, set()),
    ({"field": "created", "operator": "between", "value": [d, d]}, ALL),
    ({"field": "created", "operator": "is_empty"}, set()),
    ({"field": "created", "operator": "is_not_empty"}, ALL),
    ({"field": "order_count", "operator": "gt", "value": 1}, {"aoi"}),
    ({"field": "order_count", "operator": "lte", "value": 1}, ALL - {"aoi"}),
    ({"field": "days_since_last_order", "operator": "gte", "value": 10}, {"aoi"}),
    ({"field": "days_since_last_order", "operator": "not_between", "value": [0, 7]}, ALL - {"ben"}),
    ({"field": "days_since_last_order", "operator": "is_not_empty"}, {"aoi", "ben"}),
    ({"field": "total_spend", "operator": "eq", "value": 2000}, {"ben"}),
    ({"field": "total_spend", "operator": "ne", "value": 2000}, ALL - {"ben"}),
    ({"field": "total_spend", "operator": "gt", "value": 2000}, {"aoi"}),
    ({"field": "total_spend", "operator": "lt", "value": 2000}, {"chika", "dcorp", "emi"}),  # none is 0
    ({"field": "total_spend", "operator": "between", "value": [1, 5999]}, {"ben"}),
    ({"field": "total_spend", "operator": "not_between", "value": [1, 5999]}, ALL - {"ben"}),
    ({"field": "avg_order_value", "operator": "ne", "value": 2000}, {"chika", "dcorp", "emi"}),
    ({"field": "avg_order_value", "operator": "gt", "value": 0}, {"aoi", "ben"}),
    ({"field": "avg_order_value", "operator": "gte", "value": 2000}, {"aoi", "ben"}),
    ({"field": "avg_order_value", "operator": "lt", "value": 1}, {"chika", "dcorp", "emi"}),
    ({"field": "avg_order_value", "operator": "lte", "value": 1999}, {"chika", "dcorp", "emi"}),
    ({"field": "avg_order_value", "operator": "between", "value": [2000, 2000]}, {"aoi", "ben"}),
    ({"field": "avg_order_value", "operator": "not_between", "value": [1, 3000]}, {"chika", "dcorp", "emi"}),
    ({"field": "first_order_date", "operator": "on", "value": ago(400)}, {"aoi"}),
    ({"field": "first_order_date", "operator": "before", "value": ago(100)}, {"aoi"}),
    ({"field": "first_order_date", "operator": "after", "value": ago(6)}, {"ben"}),
    ({"field": "first_order_date", "operator": "between", "value": [ago(401), ago(399)]}, {"aoi"}),
    ({"field": "first_order_date", "operator": "more_than_days_ago", "value": 30}, {"aoi"}),
    ({"field": "first_order_date", "operator": "is_empty"}, {"chika", "dcorp", "emi"}),
    ({"field": "first_order_date", "operator": "is_not_empty"}, {"aoi", "ben"}),
    ({"field": "last_order_date", "operator": "on", "value": ago(10)}, {"aoi"}),
    ({"field": "last_order_date", "operator": "before", "value": ago(7)}, {"aoi"}),
    ({"field": "last_order_date", "operator": "after", "value": ago(7)}, {"ben"}),
    ({"field": "last_order_date", "operator": "between", "value": [ago(10), ago(5)]}, {"aoi", "ben"}),
    ({"field": "last_order_date", "operator": "in_last_days", "value": 7}, {"ben"}),
    ({"field": "last_order_date", "operator": "is_empty"}, {"chika", "dcorp", "emi"}),
    ({"field": "last_order_date", "operator": "is_not_empty"}, {"aoi", "ben"}),
    ({"field": "bought_product", "operator": "none_of", "value": ["W-1"]}, ALL - {"aoi"}),
    ({"field": "bought_product", "operator": "all_of", "value": ["W-1", "T-1"]}, {"aoi"}),
    ({"field": "rfm_r", "operator": "eq", "value": 1}, {"aoi"}),
    ({"field": "rfm_r", "operator": "ne", "value": 1}, ALL - {"aoi"}),
    ({"field": "rfm_r", "operator": "gt", "value": 1}, {"ben"}),
    ({"field": "rfm_r", "operator": "gte", "value": 3}, {"ben"}),
    ({"field": "rfm_r", "operator": "lt", "value": 3}, {"aoi"}),
    ({"field": "rfm_r", "operator": "between", "value": [1, 3]}, {"aoi", "ben"}),
    ({"field": "rfm_r", "operator": "not_in", "value": [3]}, ALL - {"ben"}),
    ({"field": "rfm_r", "operator": "is_empty"}, {"chika", "dcorp", "emi"}),
    ({"field": "rfm_r", "operator": "is_not_empty"}, {"aoi", "ben"}),
    ({"field": "rfm_f", "operator": "ne", "value": 3}, ALL - {"aoi"}),
    ({"field": "rfm_f", "operator": "gt", "value": 1}, {"aoi"}),
    ({"field": "rfm_f", "operator": "gte", "value": 1}, {"aoi", "ben"}),
    ({"field": "rfm_f", "operator": "lt", "value": 3}, {"ben"}),
    ({"field": "rfm_f", "operator": "lte", "value": 1}, {"ben"}),
    ({"field": "rfm_f", "operator": "between", "value": [2, 3]}, {"aoi"}),
    ({"field": "rfm_f", "operator": "in", "value": [1]}, {"ben"}),
    ({"field": "rfm_f", "operator": "not_in", "value": [1]}, ALL - {"ben"}),
    ({"field": "rfm_f", "operator": "is_empty"}, {"chika", "dcorp", "emi"}),
    ({"field": "rfm_f", "operator": "is_not_empty"}, {"aoi", "ben"}),
    ({"field": "rfm_m", "operator": "eq", "value": 3}, {"aoi"}),
    ({"field": "rfm_m", "operator": "ne", "value": 3}, ALL - {"aoi"}),
    ({"field": "rfm_m", "operator": "gt", "value": 1}, {"aoi"}),
    ({"field": "rfm_m", "operator": "gte", "value": 1}, {"aoi", "ben"}),
    ({"field": "rfm_m", "operator": "lt", "value": 3}, {"ben"}),
    ({"field": "rfm_m", "operator": "lte", "value": 3}, {"aoi", "ben"}),
    ({"field": "rfm_m", "operator": "in", "value": [1, 3]}, {"aoi", "ben"}),
    ({"field": "rfm_m", "operator": "not_in", "value": [1, 3]}, {"chika", "dcorp", "emi"}),
    ({"field": "rfm_m", "operator": "is_empty"}, {"chika", "dcorp", "emi"}),
    ({"field": "rfm_m", "operator": "is_not_empty"}, {"aoi", "ben"}),
    ({"field": "rfm_segment", "operator": "in", "value": ["at_risk"]}, {"aoi"}),  # R1 F3
    ({"field": "rfm_segment", "operator": "not_in", "value": ["at_risk"]}, ALL - {"aoi"}),
    ({"field": "rfm_segment", "operator": "eq", "value": "about_to_sleep"}, {"ben"}),  # R3 F1
    ({"field": "rfm_segment", "operator": "ne", "value": "about_to_sleep"}, ALL - {"ben"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("condition", "expected"), CASES,
    ids=[f"{c['field']}-{c['operator']}-{i}" for i, (c, _) in enumerate(CASES)],
)  # fmt: skip
def test_each_field_and_operator(
    db: Database, people: People, condition: dict[str, Any], expected: set[str]
) -> None:
    assert members(db, people, rules(condition)) == expected


def test_every_builtin_field_and_operator_has_a_case() -> None:
    from kokyaku.segments.fields import _FIELDS

    covered = {(c["field"], c["operator"]) for c, _ in CASES}
    assert [(f.key, op) for f in _FIELDS for op in f.allowed_operators() if (f.key, op) not in covered] == []


def test_nested_groups(db: Database, people: People) -> None:
    tokyo_or_young = rules(
        {"field": "prefecture", "operator": "in", "value": ["東京都"]},
        {"field": "age", "operator": "lt", "value": 30},
        op="or",
    )
    assert members(
        db, people, rules({"field": "kind", "operator": "eq", "value": "person"}, tokyo_or_young)
    ) == {"aoi", "ben"}  # fmt: skip
    deep = rules(rules(rules(rules({"field": "gender", "operator": "eq", "value": "male"}))))
    assert members(db, people, deep) == {"ben"}
    either = rules(rules({"field": "age", "operator": "gt", "value": 40}),
                   rules({"field": "order_count", "operator": "gte", "value": 3}), op="or")  # fmt: skip
    assert members(db, people, either) == {"aoi", "emi"}


def problems(db: Database, raw: Any) -> list[tuple[str, str]]:
    with db.session(write=False) as s, pytest.raises(ValidationFailed) as exc:
        service.compile_rules(s, raw, TZ)
    return [(field, message) for field, message, _ in exc.value.problems]


BAD: list[tuple[Any, str, str]] = [
    ([], "rules", 'The rules must be an object with "op" and "conditions".'),
    (rules(), "conditions", "A group needs at least one condition."),
    ({"op": "xor", "conditions": [{"field": "age", "operator": "eq", "value": 1}]},
     "op", 'A group must be "and" or "or".'),
    (rules({"field": "shoe_size", "operator": "eq", "value": 1}), "conditions.0.field", "Unknown field."),
    (rules({"field": "custom.nope", "operator": "eq", "value": 1}), "conditions.0.field", "Unknown field."),
    (rules({"operator": "eq", "value": 1, "field": ""}), "conditions.0.field", "Choose a field."),
    (rules({"field": "age", "operator": "like", "value": 1}), "conditions.0.operator",
     "This operator cannot be used with this field."),
    (rules({"field": "gender", "operator": "gt", "value": "male"}), "conditions.0.operator",
     "This operator cannot be used with this field."),
    (rules({"field": "age", "operator": "eq", "value": "thirty"}), "conditions.0.value", "Must be a number."),
    (rules({"field": "age", "operator": "eq", "value": True}), "conditions.0.value", "Must be a number."),
    (rules({"field": "age", "operator": "eq", "value": 30.5}), "conditions.0.value",
     "Must be a whole number."),
    (rules({"field": "age", "operator": "eq", "value": 200}), "conditions.0.value", "Must be at most {max}."),
    (rules({"field": "total_spend", "operator": "gte", "value": "NaN"}), "conditions.0.value",
     "Must be a number."),
    (rules({"field": "total_spend", "operator": "gte", "value": float("inf")}), "conditions.0.value",
     "Must be a number."),
    (rules({"field": "age", "operator": "eq"}), "conditions.0.value", "This condition needs a value."),
    (rules({"field": "age", "operator": "is_empty", "value": 3}), "conditions.0.value",
     "This operator takes no value."),
    (rules({"field": "age", "operator": "between", "value": [40, 30]}), "conditions.0.value",
     "The lower bound is greater than the upper bound."),
    (rules({"field": "age", "operator": "between", "value": [30]}), "conditions.0.value",
     "Give two values: from and to."),
    (rules({"field": "age", "operator": "between", "value": [30, "x"]}), "conditions.0.value.1",
     "Must be a number."),
    (rules({"field": "prefecture", "operator": "in", "value": ["東京都", "Tokyo"]}), "conditions.0.value.1",
     "Not a prefecture of Japan."),
    (rules({"field": "gender", "operator": "eq", "value": "robot"}), "conditions.0.value",
     "Not one of the allowed values."),
    (rules({"field": "gender", "operator": "eq", "value": ["male"]}), "conditions.0.value",
     "Give one value, not a list."),
    (rules({"field": "city", "operator": "eq", "value": 12}), "conditions.0.value", "Must be text."),
    (rules({"field": "city", "operator": "eq", "value": "x" * 201}), "conditions.0.value",
     "At most {max} characters."),
    (rules({"field": "created", "operator": "before", "value": "2024-13-01"}), "conditions.0.value",
     "Must be a date (YYYY-MM-DD)."),
    (rules({"field": "created", "operator": "between", "value": ["2024-05-01", "2024-01-01"]}),
     "conditions.0.value", "The lower bound is greater than the upper bound."),
    (rules({"field": "bought_category", "operator": "any_of", "value": ["茶"], "days": 0}),
     "conditions.0.days", "Must be a whole number from {min} to {max}."),
    (rules({"field": "age", "operator": "eq", "value": 3, "days": 5}), "conditions.0.days",
     "This field takes no number of days."),
    (rules({"field": "age", "operator": "eq", "value": 3, "sql": "1=1"}), "conditions.0.sql", "Unknown key."),
    (rules({"field": "channels", "operator": "any_of", "value": ["fax"]}), "conditions.0.value.0",
     "Not one of the allowed values."),
    (rules({"field": "interests", "operator": "any_of", "value": ["x"] * 501}), "conditions.0.value",
     "At most {max} values."),
    (rules({"field": "age", "operator": "gte", "value": 50}, {"field": "age", "operator": "lt", "value": 40}),
     "conditions.1", "No customer can match both this and {other}."),
    (rules({"field": "prefecture", "operator": "in", "value": ["東京都"]},
           {"field": "prefecture", "operator": "eq", "value": "大阪府"}),
     "conditions.1", "No customer can match both this and {other}."),
    (rules({"field": "age", "operator": "eq", "value": 1},
           rules({"field": "age", "operator": "eq", "value": 1}, rules(), op="or")),
     "conditions.1.conditions.1.conditions", "A group needs at least one condition."),
    (rules(rules({"field": "age", "operator": "eq", "value": 1},
                 rules({"field": "nope", "operator": "eq", "value": 1}))),
     "conditions.0.conditions.1.conditions.0.field", "Unknown field."),
    (rules(rules(rules(rules(rules(rules({"field": "age", "operator": "eq", "value": 1})))))),
     "conditions.0.conditions.0.conditions.0.conditions.0.conditions.0",
     "Groups can be nested at most {max} levels deep."),
    (rules(*[{"field": "age", "operator": "gte", "value": 1}] * 51), "conditions.50",
     "A segment can have at most {max} conditions."),
    (rules("age > 3"), "conditions.0",
     "A condition must be an object with a field, or a group with conditions."),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "path", "message"), BAD, ids=[f"{i}-{p}" for i, (_, p, _) in enumerate(BAD)])
def test_every_problem_names_its_condition(db: Database, raw: Any, path: str, message: str) -> None:
    assert (path, message) in problems(db, raw)


def test_all_problems_are_reported_at_once(db: Database) -> None:
    found = problems(db, rules({"field": "age", "operator": "eq", "value": "x"}, rules({"field": "nope"}),
                               {"field": "gender", "operator": "eq", "value": "robot"}))  # fmt: skip
    assert [p for p, _ in found] == [
        "conditions.0.value",
        "conditions.1.conditions.0.field",
        "conditions.2.value",
    ]


def test_values_are_normalised_before_they_are_stored(db: Database, people: People) -> None:
    raw = rules({"field": "age", "operator": "between", "value": ["３０", "40"]},
                {"field": "prefecture", "operator": "in", "value": ["東京都", "東京都"]})  # fmt: skip
    with db.session(write=False) as s:
        from kokyaku.segments import rules as R

        assert R.normalize_rules(raw, service.context(s, TZ)) == rules(
            {"field": "age", "operator": "between", "value": [30, 40]},
            {"field": "prefecture", "operator": "in", "value": ["東京都"]},
        )


def test_age_is_computed_from_the_business_date_without_sql_date_functions(
    db: Database, people: People
) -> None:
    with db.session(write=False) as s:
        sql = str(
            service.compile_rules(s, rules({"field": "age", "operator": "eq", "value": 35}), TZ).select_from(
                Customer.id
            )
        )
    assert "birthday <=" in sql and "birthday >" in sql
    for fn in ("date(", "julianday", "strftime", "age(", "now()", "current_date", "extract("):
        assert fn not in sql.lower()


# ---------------------------------------------------------------- injection

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
NASTY = st.sampled_from([
    "'; DROP TABLE customers; --", "\" OR 1=1 --", "age); DELETE FROM customers; --", "1 OR 1=1",
    "%' OR '1'='1", "東京都' OR prefecture IS NOT NULL --", "custom.x') OR 1=1 --", "$.a\") OR 1=1", "\x00",
    "/* */", "%", "_",
])  # fmt: skip
FIELD = st.one_of(NASTY, st.text(max_size=20),
                  st.sampled_from(["age", "prefecture", "city", "custom.memo", "interests", "channels",
                                   "bought_product"]))  # fmt: skip
OPERATOR = st.one_of(NASTY, st.sampled_from(["eq", "ne", "in", "contains", "starts_with", "any_of", "between",
                                             "is_empty", "before"]))  # fmt: skip
VALUE = st.one_of(NASTY, JSON, st.lists(NASTY, max_size=3))
CONDITION = st.fixed_dictionaries({"field": FIELD, "operator": OPERATOR, "value": VALUE})
RULES = st.fixed_dictionaries({"op": st.one_of(st.sampled_from(["and", "or"]), NASTY),
                               "conditions": st.lists(CONDITION | JSON, min_size=0, max_size=4)})  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(RULES, JSON))
def test_rules_can_never_inject_sql(db: Database, people: People, raw: Any) -> None:
    """Any input is either refused with named problems or compiles to a query with bound values only."""
    with db.session(write=False) as s:
        try:
            compiled = service.compile_rules(s, raw, TZ)
        except ValidationFailed as exc:
            assert exc.problems and all(isinstance(p[0], str) and p[1] for p in exc.problems)
        else:
            count = service.count_compiled(s, compiled)
            assert 0 <= count <= len(people.ids)
            text = str(compiled.select_from(Customer.id).compile(compile_kwargs={}))
            for bad in ("DROP", "DELETE", "1=1", "--"):
                assert bad not in text
        assert s.scalar(select(func.count()).select_from(Customer)) == len(people.ids)


def test_a_value_with_quotes_is_data_not_sql(db: Database, people: People) -> None:
    assert (
        members(db, people, rules({"field": "city", "operator": "eq", "value": "渋谷区' OR '1'='1"})) == set()
    )
    assert (
        members(db, people, rules({"field": "interests", "operator": "any_of", "value": ["x') OR 1=1 --"]}))
        == set()
    )
    assert members(db, people, rules({"field": "custom.memo", "operator": "contains", "value": "cmd|'"})) == {
        "aoi"
    }


def test_session_unused(session: Session) -> None:
    """The fixtures above leave nothing behind: each test starts with an empty database."""
    assert session.scalar(select(func.count()).select_from(Customer)) == 0
