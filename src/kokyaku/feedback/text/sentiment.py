"""Lexicon-based sentiment with negation, intensifiers, contrast and set phrases, for Japanese and English."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .lang import Lang, detect_language
from .lexicon import Lexicon, lexicon
from .tokens import Token, is_potential, normalize, tokenize

Label = Literal["positive", "neutral", "negative"]

NEUTRAL_BAND = 0.15  # |score| below this is neutral
NEGATION = -0.8  # a negated term keeps most of its strength with the sign flipped ("not good" < "bad")
CONTRAST_BEFORE, CONTRAST_AFTER = 0.5, 1.5  # "A but B": B is what the customer means
_SQUASH = 1.0  # score = total / sqrt(total^2 + _SQUASH): monotone, bounded in (-1, 1)
QUESTION = 0.2  # a question asks rather than judges ("Is the new app good?"): its words count less
_QUESTION_MARKS = {"?", "？"}
_COMPLAINING_QUESTIONS = {"why", "なぜ", "何故", "どうして", "なんで"}  # "Why is it so slow?" still complains

# Kinds of item the scorer works on. Barriers end the scope of negation and modifiers.
TERM, NEG, WISH, MOD, EXCESS = "term", "neg", "wish", "mod", "excess"
ABSENCE, INABILITY, ONLY, WORD = "absence", "inab", "only", "word"
BOUND, END, CONTRAST, CONCESSIVE = "bound", "end", "contrast", "concessive"
_BARRIERS = {BOUND, END, CONTRAST, CONCESSIVE}


@dataclass(frozen=True, slots=True)
class Sentiment:
    """Polarity of a text: a label and a score in [-1, 1]."""

    label: Label
    score: float


@dataclass(slots=True)
class _Item:
    """A token or matched multi-token term, with its role for scoring."""

    kind: str
    value: float = 0.0
    lemma: str = ""
    locked: bool = False  # set phrases already include their negation and intensity
    skip: bool = False  # Japanese negation looks through it to the predicate before (particles, auxiliaries)


# --- token roles -----------------------------------------------------------------------------------------

_JA_NEGATOR_AUX = {"ない", "ぬ", "ず", "ん"}
_JA_CONTRAST_PARTICLES = {"けど", "けれど", "けれども", "のに", "ものの", "くせに"}
_JA_CONTRAST_CONJ = {
    "しかし",
    "でも",
    "だが",
    "ですが",
    "けど",
    "けれど",
    "けれども",
    "ところが",
    "ただ",
    "だけど",
}
_JA_PREDICATE_POS = {"助動詞", "動詞", "形容詞"}
_JA_FUNCTION_POS = {"助詞", "助動詞", "接尾辞", "接頭辞", "副詞", "連体詞"}
_JA_INABILITY = {"出来る", "れる", "られる"}
# 〜てもらえない / 〜てくれない: a favour the customer did not get.
_JA_BENEFACTIVE = {"貰う", "もらう", "呉れる", "くれる", "頂く", "いただく", "下さる", "くださる"}
# 〜とは言えない, 〜とは思えない: the negation belongs to the quoted evaluation.
_JA_TRANSPARENT = {"言う", "思う", "感じる"}
_JA_HARD_TO = {"づらい", "にくい"}

_EN_ENDS = {".", "!", "?", ";"}
_EN_BOUNDS = {",", ":", "(", ")", "and", "or", "because", "which", "who", "when", "if", "since", "then"}
_EN_CONTRAST = {"but", "however"}
_EN_CONCESSIVE = {"although", "though", "whereas"}


def _ja_role(tokens: list[Token], i: int, lex: Lexicon) -> tuple[str, float, int]:
    """Role of Japanese token i: (kind, value, number of tokens it covers)."""
    t = tokens[i]
    prev = tokens[i - 1] if i else None
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    p0 = t.pos[0]
    p1 = t.pos[1] if len(t.pos) > 1 else ""
    if p1 == "句点" or t.surface in {"。", "!", "?", "．"}:
        return END, 0.0, 1
    if p0 in {"補助記号", "空白"}:
        return BOUND, 0.0, 1
    if (p0 == "助動詞" and t.base in _JA_NEGATOR_AUX) or (p0 == "形容詞" and t.lemma == "無い"):
        return NEG, 0.0, 1
    if t.lemma in {"なし", "無し"}:
        return NEG, 0.0, 1  # 問題なし
    if t.lemma == "欲しい" and prev is not None and prev.surface in {"て", "で"}:
        return WISH, -0.4, 1  # 〜してほしかった: a wish that was not met
    if p1 == "接続助詞" and t.base in _JA_CONTRAST_PARTICLES:
        return CONTRAST, 0.0, 1
    if t.surface == "が" and (p1 == "接続助詞" or (prev is not None and prev.pos[0] in _JA_PREDICATE_POS)):
        return CONTRAST, 0.0, 1  # the small dictionary tags some conjunctive が as a case particle
    if p0 == "接続詞" and t.base in _JA_CONTRAST_CONJ:
        return CONTRAST, 0.0, 1
    if nxt is not None and nxt.surface == "に":
        if t.lemma == "割":
            return CONTRAST, 0.0, 2  # 値段の割に: what follows is the verdict
        if t.surface == "の" and p1 == "準体助詞" and prev is not None and prev.base in {"た", "だ"}:
            return CONTRAST, 0.0, 2  # 予約していたのに
    sentence_start = prev is None or prev.pos[0] == "補助記号"
    if t.surface == "で" and nxt is not None and nxt.surface == "も" and sentence_start:
        return CONTRAST, 0.0, 2  # sentence-initial でも, split by the small dictionary
    if p1 == "接続助詞" and t.base not in {"て", "で"}:
        return BOUND, 0.0, 1
    if t.surface == "しか" and p1 == "副助詞":
        return ONLY, 0.0, 1  # 〜しかない means "only", not a negation
    if t.base == "すぎる" or t.lemma == "過ぎる":
        return EXCESS, 1.5, 1
    if p0 == "接尾辞" and t.base in _JA_HARD_TO:
        return TERM, -0.5, 1  # 〜づらい / 〜にくい: hard to do (声をかけづらい, 組み立てにくい)
    mod = lex.modifiers.get(t.lemma) or lex.modifiers.get(t.base)
    if mod is not None:
        kind, value = mod
        return {"intensifier": MOD, "downtoner": MOD, "absence": ABSENCE}[kind], value, 1
    if t.lemma in _JA_INABILITY or is_potential(t):
        return INABILITY, -0.3, 1
    if t.lemma in _JA_BENEFACTIVE and prev is not None and prev.surface in {"て", "で"}:
        return INABILITY, -0.4, 1
    return WORD, 0.0, 1


def _ja_skip(t: Token, kind: str, lex: Lexicon) -> bool:
    """Whether Japanese negation looks through this token to an earlier predicate."""
    if kind == MOD or t.lemma in _JA_TRANSPARENT:
        return True
    if kind == ABSENCE:
        return False
    if kind == INABILITY:
        return not is_potential(t)  # 眠れ(ない) is itself the negated predicate; られ/出来 are auxiliaries
    return (
        t.pos[0] in _JA_FUNCTION_POS
        or (len(t.pos) > 1 and t.pos[1] == "非自立可能")
        or t.lemma in lex.stopwords
    )


def _en_role(tokens: list[Token], i: int, lex: Lexicon) -> tuple[str, float, int]:
    """Role of English token i: (kind, value, number of tokens it covers)."""
    t = tokens[i]
    w = t.surface
    if w in _EN_ENDS:
        return END, 0.0, 1
    if w in _EN_CONTRAST or (w == "still" and i and tokens[i - 1].surface == "and"):
        return CONTRAST, 0.0, 1  # "… and still …" sets what follows against what came before
    if w in _EN_CONCESSIVE:
        return CONCESSIVE, 0.0, 1
    if w in _EN_BOUNDS:
        return BOUND, 0.0, 1
    if w == "not" and i + 1 < len(tokens) and tokens[i + 1].surface == "only":
        return WORD, 0.0, 2  # "not only A but also B" negates nothing
    mod = lex.modifiers.get(w) or lex.modifiers.get(t.lemma)
    if mod is not None:
        kind, value = mod
        if w == "so" and not _en_term_follows(tokens, i + 1, lex):
            return BOUND, 0.0, 1  # "so" joining clauses, not "so good"
        role = {
            "intensifier": MOD,
            "downtoner": MOD,
            "negator": NEG,
            "absence": ABSENCE,
            "inability": INABILITY,
            "excess": EXCESS,
        }[kind]
        return role, value, 1
    return WORD, 0.0, 1


def _en_term_follows(tokens: list[Token], i: int, lex: Lexicon) -> bool:
    """Whether a lexicon term starts at i or i + 1 (after one more modifier)."""
    for j in (i, i + 1):
        if j < len(tokens) and ((tokens[j].surface,) in lex.terms or (tokens[j].lemma,) in lex.terms):
            return True
        if j < len(tokens) and tokens[j].surface not in lex.modifiers:
            return False
    return False


# --- item construction ------------------------------------------------------------------------------------


def _phrase_spans(text: str, lex: Lexicon) -> list[tuple[int, int, float]]:
    """Non-overlapping set-phrase matches (earlier patterns win)."""
    spans: list[tuple[int, int, float]] = []
    for pattern, score in lex.phrases:
        for m in pattern.finditer(text):
            if m.end() > m.start() and all(m.end() <= s or m.start() >= e for s, e, _ in spans):
                spans.append((m.start(), m.end(), score))
    return spans


def _items(text: str, tokens: list[Token], lang: Lang, lex: Lexicon) -> list[_Item]:
    """Turn tokens into scoring items: set phrases and lexicon terms first, then grammatical roles."""
    phrase_at: dict[int, float] = {}
    covered: set[int] = set()
    for start, end, score in _phrase_spans(text.lower() if lang == "en" else text, lex):
        inside = [k for k, t in enumerate(tokens) if t.begin < end and t.end > start]
        if inside:
            phrase_at[inside[0]] = score
            covered.update(inside)
    role = _ja_role if lang == "ja" else _en_role
    items: list[_Item] = []
    i = 0
    while i < len(tokens):
        if i in covered:
            if i in phrase_at:
                items.append(_Item(TERM, phrase_at[i], "", locked=True))
            i += 1
            continue
        hard_to = lang == "ja" and tokens[i].pos[0] == "接尾辞" and tokens[i].base in _JA_HARD_TO
        size, value = (0, 0.0) if hard_to else _match_term(tokens, i, lex, covered)  # not 辛い, "spicy"
        if size:
            items.append(_Item(TERM, value, tokens[i + size - 1].lemma))
            i += size
            continue
        kind, value, size = role(tokens, i, lex)
        t = tokens[i]
        items.append(_Item(kind, value, t.lemma, skip=lang == "ja" and _ja_skip(t, kind, lex)))
        i += size
    return items


def _match_term(tokens: list[Token], i: int, lex: Lexicon, covered: set[int]) -> tuple[int, float]:
    """Longest lexicon term starting at token i: (size, polarity), or (0, 0.0)."""
    longest = min(lex.max_len, len(tokens) - i) if tokens[i].lemma in lex.starts else 1
    for size in range(longest, 0, -1):
        if any(k in covered for k in range(i, i + size)):
            continue
        window = tokens[i : i + size]
        key = tuple(t.lemma for t in window)
        if key in lex.terms:
            return size, lex.terms[key]
        if size == 1:
            for alt in (window[0].surface, window[0].base):
                if (alt,) in lex.terms:
                    return 1, lex.terms[(alt,)]
    return 0, 0.0


# --- scoring ----------------------------------------------------------------------------------------------


def _clause_of(items: list[_Item], i: int) -> range:
    """Indices of the clause (between barriers) that holds item i."""
    lo = i
    while lo > 0 and items[lo - 1].kind not in _BARRIERS:
        lo -= 1
    hi = i
    while hi + 1 < len(items) and items[hi + 1].kind not in _BARRIERS:
        hi += 1
    return range(lo, hi + 1)


def _apply_context(items: list[_Item], lex: Lexicon) -> None:
    """Give context-dependent terms (高い, high) the polarity of the noun they describe."""
    for i, it in enumerate(items):
        cues = lex.context.get(it.lemma) if it.kind == TERM and not it.locked else None
        if cues:
            lemmas = {items[j].lemma for j in _clause_of(items, i)}
            for cue, score in cues:
                if cue in lemmas:
                    it.value = score
                    break


def _apply_modifiers(items: list[_Item], lang: Lang) -> None:
    """Intensifiers and downtoners scale the next term; "too"/すぎる push a term towards negative."""
    for i, it in enumerate(items):
        if it.kind == MOD or (it.kind == EXCESS and lang == "en"):
            j = i + 1
            # Japanese puts particles between (非常に満足); English chains modifiers (not very good).
            while j < len(items) and items[j].kind in {MOD, NEG, EXCESS, WORD} and j - i <= 3:
                if items[j].kind == WORD and (lang == "en" or not items[j].skip):
                    break
                j += 1
            target = items[j] if j < len(items) and items[j].kind == TERM and not items[j].locked else None
            if it.kind == MOD:
                if target is not None:
                    target.value *= it.value
            else:
                _excess(it, target, i + 1 < len(items) and items[i + 1].kind == WORD)
        elif it.kind == EXCESS:  # Japanese 〜すぎる follows what it qualifies
            back = [j for j in range(max(0, i - 2), i) if items[j].kind == TERM and not items[j].locked]
            _excess(it, items[back[-1]] if back else None, True)


def _excess(it: _Item, target: _Item | None, before_word: bool) -> None:
    """Apply "too"/すぎる: negatives get stronger, neutral words turn negative."""
    if target is None:
        it.kind, it.value = (TERM, -0.3) if before_word else (WORD, 0.0)
    elif target.value < 0:
        target.value *= it.value
    elif target.value == 0:
        target.value = -0.4


def _negate_ja(items: list[_Item]) -> None:
    """A Japanese negator negates the predicate right before it (美味しくない, 問題ありません, 届かず)."""
    for i, it in enumerate(items):
        if it.kind == WISH:
            _unmet_wish(items, i)
        if it.kind != NEG:
            continue
        unmet = None  # an auxiliary られる/出来る/てもらう passed on the way: "could not", "was not given"
        for j in range(i - 1, max(-1, i - 9), -1):
            prev = items[j]
            if prev.kind in _BARRIERS or prev.kind in {NEG, ONLY}:
                break  # clause edge, an earlier negator, or しか (〜しかない means "only")
            if prev.kind == TERM:
                if not prev.locked:
                    prev.value *= NEGATION
                break
            if prev.kind == INABILITY and unmet is None:
                unmet = j
            if prev.skip:
                continue
            # The first content word that is not a term is the negated predicate.
            absence = j if prev.kind == ABSENCE else None
            _absence_event(it, items, absence, j if prev.kind == INABILITY else unmet)
            break


def _unmet_wish(items: list[_Item], i: int) -> None:
    """〜てほしかった wishes for what did not happen: flip every term of the clause, or count a complaint."""
    terms = [j for j in _clause_of(items, i) if j < i and items[j].kind == TERM and not items[j].locked]
    for j in terms:
        items[j].value *= NEGATION
    items[i].kind = WORD if terms else TERM


def _negate_en(items: list[_Item]) -> None:
    """An English negator flips every term up to the end of its clause, at most five words on; "wish"
    flips the rest of its clause ("I wish the staff were friendlier" is a complaint)."""
    for i, it in enumerate(items):
        if it.kind == WORD and it.lemma == "wish":
            for j in range(i + 1, len(items)):
                if items[j].kind in _BARRIERS:
                    break
                if items[j].kind == TERM and not items[j].locked:
                    items[j].value *= NEGATION
            continue
        if it.kind != NEG:
            continue
        scope = []
        for j in range(i + 1, min(i + 6, len(items))):
            if items[j].kind in _BARRIERS:
                break
            scope.append(j)
        terms = [j for j in scope if items[j].kind == TERM]
        for j in terms:
            if not items[j].locked:
                items[j].value *= NEGATION
        if not terms:
            absence = next((j for j in scope if items[j].kind == ABSENCE), None)
            before = i > 0 and items[i - 1].kind == INABILITY  # could not / can not
            inability = next((j for j in scope if items[j].kind == INABILITY), i - 1 if before else None)
            _absence_event(it, items, absence, inability)


def _absence_event(neg: _Item, items: list[_Item], absence: int | None, inability: int | None) -> None:
    """A negated expectation (no reply) or inability (could not sleep) is itself a complaint."""
    if absence is not None:
        neg.kind, neg.value = TERM, items[absence].value
    elif inability is not None:
        neg.kind, neg.value = TERM, items[inability].value


def _weighted_total(items: list[_Item]) -> float:
    """Sum term values, weighting clauses around contrastive and concessive conjunctions."""
    sentences: list[list[_Item]] = [[]]
    for it in items:
        sentences[-1].append(it)
        if it.kind == END:
            sentences.append([])
    total, previous = 0.0, 0.0
    for sent in sentences:
        weights = [1.0] * len(sent)
        words = [k for k, it in enumerate(sent) if it.kind not in _BARRIERS]
        first_word = words[0] if words else len(sent)
        initial_contrast = any(it.kind == CONTRAST for it in sent[:first_word])
        markers = [k for k, it in enumerate(sent) if it.kind == CONTRAST and k > first_word]
        if markers:
            m = markers[-1]
            weights = [CONTRAST_BEFORE if k < m else CONTRAST_AFTER for k in range(len(sent))]
        for k, it in enumerate(sent):
            if it.kind != CONCESSIVE:
                continue
            if k <= first_word:  # "Although A, B": A until the comma is the lesser part
                comma = next((c for c in range(k + 1, len(sent)) if sent[c].kind == BOUND), len(sent))
                weights = [CONTRAST_BEFORE if c < comma else CONTRAST_AFTER for c in range(len(sent))]
            else:  # "B even though A"
                weights = [w if c < k else w * CONTRAST_BEFORE for c, w in enumerate(weights)]
        score = sum(w * it.value for w, it in zip(weights, sent, strict=True) if it.kind == TERM)
        asked = sent and sent[-1].kind == END and sent[-1].lemma in _QUESTION_MARKS
        if asked and not any(it.lemma in _COMPLAINING_QUESTIONS for it in sent):
            score *= QUESTION
        if initial_contrast:  # "…。しかし、…" / "… . But …": the earlier sentence gives way
            previous *= CONTRAST_BEFORE
            score *= CONTRAST_AFTER
        total += previous
        previous = score
    return total + previous


def score_tokens(text: str, tokens: list[Token], lang: Lang) -> Sentiment:
    """Sentiment of normalised text from its tokens (lets analyze() tokenise only once)."""
    lex = lexicon(lang)
    items = _items(text, tokens, lang, lex)
    _apply_context(items, lex)
    _apply_modifiers(items, lang)
    (_negate_ja if lang == "ja" else _negate_en)(items)
    total = _weighted_total(items)
    score = total / math.sqrt(total * total + _SQUASH)
    label: Label = "neutral"
    if score >= NEUTRAL_BAND:
        label = "positive"
    elif score <= -NEUTRAL_BAND:
        label = "negative"
    return Sentiment(label, round(score, 4))


def analyze_sentiment(text: str, lang: Lang | None = None) -> Sentiment:
    """Classify a customer comment as positive, neutral or negative with a score in [-1, 1]."""
    text = normalize(text)
    lang = lang or detect_language(text)
    return score_tokens(text, tokenize(text, lang), lang)
