"""SQLite: customer name grams in an FTS5 table, one document per customer

Writing the ~18 (gram, customer_id) rows of each customer into the WITHOUT ROWID table was the largest cost of
a bulk customer import on SQLite (~66 us per customer at 1M customers); one FTS5 document holding the same
grams costs ~10 us. Each gram is one ASCII token, "x" and the hexadecimal code point of each character
(山田 -> x5c71x7530), as customers.search_index writes them. The table keeps its documents' text (a regular
FTS5 table): SQLite 3.40 cannot delete from a contentless one. PostgreSQL keeps customer_search_grams: nothing
changes there.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FTS = "customer_search_fts"
# kit.normalize.ngrams writes one- and two-character grams only
TOKEN = (
    "'x' || printf('%x', unicode(gram)) "
    "|| CASE WHEN length(gram) > 1 THEN 'x' || printf('%x', unicode(substr(gram, 2))) ELSE '' END"
)
BATCH = 10_000


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"CREATE VIRTUAL TABLE {FTS} USING fts5(grams, detail=none, columnsize=0, tokenize='ascii')")
    # One statement; ids ascending, since FTS5 starts a new segment whenever a rowid is not above the last.
    op.execute(
        f"INSERT INTO {FTS} (rowid, grams) "
        f"SELECT customer_id, group_concat(token, ' ') FROM "
        f"(SELECT customer_id, {TOKEN} AS token FROM customer_search_grams ORDER BY customer_id) "
        f"GROUP BY customer_id ORDER BY customer_id"
    )
    op.execute("DELETE FROM customer_search_grams")


def _gram(token: str) -> str:
    return "".join(chr(int(part, 16)) for part in token.split("x") if part)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    last = 0
    while True:
        docs = conn.exec_driver_sql(
            f"SELECT f.rowid, f.grams FROM {FTS} f WHERE f.rowid > ? "
            "AND EXISTS (SELECT 1 FROM customers c WHERE c.id = f.rowid) ORDER BY f.rowid LIMIT ?",
            (last, BATCH),
        ).all()
        if not docs:
            break
        rows = sorted({(_gram(token), cid) for cid, text in docs for token in text.split()})
        if rows:
            conn.exec_driver_sql("INSERT INTO customer_search_grams (gram, customer_id) VALUES (?, ?)", rows)
        last = docs[-1][0]
    op.execute(f"DROP TABLE {FTS}")
