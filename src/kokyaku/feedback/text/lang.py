"""Language detection for feedback text: Japanese or English."""

import re
from typing import Literal

Lang = Literal["ja", "en"]

_JA_CHARS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_LATIN = re.compile(r"[A-Za-z\uff21-\uff3a\uff41-\uff5a]")


def detect_language(text: str, default: Lang = "ja") -> Lang:
    """Return "ja" when Japanese script dominates the text, "en" when Latin letters do."""
    ja = len(_JA_CHARS.findall(text))
    latin = len(_LATIN.findall(text))
    if ja == 0 and latin == 0:
        return default
    # One Japanese character carries about as much as a short English word, so weigh it 3:1; a Japanese
    # comment naming "iPhone" stays Japanese, an English one quoting ラーメン stays English.
    return "ja" if ja * 3 >= latin else "en"
