"""Key phrases: Japanese noun compounds from Sudachi POS, English noun-ish chunks between stopwords."""

from __future__ import annotations

from .lang import Lang, detect_language
from .lexicon import Lexicon, lexicon
from .tokens import Token, normalize, tokenize
from .topics import is_topic_word

_HONORIFICS = {"さん", "様", "さま", "ちゃん", "君", "くん", "殿", "たち", "達"}
_MAX_EN_WORDS = 3
_EN_SPLITTING_MODIFIERS = {"intensifier", "downtoner", "negator", "excess"}


def _ja_is_noun(t: Token) -> bool:
    """A noun that can be part of a compound: not a numeral, pronoun or counter."""
    return t.pos[0] == "名詞" and t.pos[1:2] != ("数詞",)


def _ja_phrases(tokens: list[Token], lex: Lexicon) -> list[str]:
    """Runs of consecutive nouns (with a leading prefix and non-honorific suffixes) joined into compounds."""
    runs: list[list[Token]] = []
    run: list[Token] = []
    for k, t in enumerate(tokens):
        after_number = k > 0 and tokens[k - 1].pos[1:2] == ("数詞",)
        noun = _ja_is_noun(t) and not (after_number and "助数詞可能" in t.pos)
        prefix = t.pos[0] == "接頭辞" and not run and k + 1 < len(tokens) and _ja_is_noun(tokens[k + 1])
        suffix = t.pos[:2] == ("接尾辞", "名詞的") and run and t.surface not in _HONORIFICS
        if noun or prefix or suffix:
            run.append(t)
        else:
            if run:
                runs.append(run)
            run = []
    if run:
        runs.append(run)
    phrases = []
    for run in runs:
        # Formal and time nouns (こと, 今回, 方) frame a compound but are not part of its subject.
        while run and run[0].lemma in lex.stopwords | {"御"} and run[0].surface not in {"お", "ご"}:
            run = run[1:]
        while run and (run[-1].lemma in lex.stopwords or run[-1].pos[0] == "接頭辞"):
            run = run[:-1]
        if not run or (len(run) == 1 and run[0].pos[0] == "接頭辞"):
            continue
        phrase = "".join(t.surface for t in run)
        # Sentiment nouns (満足, ストレス) are not subjects, unless the taxonomy names them (不具合, 破損).
        polar = lex.terms.get(tuple(t.lemma for t in run), 0.0) or lex.terms.get((phrase,), 0.0)
        if polar and not is_topic_word(phrase):
            continue
        if len(phrase) >= 2 or "一般" in run[0].pos:
            phrases.append(phrase)
    return phrases


def _en_phrases(tokens: list[Token], lex: Lexicon) -> list[str]:
    """Chunks of words left after splitting at stopwords, punctuation, modifiers and sentiment words."""
    chunks: list[list[str]] = [[]]
    for t in tokens:
        w = t.surface
        breaks = (
            t.pos[0] != "word"
            or w in lex.stopwords
            or t.lemma in lex.stopwords
            or lex.modifiers.get(w, ("",))[0] in _EN_SPLITTING_MODIFIERS
            or lex.terms.get((w,), 0.0) != 0.0
            or lex.terms.get((t.lemma,), 0.0) != 0.0
            or (w.endswith("ly") and len(w) > 5 and not is_topic_word(w))  # adverbs, but not "reply"
            or (w.endswith("ed") and w != t.lemma)  # past participles are predicates, not subjects
            or len(w) < 2
        )
        if breaks:
            if chunks[-1]:
                chunks.append([])
        else:
            chunks[-1].append(w)
    return [" ".join(chunk[-_MAX_EN_WORDS:]) for chunk in chunks if chunk]


def phrases_from_tokens(tokens: list[Token], lang: Lang) -> list[str]:
    """Key phrases from already tokenised text, unique, in order of first appearance."""
    lex = lexicon(lang)
    found = _ja_phrases(tokens, lex) if lang == "ja" else _en_phrases(tokens, lex)
    return list(dict.fromkeys(found))


def extract_key_phrases(text: str, lang: Lang | None = None) -> list[str]:
    """Key phrases (noun compounds / noun chunks) of a comment, in order of first appearance."""
    text = normalize(text)
    lang = lang or detect_language(text)
    return phrases_from_tokens(tokenize(text, lang), lang)
