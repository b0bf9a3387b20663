"""Tokenisation: SudachiPy for Japanese, a regex tokenizer and suffix-rule lemmatiser for English."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from .lang import Lang, detect_language


@dataclass(frozen=True, slots=True)
class Token:
    """One token: surface, lemma (Sudachi normalized form / English lemma), base form, POS, offsets."""

    surface: str
    lemma: str
    base: str
    pos: tuple[str, ...]
    begin: int
    end: int


def normalize(text: str) -> str:
    """NFKC-normalise (full-width ASCII, half-width kana) and unify apostrophes."""
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")


# --- Japanese -----------------------------------------------------------------------------------------

_dict_lock = threading.Lock()
_dictionary = None
_local = threading.local()


def _sudachi_tokenizer():  # noqa: ANN202 - sudachipy has no public stub for the Tokenizer type
    """Return this thread's Sudachi tokenizer; the dictionary is loaded once and shared."""
    tok = getattr(_local, "tokenizer", None)
    if tok is None:
        global _dictionary
        from sudachipy import Dictionary, SplitMode  # imported lazily: loading costs ~50 MB and 0.1 s

        with _dict_lock:
            if _dictionary is None:
                _dictionary = Dictionary(dict="small")
        # A Sudachi Tokenizer refuses concurrent use, so every thread gets its own over the shared dictionary.
        tok = _dictionary.tokenizer(mode=SplitMode.C, fields={"pos", "normalized_form", "dictionary_form"})
        _local.tokenizer = tok
    return tok


def tokenize_ja(text: str) -> list[Token]:
    """Tokenise already-normalised Japanese text with Sudachi (split mode C)."""
    out = []
    for m in _sudachi_tokenizer().tokenize(text):
        pos = tuple(p for p in m.part_of_speech()[:4] if p != "*")
        out.append(Token(m.surface(), m.normalized_form(), m.dictionary_form(), pos, m.begin(), m.end()))
    return out


_E_ROW = set("えけげせぜてでねべぺめれ")


def is_potential(t: Token) -> bool:
    """True for a Japanese potential verb (眠れる, 使える): Sudachi normalises it to the plain verb."""
    base = t.base
    return (
        t.pos[:1] == ("動詞",)
        and base != t.lemma
        and len(base) >= 2
        and base[-1] == "る"
        and base[-2] in _E_ROW
    )


# --- English ------------------------------------------------------------------------------------------

_EN_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[.,!?;:()]")
_CONTRACTIONS = {
    "won't": ("will", "not"),
    "can't": ("can", "not"),
    "cannot": ("can", "not"),
    "shan't": ("shall", "not"),
}
_CLITICS = {"'ll": "will", "'ve": "have", "'re": "are", "'m": "am", "'d": "would", "'s": "is"}

_IRREGULAR = {
    "was": "be",
    "were": "be",
    "is": "be",
    "are": "be",
    "am": "be",
    "been": "be",
    "being": "be",
    "did": "do",
    "does": "do",
    "done": "do",
    "had": "have",
    "has": "have",
    "went": "go",
    "gone": "go",
    "came": "come",
    "made": "make",
    "took": "take",
    "taken": "take",
    "got": "get",
    "gotten": "get",
    "broke": "break",
    "shrank": "shrink",
    "shrunk": "shrink",
    "stuck": "stick",
    "froze": "freeze",
    "spoilt": "spoil",
    "forgot": "forget",
    "forgotten": "forget",
    "stole": "steal",
    "stolen": "steal",
    "bent": "bend",
    "hung": "hang",
    "held": "hold",
    "mislaid": "mislay",
    "told": "tell",
    "gave": "give",
    "given": "give",
    "felt": "feel",
    "kept": "keep",
    "left": "leave",
    "bought": "buy",
    "brought": "bring",
    "found": "find",
    "paid": "pay",
    "sent": "send",
    "spent": "spend",
    "thought": "think",
    "tore": "tear",
    "wore": "wear",
    "worn": "wear",
    "fell": "fall",
    "fallen": "fall",
    "ran": "run",
    "saw": "see",
    "seen": "see",
    "said": "say",
    "ate": "eat",
    "eaten": "eat",
    "lost": "lose",
    "met": "meet",
    "sold": "sell",
    "stood": "stand",
    "understood": "understand",
    "children": "child",
    "people": "person",
    "men": "man",
    "women": "woman",
    "feet": "foot",
    "teeth": "tooth",
    "let": "let",
    "put": "put",
    "cut": "cut",
    "set": "set",
    "hit": "hit",
    "led": "lead",
    "fed": "feed",
    "ordered": "order",
    "answered": "answer",
    "delivered": "deliver",
    "offered": "offer",
    "covered": "cover",
    "remembered": "remember",
    "entered": "enter",
    "considered": "consider",
    "registered": "register",
}
# Stems that keep their own final -s / -ss rather than being plurals.
_KEEP_S = ("ss", "us", "is", "ous", "ics")
_VOWELS = set("aeiou")


def _cvc(stem: str) -> bool:
    """True for a consonant-vowel-consonant ending (arriv-, us-): such -ed/-ing stems usually lost an -e."""
    return (
        len(stem) >= 3
        and stem[-1] not in _VOWELS | {"w", "x", "y"}
        and stem[-2] in _VOWELS
        and stem[-3] not in _VOWELS
    )


def lemmatize_en(word: str, vocabulary: frozenset[str] = frozenset()) -> str:
    """Reduce an English word to a lemma with suffix rules; a known vocabulary settles ambiguous stems."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 3 or not word.isalpha():
        return word
    candidates: list[str] = []
    if (word.endswith("ies") and len(word) > 4) or word.endswith("ied"):
        candidates = [word[:-3] + "y"]
    elif word.endswith(("sses", "ches", "shes", "xes")):
        candidates = [word[:-2]]
    elif word.endswith("s") and not word.endswith(_KEEP_S):
        candidates = [word[:-1]]
    elif word.endswith("eed"):
        return word
    elif word.endswith("ed") or word.endswith("ing"):
        stem = word[:-2] if word.endswith("ed") else word[:-3]
        if len(stem) < 2:
            return word
        candidates = [stem, stem + "e"]
        if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "ls":
            candidates.insert(0, stem[:-1])  # stopped -> stop, but keep fill-ed -> fill
        elif _cvc(stem):
            candidates.reverse()  # arrived -> arrive, using -> use
    else:
        return word
    for cand in candidates:
        if cand in vocabulary:
            return cand
    return candidates[0]


def tokenize_en(text: str, vocabulary: frozenset[str] = frozenset()) -> list[Token]:
    """Tokenise already-normalised English text; contractions become "not" and full auxiliaries."""
    out: list[Token] = []
    lower = text.lower()
    for m in _EN_TOKEN.finditer(lower):
        word, begin, end = m.group(), m.start(), m.end()
        parts: Iterable[str]
        if not word[0].isalnum():
            out.append(Token(word, word, word, ("punct",), begin, end))
            continue
        if word in _CONTRACTIONS:
            parts = _CONTRACTIONS[word]
        elif word.endswith("n't"):
            parts = (word[:-3], "not")
        elif "'" in word and word[word.index("'") :] in _CLITICS:
            i = word.index("'")
            parts = (word[:i], _CLITICS[word[i:]])
        else:
            parts = (word,)
        for part in parts:
            kind = "num" if part.isdigit() else "word"
            out.append(Token(part, lemmatize_en(part, vocabulary), part, (kind,), begin, end))
    return out


@cache
def _en_vocabulary() -> frozenset[str]:
    """Single words the lexicons and topic lists know, used to pick between lemma candidates."""
    from .lexicon import known_english_words  # late import: the lexicon module tokenises with this one

    return known_english_words()


def tokenize(text: str, lang: Lang | None = None) -> list[Token]:
    """Tokenise text in its language (detected when not given)."""
    text = normalize(text)
    lang = lang or detect_language(text)
    return tokenize_ja(text) if lang == "ja" else tokenize_en(text, _en_vocabulary())
