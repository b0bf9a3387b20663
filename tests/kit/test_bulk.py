"""kit.bulk.fill_empty: a first fill builds the table's indexes once, and leaves them exactly as they were."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, UniqueConstraint, insert, select, text
from sqlalchemy.exc import IntegrityError

from kokyaku.db import Database
from kokyaku.kit.bulk import fill_empty

scratch = MetaData()
points = Table(
    "test_fill_points",
    scratch,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("code", String(10), nullable=False),
    Column("score", Integer, nullable=False),
    UniqueConstraint("code", name="uq_test_fill_points_code"),
    Index("ix_test_fill_points_score_id", "score", "id"),
)


@pytest.fixture
def table(db: Database) -> Iterator[Table]:
    scratch.create_all(db.engine)
    yield points
    scratch.drop_all(db.engine)


def _index_definitions(db: Database) -> list[tuple[str, ...]]:
    with db.engine.connect() as conn:
        if db.is_sqlite:
            sql = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'test_fill_points'"
        else:
            sql = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'test_fill_points'"
        return sorted(tuple(row) for row in conn.execute(text(sql)))


def test_a_first_fill_writes_every_row_and_rebuilds_the_same_indexes(db: Database, table: Table) -> None:
    before = _index_definitions(db)
    # SQLite: the unique constraint's index and the score index (the key is the rowid); PostgreSQL: + the key
    assert len(before) == (2 if db.is_sqlite else 3)
    rows = [(i, f"c{i}", i % 7) for i in range(1, 2001)]
    with db.session() as s:
        assert fill_empty(s, table, ["id", "code", "score"], rows) is True
    assert _index_definitions(db) == before
    with db.session(write=False) as s:
        assert s.execute(select(table).order_by(table.c.id)).all() == rows
    # the constraints hold again
    for duplicate in ({"id": 1, "code": "new", "score": 0}, {"id": 9999, "code": "c5", "score": 0}):
        with pytest.raises(IntegrityError), db.session() as s:
            s.execute(insert(table), duplicate)


def test_a_table_with_rows_is_left_to_the_usual_writers(db: Database, table: Table) -> None:
    with db.session() as s:
        s.execute(insert(table), {"id": 1, "code": "a", "score": 1})
    with db.session() as s:
        assert fill_empty(s, table, ["id", "code", "score"], [(2, "b", 2)]) is False
    with db.session(write=False) as s:
        assert s.execute(select(table.c.id)).scalars().all() == [1]
    assert len(_index_definitions(db)) == (2 if db.is_sqlite else 3)
