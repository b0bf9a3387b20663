"""Every message a user can read has a Japanese translation, and the catalogs keep placeholders intact."""

import re
import sys
from pathlib import Path

from kokyaku.i18n import catalog, gettext, negotiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from msgids import msgids, source_files  # noqa: E402

# Raised only on programming or configuration mistakes, in logs and tracebacks: never shown to a user.
FOR_DEVELOPERS = {
    "an order history cannot give features after its own end",
    "KOKYAKU_SECRET_KEY must be set to a random value in production",
    "every_seconds must be at least 1",
    "merge_many needs each customer merged at most once and no survivor merged",
    "max_attempts must be at least 1",
    "months must be >= 0 and monthly_discount > -1",
    "naive datetime given; Kokyaku stores only timezone-aware datetimes",
    "run_at must be timezone-aware",
}


def test_every_msgid_in_the_code_is_translated_to_japanese() -> None:
    ja = catalog("ja")
    missing = sorted(m for m in msgids(source_files()) - FOR_DEVELOPERS if m not in ja)
    assert missing == []


def test_translations_keep_their_placeholders() -> None:
    for msgid, text in catalog("ja").items():
        assert set(re.findall(r"\{\w+\}", msgid)) == set(re.findall(r"\{\w+\}", text)), msgid


def test_negotiation_prefers_the_choice_then_the_browser() -> None:
    assert negotiate(chosen="en", accept_language="ja") == "en"
    assert negotiate(chosen=None, accept_language="fr-FR,en;q=0.8,ja;q=0.5") == "en"
    assert negotiate(chosen=None, accept_language="de") == "ja"
    assert gettext("ja", "Customer {id} does not exist.", id=5) == "顧客 5 は存在しません。"
    assert gettext("en", "Customer {id} does not exist.", id=5) == "Customer 5 does not exist."
