"""kit.bulk.fill_empty: a first fill writes every value exactly (binary COPY on PostgreSQL, grouped by label)
and builds the table's indexes again exactly as they were."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from kokyaku.db import Database, UTCDateTime
from kokyaku.kit.bulk import FillColumn, Labels, Micros, fill_empty

scratch = MetaData()
points = Table(
    "test_fill_points",
    scratch,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("code", String(10), nullable=False),
    Column("score", SmallInteger, nullable=False),
    Column("big", BigInteger, nullable=False),
    Column("kind", String(12), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("code", name="uq_test_fill_points_code"),
    Index("ix_test_fill_points_kind_id", "kind", "id"),
)
KINDS = ("silver", "gold", "bronze", "platinum")
T0 = datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _columns(ids: list[int]) -> dict[str, FillColumn]:
    at = [T0 + timedelta(days=i, microseconds=i) for i in ids]
    return {
        "id": np.array(ids),
        # unique text as labels, one each
        "code": Labels(np.arange(len(ids)), [f"c{i}" for i in ids]),
        "score": np.array([i % 300 for i in ids], dtype=np.int16),
        "big": np.array([5_000_000_000 + i for i in ids]),
        "kind": Labels(np.array([i % len(KINDS) for i in ids], dtype=np.int8), KINDS),
        "at": Micros(np.array([(a - EPOCH) // timedelta(microseconds=1) for a in at], dtype=np.int64)),
    }


def test_a_first_fill_writes_every_value_and_rebuilds_the_same_indexes(db: Database, table: Table) -> None:
    before = _index_definitions(db)
    # SQLite: the unique constraint's index and the kind index (the key is the rowid); PostgreSQL: + the key
    assert len(before) == (2 if db.is_sqlite else 3)
    ids = list(range(1, 3001))
    with db.session() as s:
        assert fill_empty(s, table, _columns(ids)) is True
    assert _index_definitions(db) == before
    with db.session(write=False) as s:
        got = s.execute(select(table).order_by(table.c.id)).all()
    expected = [
        (
            i,
            f"c{i}",
            i % 300,
            5_000_000_000 + i,
            KINDS[i % len(KINDS)],
            T0 + timedelta(days=i, microseconds=i),
        )
        for i in ids
    ]
    assert [tuple(row) for row in got] == expected
    # the constraints hold again
    row = {"code": "new", "score": 0, "big": 0, "kind": "gold", "at": T0}
    for duplicate in ({**row, "id": 1}, {**row, "id": 9999, "code": "c5"}):
        with pytest.raises(IntegrityError), db.session() as s:
            s.execute(insert(table), duplicate)


def test_a_table_with_rows_is_left_to_the_usual_writers(db: Database, table: Table) -> None:
    with db.session() as s:
        s.execute(insert(table), {"id": 1, "code": "a", "score": 1, "big": 1, "kind": "gold", "at": T0})
    with db.session() as s:
        assert fill_empty(s, table, _columns([2])) is False
    with db.session(write=False) as s:
        assert s.execute(select(table.c.id)).scalars().all() == [1]
    assert len(_index_definitions(db)) == (2 if db.is_sqlite else 3)
