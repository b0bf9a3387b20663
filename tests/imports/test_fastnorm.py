"""The import's fast identity normalisers answer exactly as kit/normalize.py does (the API's rules)."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kokyaku.imports.fastnorm import fast_email, fast_phone
from kokyaku.kit.normalize import NormalizationError, normalize_email, normalize_phone


def _outcome(fn, value: str) -> object:  # type: ignore[no-untyped-def]
    try:
        return fn(value)
    except NormalizationError as exc:
        return ("error", str(exc))


PREFIXES = [
    "090",
    "080",
    "070",
    "060",
    "03",
    "06",
    "011",
    "0120",
    "0800",
    "050",
    "0570",
    "0990",
    "010",
    "020",
    "0180",
    "04",
    "092",
    "0466",
    "01267",
    "001",
    "0",
]


def test_phone_numbers_as_japanese_files_write_them() -> None:
    rnd = random.Random(7)
    for _ in range(10_000):
        digits = "".join(rnd.choice("0123456789") for _ in range(rnd.choice([6, 7, 8, 9])))
        prefix = rnd.choice(PREFIXES)
        sep = rnd.choice(["", "-", " "])
        value = rnd.choice(
            [prefix + digits, f"{prefix}{sep}{digits[:4]}{sep}{digits[4:]}", f" {prefix}-{digits} "]
        )
        assert _outcome(fast_phone, value) == _outcome(normalize_phone, value), value


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789-+ ()０１２３", min_size=0, max_size=18))
def test_phone_any_text(value: str) -> None:
    assert _outcome(fast_phone, value) == _outcome(normalize_phone, value)


LOCALS = [
    "taro",
    "taro.yamada",
    "a+b",
    "_x",
    "x-",
    "a..b",
    ".a",
    "a.",
    "TARO",
    "a" * 64,
    "a" * 65,
    "tarō",
    "a b",
    'a"b',
    "a!b",
    "山田",
]
DOMAINS = [
    "example.jp",
    "gmail.com",
    "docomo.ne.jp",
    "localhost",
    "test",
    "example.test",
    "a.b",
    "x-.com",
    "-x.com",
    "xn--p8j.jp",
    "a..b",
    "exa_mple.com",
    "123.456",
    "co.jp",
    "e.invalid",
    "ex.onion",
    "EXAMPLE.JP",
    "example.jp.",
    "例え.jp",
    "a" * 64 + ".com",
    ("a" * 60 + ".") * 4 + "jp",
]


def test_emails_on_the_edges() -> None:
    for local in LOCALS:
        for domain in DOMAINS:
            value = f"{local}@{domain}"
            assert _outcome(fast_email, value) == _outcome(normalize_email, value), value
    for value in ["", "@", "no-at-sign", " Taro@Example.JP ", "a@b@c.jp", "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ"]:
        assert _outcome(fast_email, value) == _outcome(normalize_email, value), value


@settings(max_examples=400, deadline=None)
@given(st.from_regex(r"[a-zA-Z0-9._+\-]{1,70}@[a-z0-9.\-]{1,30}", fullmatch=True))
def test_email_any_ascii_shape(value: str) -> None:
    assert _outcome(fast_email, value) == _outcome(normalize_email, value)
