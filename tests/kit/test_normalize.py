"""Identities and search text are normalised so that equal things compare equal."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kokyaku.kit.normalize import (
    NormalizationError,
    fold_width,
    katakana_to_hiragana,
    ngrams,
    normalize_email,
    normalize_phone,
    normalize_postal_code,
    search_key,
)


def test_email_is_trimmed_lowercased_and_width_folded() -> None:
    assert normalize_email("  Taro.Yamada@Example.JP ") == "taro.yamada@example.jp"
    assert normalize_email("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ") == "taro@example.jp"


@pytest.mark.parametrize(
    "bad", ["", "taro", "taro@", "@example.jp", "taro@@example.jp", "taro yamada@example.jp"]
)
def test_malformed_email_is_refused(bad: str) -> None:
    with pytest.raises(NormalizationError):
        normalize_email(bad)


@pytest.mark.parametrize(
    "raw",
    ["090-1234-5678", "09012345678", "０９０－１２３４－５６７８", "+81 90 1234 5678", "(090) 1234-5678"],
)
def test_japanese_mobile_numbers_meet_in_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+819012345678"


def test_landline_and_foreign_numbers() -> None:
    assert normalize_phone("03-1234-5678") == "+81312345678"
    assert normalize_phone("+1 415 555 2671") == "+14155552671"


@pytest.mark.parametrize("bad", ["12", "090-1234-567", "abc", "+99 123"])
def test_invalid_phone_is_refused(bad: str) -> None:
    with pytest.raises(NormalizationError):
        normalize_phone(bad)


def test_kana_folding_lets_katakana_and_hiragana_meet() -> None:
    assert katakana_to_hiragana("ヤマダ タロウ") == "やまだ たろう"
    assert search_key("ヤマダ タロウ") == search_key("やまだたろう") == "やまだたろう"
    # half-width katakana is folded to full width before it becomes hiragana
    assert search_key("ﾔﾏﾀﾞ") == "やまだ"


def test_fold_width_turns_full_width_ascii_half() -> None:
    assert fold_width("ＡＢＣ１２３") == "ABC123"


def test_postal_code() -> None:
    assert normalize_postal_code("１００００01") == "100-0001"
    with pytest.raises(NormalizationError):
        normalize_postal_code("100-001")


@given(st.text(max_size=40))
def test_search_key_is_idempotent(text: str) -> None:
    assert search_key(search_key(text)) == search_key(text)


@given(st.text(alphabet=st.characters(min_codepoint=0x30A1, max_codepoint=0x30F6), min_size=1, max_size=20))
def test_every_katakana_string_meets_its_hiragana(text: str) -> None:
    assert search_key(text) == search_key(katakana_to_hiragana(text))


@given(st.text(min_size=1, max_size=30), st.data())
def test_every_short_substring_is_a_gram(text: str, data: st.DataObject) -> None:
    key = search_key(text)
    if not key:
        return
    start = data.draw(st.integers(0, len(key) - 1))
    piece = key[start : start + data.draw(st.integers(1, 2))]
    assert piece in ngrams(key)
