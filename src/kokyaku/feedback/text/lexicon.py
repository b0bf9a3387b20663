"""Loading of the hand-written data files: polarity terms, set phrases, modifiers, context, stopwords."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .lang import Lang
from .tokens import is_potential, lemmatize_en, normalize, tokenize_en, tokenize_ja


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Everything the analysers of one language look up, keyed by lemma."""

    lang: Lang
    terms: dict[tuple[str, ...], float]  # lemma sequence -> polarity
    max_len: int  # longest term in tokens
    starts: frozenset[str]  # first lemmas of multi-token terms, so most tokens need one lookup only
    phrases: tuple[tuple[re.Pattern[str], float], ...]  # set phrases on the normalised text
    modifiers: dict[str, tuple[str, float]]  # lemma -> (kind, value)
    context: dict[str, tuple[tuple[str, float], ...]]  # term lemma -> ((cue lemma, polarity), ...)
    stopwords: frozenset[str]


def rows(name: str) -> Iterator[list[str]]:
    """Yield the CSV rows of a data file, skipping comments and blank lines."""
    with (resources.files(__package__) / "data" / name).open(encoding="utf-8") as fh:
        lines = (line for line in fh if line.strip() and not line.startswith("#"))
        for row in csv.reader(lines):
            yield [cell.strip() for cell in row]


def _lines(name: str) -> list[str]:
    """Non-blank, non-comment lines of a data file."""
    text = (resources.files(__package__) / "data" / name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _words(name: str) -> frozenset[str]:
    """Read a one-word-per-line list."""
    return frozenset(_lines(name))


def _phrases(name: str) -> tuple[tuple[re.Pattern[str], float], ...]:
    """Read "score<TAB>regex" lines (regexes contain commas, so this file is not CSV)."""
    pairs = (line.split("\t", 1) for line in _lines(name))
    return tuple((re.compile(pattern), float(score)) for score, pattern in pairs)


@cache
def known_english_words() -> frozenset[str]:
    """Every single English word the data files mention; the lemmatiser prefers these as stems."""
    words = set(_words("stopwords_en.txt"))
    for name in ("lexicon_en.csv", "modifiers_en.csv", "context_en.csv"):
        words.update(w for row in rows(name) for cell in row[:2] for w in cell.split() if w.isalpha())
    words.update(w for row in rows("topics.csv") if row[1] == "en" for w in row[2].split())
    return frozenset(words)


def _key(term: str, lang: Lang, vocabulary: frozenset[str]) -> tuple[str, ...]:
    """Lemma sequence of a lexicon entry, produced by the same tokenizer the text goes through."""
    if lang == "ja":
        tokens = tokenize_ja(normalize(term))
        if len(tokens) == 1 and is_potential(tokens[0]):
            return (term,)  # 使える must not become 使う; the matcher finds it by dictionary form
        return tuple(t.lemma for t in tokens)
    words = term.lower().split()
    if len(words) == 1:
        return (words[0],)  # single English words are looked up by surface first, then by lemma
    return tuple(t.lemma for t in tokenize_en(term.lower(), vocabulary))


@cache
def lexicon(lang: Lang) -> Lexicon:
    """Load (once) the lexicon of a language."""
    vocabulary = known_english_words() if lang == "en" else frozenset()

    def one(word: str) -> str:
        key = _key(word, lang, vocabulary)
        return key[0] if len(key) == 1 else "".join(key)

    terms: dict[tuple[str, ...], float] = {}
    for term, score in rows(f"lexicon_{lang}.csv"):
        key = _key(term, lang, vocabulary)
        # Out of context Sudachi may split a word it keeps whole inside a sentence (十分 -> 10 + 分, "ten
        # minutes"); keep the entry as written too, and never a split key that would match numbers.
        if not any(part.isdigit() for part in key):
            terms[key] = float(score)
        if lang == "ja":
            terms.setdefault((term,), float(score))
    modifiers = {one(word): (kind, float(value)) for word, kind, value in rows(f"modifiers_{lang}.csv")}
    context: dict[str, list[tuple[str, float]]] = {}
    for term, cue, score in rows(f"context_{lang}.csv"):
        cue_key = one(cue) if lang == "ja" else lemmatize_en(cue, vocabulary)
        context.setdefault(one(term), []).append((cue_key, float(score)))
    return Lexicon(
        lang=lang,
        terms=terms,
        max_len=max(len(k) for k in terms),
        starts=frozenset(k[0] for k in terms if len(k) > 1),
        phrases=_phrases(f"phrases_{lang}.txt"),
        modifiers=modifiers,
        context={k: tuple(v) for k, v in context.items()},
        stopwords=_words(f"stopwords_{lang}.txt"),
    )
