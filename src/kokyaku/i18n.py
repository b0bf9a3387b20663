"""Japanese and English: gettext catalogs read from the .po files, the locale chosen per request."""

from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALES = ("ja", "en")
LOCALE_DIR = Path(__file__).parent / "locale"


@lru_cache
def catalog(locale: str) -> dict[str, str]:
    """msgid -> translation from every .po file of the locale (one per domain); English msgids are the
    source text, so `en` needs no entries."""
    messages: dict[str, str] = {}
    folder = LOCALE_DIR / locale / "LC_MESSAGES"
    for path in sorted([*folder.glob("*.po"), *folder.glob("*.po.part")]):
        with path.open("rb") as fh:
            po = read_po(fh, locale=locale)
        messages.update(
            {m.id: str(m.string) for m in po if isinstance(m.id, str) and m.id and m.string and not m.fuzzy}
        )
    return messages


def gettext(locale: str, message: str, **params: object) -> str:
    text = catalog(locale).get(message, message)
    return text.format(**params) if params else text


def negotiate(*, chosen: str | None, accept_language: str | None, default: str = "ja") -> str:
    """The user's choice, else the first of the browser's languages we have, else the default."""
    if chosen in LOCALES:
        return chosen
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        lang = tag.split("-")[0]
        if lang in LOCALES:
            return lang
    return default
