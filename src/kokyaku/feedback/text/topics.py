"""A fixed taxonomy of customer-feedback topics and the mapping of key phrases onto it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from .lexicon import known_english_words, rows
from .tokens import lemmatize_en, normalize

# Stable keys (stored by the feedback service) with their labels in both languages, in display order.
TOPICS: dict[str, dict[str, str]] = {
    "price": {"ja": "価格", "en": "Price"},
    "quality": {"ja": "品質", "en": "Quality"},
    "delivery": {"ja": "配送", "en": "Delivery"},
    "staff": {"ja": "接客", "en": "Staff"},
    "support": {"ja": "サポート", "en": "Support"},
    "product": {"ja": "商品", "en": "Product"},
    "store": {"ja": "店舗", "en": "Store"},
    "website": {"ja": "サイト・アプリ", "en": "Website & app"},
    "food": {"ja": "味", "en": "Food & taste"},
    "cleanliness": {"ja": "清潔さ", "en": "Cleanliness"},
    "wait": {"ja": "待ち時間", "en": "Waiting time"},
}

_JA_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


@cache
def _keywords() -> tuple[dict[str, str], dict[tuple[str, ...], str]]:
    """Japanese keyword -> topic, and English lemma sequence -> topic, from data/topics.csv."""
    ja: dict[str, str] = {}
    en: dict[tuple[str, ...], str] = {}
    vocabulary = known_english_words()
    for topic, lang, keyword in rows("topics.csv"):
        if topic not in TOPICS:
            raise ValueError(f"topics.csv names an unknown topic: {topic}")
        if lang == "ja":
            ja[normalize(keyword)] = topic
        else:
            en[tuple(lemmatize_en(w, vocabulary) for w in keyword.split())] = topic
    return ja, en


def _ja_topics(phrase: str, keywords: dict[str, str]) -> list[str]:
    """Topics of a Japanese phrase: keyword occurrences not inside a longer one (店員 is staff, not store)."""
    longest = max(map(len, keywords))
    hits = [
        (s, e, keywords[phrase[s:e]])
        for s in range(len(phrase))
        for e in range(s + 1, min(len(phrase), s + longest) + 1)
        if phrase[s:e] in keywords
    ]
    return [t for s, e, t in hits if not any(s2 <= s and e <= e2 and e2 - s2 > e - s for s2, e2, _ in hits)]


def _en_topics(phrase: str, keywords: dict[tuple[str, ...], str]) -> list[str]:
    """Topics of an English phrase: keywords found as lemma sequences of its words."""
    vocabulary = known_english_words()
    lemmas = [lemmatize_en(w, vocabulary) for w in re.findall(r"[a-z][a-z'-]*", phrase.lower())]
    grams = (tuple(lemmas[i : i + n]) for n in (1, 2, 3) for i in range(len(lemmas) - n + 1))
    return [keywords[gram] for gram in grams if gram in keywords]


def assign_topics(phrases: Iterable[str]) -> list[str]:
    """Topic keys (see TOPICS) that the phrases mention, in taxonomy order."""
    ja, en = _keywords()
    found: set[str] = set()
    for phrase in phrases:
        phrase = normalize(phrase)
        if _JA_SCRIPT.search(phrase):
            found.update(_ja_topics(phrase, ja))
        else:
            found.update(_en_topics(phrase, en))
    return [key for key in TOPICS if key in found]


def is_topic_word(word: str) -> bool:
    """Whether a single word is itself a topic keyword (美味しい, expensive), to catch non-noun cues."""
    ja, en = _keywords()
    return word in ja or (word,) in en
