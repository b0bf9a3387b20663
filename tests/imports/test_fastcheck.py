"""The import's fast field check accepts exactly what CustomerUpdate accepts, with the same values, and
the audit text written for an imported customer is what json.dumps writes."""

import json
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kokyaku.customers.bulk import _created_json
from kokyaku.customers.schemas import CustomerUpdate
from kokyaku.imports.fastcheck import FastCheck

FAST = FastCheck(CustomerUpdate)

# Cells as an import row gives them to the schema: pieces that pass and pieces that break each rule.
TEXT = st.one_of(
    st.sampled_from(["山田 太郎", "Yamada Taro", "", " ", "東京都", "大阪", "Tokyo", "100-0001", "1000001",
                     "123-456", "ｶﾀｶﾅ", "やまだ たろう", "ヤマダ・タロウ", "山田", "a\tb", "a\nb", "x\x07",
                     "https://example.jp", "http://x", "example.jp", "ja", "en", "fr", "male", "female",
                     "other", "女", "10-49", "1000+", "5", "Ａｂｃ", "x" * 31, "x" * 101, "y" * 201]),
    st.text(max_size=12),
)  # fmt: skip
FIELDS = ["name", "name_kana", "postal_code", "prefecture", "city", "street", "job_title", "industry",
          "website", "source", "channel", "note", "gender", "company_size", "locale"]  # fmt: skip
DAYS = st.integers(-3, 50_000).map(lambda n: date.today() - timedelta(days=n))
PAYLOADS = st.fixed_dictionaries(
    {},
    optional={
        **{f: TEXT for f in FIELDS},
        "birthday": st.one_of(DAYS, st.just(date(1899, 12, 31))),
        "owner_id": st.one_of(st.integers(-2, 5), st.just(2**63)),
        "interests": st.lists(TEXT, max_size=52),
        "unknown_field": TEXT,
    },
)


def _model_values(data: dict[str, Any]) -> dict[str, Any] | None:
    try:
        model = CustomerUpdate.model_validate(data)
    except ValidationError:
        return None
    return {k: getattr(model, k) for k in data}


@settings(max_examples=600, deadline=None)
@given(PAYLOADS)
def test_fast_check_agrees_with_the_schema(data: dict[str, Any]) -> None:
    fast = FAST.values(data)
    twice = FAST.values(data)  # answered from its memory of checked values the second time
    expected = _model_values(data)
    if fast is not None:
        assert fast == expected and twice == fast
    # when it does not answer, the importer asks the schema itself, so a miss is only slower


def test_fast_check_answers_for_an_ordinary_row() -> None:
    data = {"name": "山田 太郎", "name_kana": "ヤマダ タロウ", "postal_code": "1000001",
            "prefecture": "東京都", "birthday": date(1990, 1, 2), "gender": "male",
            "interests": ["旅行", "グルメ"]}  # fmt: skip
    assert FAST.values(data) == _model_values(data)
    assert FAST.values(data) is not None


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["person", "company"])},
        optional={
            "name": st.text(max_size=8),
            "emails": st.lists(st.text(max_size=6), max_size=2),
            "birthday": st.dates(),
            "owner_id": st.integers(1, 10**12),
            "custom": st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=4))),
            "interests": st.lists(st.text(max_size=4), max_size=3),
        },
    )
)
def test_created_audit_text_is_json_dumps(state: dict[str, Any]) -> None:
    changes = {k: [None, v.isoformat() if isinstance(v, date) else v] for k, v in sorted(state.items())}
    assert _created_json(state) == json.dumps(changes)
