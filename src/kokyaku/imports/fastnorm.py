"""The identity normalisers of kit/normalize.py with a fast path for the common shapes, for bulk imports.

`normalize_email` and `normalize_phone` cost ~35 us each (email-validator and phonenumbers are pure Python),
which alone would cap an import near 14,000 rows/s. The fast paths below give exactly the same answer as the
kit functions and call them for everything they are not sure about (tests/imports/test_fastnorm.py compares
both on generated addresses and numbers):
- email: a lower-case ASCII dot-atom local part of at most 64 characters is always valid, so the address is
  valid exactly when its domain is; the domain's verdict comes from email-validator once and is cached.
- phone: a Japanese national number written as digits with optional hyphens or spaces is what phonenumbers
  parses as +81 and the digits after the leading 0. It is valid when its digits match the general pattern of
  Japan's metadata and the pattern of one number type (fixed line, mobile, toll free, ...), each with its
  possible lengths: the check phonenumbers' `is_valid_number` makes, minus its generic bookkeeping.
"""

import re
from functools import lru_cache

import phonenumbers

from kokyaku.kit.normalize import NormalizationError, normalize_email, normalize_phone

_LOCAL = re.compile(r"[a-z0-9_+\-]+(?:\.[a-z0-9_+\-]+)*")
_DOMAIN = re.compile(r"[a-z0-9\-]+(?:\.[a-z0-9\-]+)+")
_JP_NATIONAL = re.compile(r"0[1-9][0-9]*(?:[- ][0-9]+)*")


Desc = tuple[frozenset[int], re.Pattern[str]]


def _jp_descs() -> tuple[Desc, list[Desc]]:
    meta = phonenumbers.PhoneMetadata.metadata_for_region("JP")
    assert meta is not None

    def compiled(desc: object) -> Desc | None:
        pattern = getattr(desc, "national_number_pattern", None)
        if not pattern:
            return None
        return frozenset(getattr(desc, "possible_length", None) or ()), re.compile(pattern)

    general = compiled(meta.general_desc)
    assert general is not None
    # Any one type makes the number valid, so the common ones go first.
    names = ("mobile", "fixed_line", "toll_free", "voip", "premium_rate", "shared_cost", "personal_number",
             "pager", "uan", "voicemail")  # fmt: skip
    types = [c for c in (compiled(getattr(meta, n, None)) for n in names) if c is not None]
    return general, types


_GENERAL, _TYPES = _jp_descs()


def _matches(desc: Desc, nsn: str) -> bool:
    lengths, pattern = desc
    return (not lengths or len(nsn) in lengths) and pattern.fullmatch(nsn) is not None


def _valid_jp(nsn: str) -> bool:
    return _matches(_GENERAL, nsn) and any(_matches(d, nsn) for d in _TYPES)


@lru_cache(maxsize=65536)
def _domain_ok(domain: str) -> bool:
    try:
        normalize_email("a@" + domain)
    except NormalizationError:
        return False
    return True


def fast_email(value: str) -> str:
    """Same result as kit.normalize.normalize_email(value), faster for ordinary addresses."""
    if value.isascii():
        text = value.strip().lower()
        local, at, domain = text.partition("@")
        if (
            at
            and len(text) <= 254
            and len(local) <= 64
            and _LOCAL.fullmatch(local)
            and _DOMAIN.fullmatch(domain)
            and _domain_ok(domain)
        ):
            return text
    return normalize_email(value)


def fast_phone(value: str) -> str:
    """Same result as kit.normalize.normalize_phone(value) (region JP), faster for national numbers."""
    text = value.strip()
    if text.isascii() and 10 <= len(text) <= 16 and _JP_NATIONAL.fullmatch(text):
        digits = text.replace("-", "").replace(" ", "")
        # 010 is Japan's international call prefix: phonenumbers reads what follows as a country code.
        if len(digits) in (10, 11) and not digits.startswith("010") and _valid_jp(digits[1:]):
            return "+81" + digits[1:]
    return normalize_phone(value)
