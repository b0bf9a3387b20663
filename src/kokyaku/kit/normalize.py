"""Normalisation of identities and search text, so that equal things compare equal."""

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

_KATAKANA_START, _KATAKANA_END = 0x30A1, 0x30F6
_SPACES = re.compile(r"\s+")


class NormalizationError(ValueError):
    """A value that cannot be normalised; the message is a gettext msgid."""


def fold_width(text: str) -> str:
    """Full-width digits and ASCII to half-width, half-width katakana to full-width (NFKC)."""
    return unicodedata.normalize("NFKC", text)


def katakana_to_hiragana(text: str) -> str:
    return "".join(chr(ord(ch) - 0x60) if _KATAKANA_START <= ord(ch) <= _KATAKANA_END else ch for ch in text)


def search_key(text: str | None) -> str:
    """The form in which names and kana are indexed and queried: NFKC, lower-case, hiragana, no spaces."""
    if not text:
        return ""
    # NFKC last: lower-casing and dropping spaces can leave sequences that NFKC composes differently.
    return fold_width(_SPACES.sub("", katakana_to_hiragana(fold_width(text)).lower()))


def clean_text(text: str | None) -> str | None:
    """Trim and fold width; empty becomes None."""
    if text is None:
        return None
    text = fold_width(text).strip()
    return text or None


def normalize_email(value: str) -> str:
    """Trimmed, width-folded, lower-cased and syntax-checked email address."""
    value = fold_width(value).strip().lower()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise NormalizationError("Not a valid email address.") from exc
    return value


def normalize_phone(value: str, region: str = "JP") -> str:
    """E.164 form of a phone number; numbers without a country code are read as Japanese."""
    raw = fold_width(value).strip()
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise NormalizationError("Not a valid phone number.") from exc
    if not phonenumbers.is_valid_number(number):
        raise NormalizationError("Not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone_national(e164: str) -> str:
    """Show a stored E.164 number the way people write it locally (090-1234-5678)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 81
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, fmt)


def normalize_external_id(value: str) -> str:
    value = fold_width(value).strip()
    if not value:
        raise NormalizationError("Must not be empty.")
    return value


def normalize_postal_code(value: str) -> str:
    """Japanese postal code as 123-4567."""
    digits = re.sub(r"[^0-9]", "", fold_width(value))
    if len(digits) != 7:
        raise NormalizationError("A postal code has 7 digits, like 123-4567.")
    return f"{digits[:3]}-{digits[3:]}"


def ngrams(key: str) -> set[str]:
    """Unigrams and bigrams of a search key: one- and two-character queries hit an index, longer ones
    intersect two bigram lists."""
    grams = set(key)
    grams.update(key[i : i + 2] for i in range(len(key) - 1))
    return grams
