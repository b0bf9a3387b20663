"""The single entry point the feedback service calls: language, sentiment, key phrases and topics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .lang import Lang, detect_language
from .phrases import phrases_from_tokens
from .sentiment import Label, score_tokens
from .tokens import normalize, tokenize
from .topics import assign_topics, is_topic_word

_JA_PREDICATES = {"形容詞", "形状詞", "動詞"}


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the text analysis knows about one comment."""

    lang: Lang
    sentiment: Label
    score: float
    phrases: tuple[str, ...]
    topics: tuple[str, ...]


def analyze(text: str, lang: Lang | None = None) -> Analysis:
    """Analyse one comment: detect its language, score its sentiment, extract key phrases and topics."""
    text = normalize(text)
    lang = lang or detect_language(text)
    tokens = tokenize(text, lang)  # tokenise once; sentiment and phrases share the tokens
    sentiment = score_tokens(text, tokens, lang)
    phrases = phrases_from_tokens(tokens, lang)
    # Adjectives such as 美味しい or "expensive" name a topic without being part of a noun phrase.
    if lang == "ja":
        cues = [t.lemma for t in tokens if t.pos[0] in _JA_PREDICATES and is_topic_word(t.lemma)]
    else:
        cues = [t.surface for t in tokens if is_topic_word(t.surface)]
    topics = assign_topics([*phrases, *cues])
    return Analysis(lang, sentiment.label, sentiment.score, tuple(phrases), tuple(topics))


def analyze_many(texts: Iterable[str]) -> list[Analysis]:
    """Analyse a batch of comments (each in its own detected language)."""
    return [analyze(text) for text in texts]
