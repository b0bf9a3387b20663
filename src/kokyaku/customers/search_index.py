"""The gram index behind customer name search: the unigrams and bigrams of each customer's name and kana
(kit.normalize.ngrams of search_key), and which customers have all of some grams, newest first.

Two forms, each function choosing one (ARCHITECTURE rule 7):
- SQLite: an FTS5 table, one document per customer (rowid = customer id) whose tokens are the grams. A
  customer is one row to write instead of ~18 B-tree entries: ~10 us against ~66 us per customer at 1M.
- PostgreSQL (and any other database): the customer_search_grams table, (gram, customer_id) rows whose
  B-tree gives the ids of a gram newest first for keyset pagination.

The FTS5 table (revision 0012, migrations/versions/2026-11-22_search_fts.py) is a regular one, keeping each
document's text: SQLite 3.40 cannot DELETE from a contentless table, and an external-content table must be
told the exact tokens a document had to delete it, which would tie every delete to the names as they were
when indexed.
`detail=none`: only which documents hold a token is needed; `columnsize=0`: no per-document token counts
(they serve ranking, which search does not use).
"""

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import cast

from sqlalchemy import Table, and_, delete, func, select, text
from sqlalchemy.orm import Session, aliased

from kokyaku.customers.models import Customer, SearchGram
from kokyaku.kit.bulk import insert_tuples
from kokyaku.kit.normalize import ngrams

FTS_TABLE = "customer_search_fts"
# The shadow tables FTS5 keeps beside it (columnsize=0 leaves out _docsize; listed for other settings).
FTS_SHADOW_SUFFIXES = ("_data", "_idx", "_content", "_docsize", "_config")
GRAMS = cast(Table, SearchGram.__table__)
_CHUNK = 10_000  # ids per IN list: under every database's parameter limit


def is_fts_table(name: str) -> bool:
    """Whether a table is the FTS5 index or one of its shadow tables: schema comparisons leave them out,
    since they are not described by the models."""
    return name == FTS_TABLE or any(name == FTS_TABLE + suffix for suffix in FTS_SHADOW_SUFFIXES)


def _uses_fts(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


@lru_cache(maxsize=65_536)
def token(gram: str) -> str:
    """A gram as one plain ASCII token: "x" and the hexadecimal code point of each character (山田 ->
    x5c71x7530), which no tokenizer rule (case folding, diacritics, CJK or punctuation splitting) changes."""
    return "".join(f"x{ord(ch):x}" for ch in gram)


def _gram(tok: str) -> str:
    return "".join(chr(int(part, 16)) for part in tok.split("x") if part)


@lru_cache(maxsize=16_384)
def _document_of(grams: frozenset[str]) -> str:
    # Whole names repeat (佐藤 花子): a hit saves ~1.3 us of ~2.6. Each entry holds ~300 bytes for as long
    # as the process lives (a web server too), hence a modest size.
    return " ".join(map(token, grams))


def _document(grams: Collection[str]) -> str:
    return _document_of(grams if isinstance(grams, frozenset) else frozenset(grams))


def write(session: Session, grams: Mapping[int, Collection[str]]) -> None:
    """Add the grams of customers that have none indexed (new ones, or ones just passed to
    `delete_customers`): on SQLite a second document for the same customer is refused."""
    if _uses_fts(session):
        # FTS5 writes a segment each time a rowid is not above the last one it took, so ids go in ascending
        docs = [(cid, _document(grams[cid])) for cid in sorted(grams) if grams[cid]]
        if docs:
            session.connection().exec_driver_sql(
                f"INSERT INTO {FTS_TABLE} (rowid, grams) VALUES (?, ?)", docs
            )
        return
    by_gram: dict[str, list[int]] = defaultdict(list)
    for cid, customer_grams in grams.items():
        for g in customer_grams:
            by_gram[g].append(cid)
    # rows in the order of the primary key (gram, customer_id), so that the B-tree takes them page by page
    rows = [(g, cid) for g in sorted(by_gram) for cid in sorted(by_gram[g])]
    insert_tuples(session, GRAMS, ("gram", "customer_id"), rows)


def remove(session: Session, grams: Mapping[int, Collection[str]]) -> None:
    """Remove the grams these customers are indexed with (`grams`: what `write` was given for them).

    The table's key is (gram, customer_id) and it has no index on customer_id alone (one more entry per gram
    would slow every bulk write), so rows go by their whole key: a delete by customer_id scanned all 18M rows
    of a million customers on PostgreSQL, 1.3 s for each renamed or deleted customer. FTS5 goes by rowid."""
    ids = sorted(grams)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        if _uses_fts(session):
            marks = ", ".join("?" for _ in chunk)
            session.connection().exec_driver_sql(
                f"DELETE FROM {FTS_TABLE} WHERE rowid IN ({marks})", tuple(chunk)
            )
        elif session.get_bind().dialect.name == "postgresql":
            pairs = [(g, cid) for cid in chunk for g in grams[cid]]
            if not pairs:
                continue
            session.execute(
                text(
                    f"DELETE FROM {GRAMS.name} t USING unnest(CAST(:g AS varchar[]), CAST(:c AS integer[])) "
                    "AS d(gram, customer_id) WHERE t.gram = d.gram AND t.customer_id = d.customer_id"
                ),
                {"g": [g for g, _ in pairs], "c": [c for _, c in pairs]},
            )
        else:
            session.execute(delete(GRAMS).where(GRAMS.c.customer_id.in_(chunk)))


def delete_customers(session: Session, customer_ids: Iterable[int]) -> None:
    """Remove the grams of customers about to be deleted, as their stored search text gives them."""
    ids = sorted(set(customer_ids))
    stored: dict[int, set[str]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(Customer.id, Customer.search_text).where(Customer.id.in_(ids[start : start + _CHUNK]))
        )
        stored.update((cid, grams_of_search_text(text_)) for cid, text_ in rows)
    remove(session, stored)


def grams_of_search_text(search_text: str | None) -> set[str]:
    """The grams of a customer whose search text (customers.search_text: the name's and the kana's search
    keys, joined by U+0001) is this."""
    grams: set[str] = set()
    for key in (search_text or "").split("\u0001"):
        grams |= ngrams(key)
    return grams


def replace(session: Session, old: Mapping[int, Collection[str]], new: Mapping[int, Collection[str]]) -> None:
    """Index these customers' `new` grams in place of the `old` ones they had."""
    remove(session, old)
    write(session, new)


def candidates(session: Session, grams: Sequence[str], before_id: int | None, n: int) -> list[int]:
    """Up to `n` ids of customers that have every one of `grams`, newest first, below `before_id`."""
    if not grams:
        return []
    if _uses_fts(session):
        # Implicit AND of quoted tokens; FTS5 intersects the doclists itself, skipping ahead in each, so the
        # order of the grams does not matter and no frequency counts are needed.
        params: dict[str, object] = {"q": " ".join(f'"{token(g)}"' for g in dict.fromkeys(grams)), "n": n}
        below = ""
        if before_id is not None:
            below = "AND rowid < :before "
            params["before"] = before_id
        sql = f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q {below}ORDER BY rowid DESC LIMIT :n"
        return [int(i) for i in session.scalars(text(sql), params)]
    # The rarest gram drives, the others are probed per row: rare keys touch few rows, common keys stop as
    # soon as `n` rows match.
    ordered = list(dict.fromkeys(grams))
    if len(ordered) > 1:
        ordered.sort(key=lambda gram: frequency(session, gram))
    driver = aliased(SearchGram)
    stmt = select(driver.customer_id).where(driver.gram == ordered[0])
    for gram in ordered[1:]:
        other = aliased(SearchGram)
        stmt = stmt.join(other, and_(other.customer_id == driver.customer_id, other.gram == gram))
    if before_id is not None:
        stmt = stmt.where(driver.customer_id < before_id)
    return list(session.scalars(stmt.order_by(driver.customer_id.desc()).limit(n)))


def frequency(session: Session, gram: str, cap: int = 5000) -> int:
    """How many customers have this gram, counted only up to `cap` so that the count stays cheap."""
    if _uses_fts(session):
        sql = f"SELECT count(*) FROM (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q LIMIT :cap)"
        return int(session.scalar(text(sql), {"q": f'"{token(gram)}"', "cap": cap}) or 0)
    sub = select(GRAMS.c.customer_id).where(GRAMS.c.gram == gram).limit(cap).subquery()
    return int(session.scalar(select(func.count()).select_from(sub)) or 0)


def grams_of(session: Session, customer_ids: Iterable[int]) -> dict[int, set[str]]:
    """The grams indexed for these customers (those with none are left out): for checks and tests."""
    out: dict[int, set[str]] = {}
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        if _uses_fts(session):
            marks = ", ".join("?" for _ in chunk)
            docs = session.connection().exec_driver_sql(
                f"SELECT rowid, grams FROM {FTS_TABLE} WHERE rowid IN ({marks})", tuple(chunk)
            )
            for cid, doc in docs:
                out[int(cid)] = {_gram(t) for t in doc.split()}
        else:
            pairs = session.execute(
                select(GRAMS.c.customer_id, GRAMS.c.gram).where(GRAMS.c.customer_id.in_(chunk))
            )
            for cid, g in pairs:
                out.setdefault(int(cid), set()).add(g)
    return out
