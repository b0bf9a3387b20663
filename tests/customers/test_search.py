"""Name search through the gram index (an FTS5 table on SQLite, customer_search_grams on PostgreSQL): keys of
every length and script, keyset paging, and the index following renames, deletes, merges and imports."""

from pathlib import Path

import pytest
from sqlalchemy import select

from kokyaku.customers import merge, search_index, service
from kokyaku.customers.models import Customer
from kokyaku.customers.schemas import CustomerUpdate
from kokyaku.db import Database
from kokyaku.imports.service import Options, run_import
from kokyaku.kit.normalize import ngrams, search_key
from tests.conftest import TEST_ACTOR
from tests.customers.factories import make_customer
from tests.imports.helpers import JA_HEADER, write_csv

PEOPLE = [
    ("佐藤 花子", "さとう はなこ"),  # hiragana kana
    ("佐藤 一郎", "サトウ イチロウ"),  # katakana kana
    ("加藤 健", "カトウ ケン"),
    ("加藤 さとみ", "カトウ サトミ"),  # has the bigrams of さとう (さと, とう), but not さとう itself
    ("鈴木 さとみ", "スズキ サトミ"),
    ("渡辺 裕美子", "ワタナベ ユミコ"),
    ("佐々木 健太", "ささき けんた"),
    ("𠮷田 茂", "よしだ しげる"),  # 𠮷 lies outside the Basic Multilingual Plane
    ("John Smith", None),
    ("Anna Smithers", None),
]


def _names(db: Database, q: str, **filters: object) -> set[str]:
    with db.session(write=False) as s:
        page = service.list_customers(s, service.CustomerFilters(q=q, **filters), limit=50)  # type: ignore[arg-type]
        return {c.name for c in page.items}


def _all_pages(db: Database, q: str, limit: int) -> list[int]:
    seen: list[int] = []
    cursor = None
    while True:
        with db.session(write=False) as s:
            page = service.list_customers(s, service.CustomerFilters(q=q), cursor=cursor, limit=limit)
        assert len(page.items) <= limit
        seen += [c.id for c in page.items]
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor


def _expected_grams(name: str, kana: str | None) -> set[str]:
    return ngrams(search_key(name)) | ngrams(search_key(kana))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # one character: the gram itself
        ("藤", {"佐藤 花子", "佐藤 一郎", "加藤 健", "加藤 さとみ"}),
        ("佐", {"佐藤 花子", "佐藤 一郎", "佐々木 健太"}),
        ("𠮷", {"𠮷田 茂"}),
        ("s", {"John Smith", "Anna Smithers"}),
        # two characters
        ("佐藤", {"佐藤 花子", "佐藤 一郎"}),
        ("とう", {"佐藤 花子", "佐藤 一郎", "加藤 健", "加藤 さとみ"}),  # hiragana finds katakana kana
        ("トウ", {"佐藤 花子", "佐藤 一郎", "加藤 健", "加藤 さとみ"}),  # and katakana hiragana kana
        ("𠮷田", {"𠮷田 茂"}),
        ("Sm", {"John Smith", "Anna Smithers"}),
        # three or more: bigrams narrow, the substring decides
        ("さとう", {"佐藤 花子", "佐藤 一郎"}),
        ("サトウ", {"佐藤 花子", "佐藤 一郎"}),
        ("ｻﾄｳ", {"佐藤 花子", "佐藤 一郎"}),  # half-width katakana
        ("ササキ", {"佐々木 健太"}),
        ("さとみ", {"加藤 さとみ", "鈴木 さとみ"}),
        ("佐藤花", {"佐藤 花子"}),  # across the space between family and given name
        ("渡辺裕美子", {"渡辺 裕美子"}),
        ("わたなべ ゆみこ", {"渡辺 裕美子"}),
        ("smith", {"John Smith", "Anna Smithers"}),
        ("SMITH", {"John Smith", "Anna Smithers"}),
        ("ｓｍｉｔｈ", {"John Smith", "Anna Smithers"}),  # full-width latin
        ("smithers", {"Anna Smithers"}),
        ("hns", {"John Smith"}),
        # nothing: a customer must have every gram, and the whole key
        ("佐藤健", set()),  # 佐藤 and 藤健 belong to different customers
        ("smithy", set()),
        ("鬱", set()),
        ("鬱蒼", set()),
    ],
)
def test_search_by_keys_of_every_length_and_script(db: Database, query: str, expected: set[str]) -> None:
    with db.session() as s:
        for name, kana in PEOPLE:
            make_customer(s, name=name, name_kana=kana)
    assert _names(db, query) == expected


def test_each_customer_is_indexed_with_the_grams_of_its_name_and_kana(db: Database) -> None:
    with db.session() as s:
        ids = {make_customer(s, name=name, name_kana=kana).id: (name, kana) for name, kana in PEOPLE}
    with db.session(write=False) as s:
        indexed = search_index.grams_of(s, ids)
        assert indexed == {cid: _expected_grams(*pair) for cid, pair in ids.items()}
        assert search_index.frequency(s, "藤") == 4 and search_index.frequency(s, "藤", cap=2) == 2
        assert search_index.frequency(s, "鬱") == 0


@pytest.mark.parametrize(("query", "limit"), [("藤", 7), ("佐藤", 4), ("さとう", 5), ("サトウ", 50)])
def test_keyset_pages_newest_first_neither_skip_nor_repeat(db: Database, query: str, limit: int) -> None:
    # Between two blocks of people named さとう, more candidates than one pull of the search takes (100)
    # that have both its bigrams but not the key: paging has to look past them, from where it stopped.
    with db.session() as s:
        older = [make_customer(s, name=f"佐藤 {i}", name_kana="サトウ").id for i in range(9)]
        decoys = [make_customer(s, name=f"加藤 {i}", name_kana="かとう さとみ").id for i in range(110)]
        others = [make_customer(s, name=f"田中 {i}", name_kana="タナカ").id for i in range(5)]
        newer = [make_customer(s, name=f"佐藤 {i}", name_kana="さとう").id for i in range(9, 17)]
    expected = {
        "藤": older + decoys + newer,
        "佐藤": older + newer,
        "さとう": older + newer,
        "サトウ": older + newer,
    }[query]
    assert others  # found by none of the queries
    seen = _all_pages(db, query, limit)
    assert seen == sorted(expected, reverse=True)


def test_a_rename_reindexes_the_customer(db: Database) -> None:
    with db.session() as s:
        renamed = make_customer(s, name="佐藤 花子", name_kana="サトウ ハナコ").id
        kept = make_customer(s, name="佐藤 一郎", name_kana="サトウ イチロウ").id
    with db.session() as s:
        data = CustomerUpdate(name="鈴木 花子", name_kana="スズキ ハナコ")
        service.update_customer(s, actor=TEST_ACTOR, customer_id=renamed, data=data)
    assert _names(db, "佐藤") == _names(db, "さとう") == {"佐藤 一郎"}
    assert _names(db, "鈴木") == _names(db, "すずき") == _names(db, "木花") == {"鈴木 花子"}
    # only the kana changes: the name's grams stay, the old kana's go
    with db.session() as s:
        service.update_customer(
            s, actor=TEST_ACTOR, customer_id=kept, data=CustomerUpdate(name_kana="サトウ カズオ")
        )
    assert _names(db, "いちろう") == set() and _names(db, "かずお") == _names(db, "佐藤") == {"佐藤 一郎"}
    with db.session(write=False) as s:
        assert search_index.grams_of(s, [renamed, kept]) == {
            renamed: _expected_grams("鈴木 花子", "スズキ ハナコ"),
            kept: _expected_grams("佐藤 一郎", "サトウ カズオ"),
        }


def test_a_deleted_customer_and_those_merged_into_it_leave_the_index(db: Database) -> None:
    with db.session() as s:
        other = make_customer(s, name="田中 一郎", name_kana="タナカ イチロウ").id
        survivor = make_customer(s, name="佐藤 花子", name_kana="サトウ ハナコ").id
        merged = make_customer(s, name="佐藤 はな", name_kana="さとう はな").id
    with db.session() as s:
        merge.merge_customers(s, actor=TEST_ACTOR, survivor_id=survivor, merged_id=merged)
    # the merged customer is hidden from search while it waits for a possible undo
    assert _names(db, "さとうはな") == {"佐藤 花子"}
    with db.session() as s:
        service.delete_customer(s, actor=TEST_ACTOR, customer_id=survivor)
    with db.session(write=False) as s:
        assert s.scalars(select(Customer.id)).all() == [other]
        assert set(search_index.grams_of(s, [other, survivor, merged])) == {other}
    assert _names(db, "佐藤") == _names(db, "さとう") == set()
    assert _names(db, "いちろう") == {"田中 一郎"}
    # the ids of deleted customers can be given out again (SQLite): a new customer starts with a clean entry
    with db.session() as s:
        newcomer = make_customer(s, name="鈴木 花", name_kana="スズキ ハナ").id
    assert _names(db, "佐藤") == set() and _names(db, "花") == _names(db, "すずき") == {"鈴木 花"}
    with db.session(write=False) as s:
        assert search_index.grams_of(s, [newcomer]) == {newcomer: _expected_grams("鈴木 花", "スズキ ハナ")}


def _row(i: int, name: str, kana: str) -> list[str]:
    return [name, kana, f"person.{i}@example.jp", "", "", "", "", "", ""]


def test_customers_written_by_the_import_are_searchable(db: Database, tmp_path: Path) -> None:
    people = [
        ("佐藤 花子", "サトウ ハナコ"),
        ("佐藤 一郎", "さとう いちろう"),
        ("加藤 健", "カトウ ケン"),
        ("渡辺 裕美子", "ワタナベ ユミコ"),
        ("𠮷田 茂", "ヨシダ シゲル"),
        ("John Smith", ""),
        ("田中 実", "タナカ ミノル"),
    ]
    path = write_csv(tmp_path / "c.csv", [JA_HEADER] + [_row(i, *p) for i, p in enumerate(people)])
    options = Options(batch_rows=3)  # several write batches
    result = run_import(db, kind="customers", path=path, actor=TEST_ACTOR, options=options)
    assert (result.status, result.created) == ("done", 7)
    assert _names(db, "藤") == {"佐藤 花子", "佐藤 一郎", "加藤 健"}
    assert _names(db, "佐藤") == _names(db, "サトウ") == _names(db, "ｻﾄｳ") == {"佐藤 花子", "佐藤 一郎"}
    assert _names(db, "わたなべゆみこ") == _names(db, "裕美子") == {"渡辺 裕美子"}
    assert _names(db, "𠮷") == _names(db, "よしだ") == {"𠮷田 茂"}
    assert _names(db, "smith") == {"John Smith"}
    with db.session(write=False) as s:
        ids = dict(s.execute(select(Customer.email, Customer.id)).tuples().all())
        assert search_index.grams_of(s, ids.values()) == {
            ids[f"person.{i}@example.jp"]: _expected_grams(name, kana or None)
            for i, (name, kana) in enumerate(people)
        }
    # the same people imported again under other names (matched by email): the index follows the names
    renamed = [("鈴木 花子", "スズキ ハナコ"), ("佐藤 一郎", "さとう いちろう")]
    path = write_csv(tmp_path / "r.csv", [JA_HEADER] + [_row(i, *p) for i, p in enumerate(renamed)])
    again = run_import(db, kind="customers", path=path, actor=TEST_ACTOR, options=options)
    assert (again.status, again.updated, again.unchanged) == ("done", 1, 1)
    assert _names(db, "佐藤") == {"佐藤 一郎"}
    assert _names(db, "はなこ") == _names(db, "鈴木") == {"鈴木 花子"}
    with db.session(write=False) as s:
        assert search_index.grams_of(s, [ids["person.0@example.jp"]]) == {
            ids["person.0@example.jp"]: _expected_grams("鈴木 花子", "スズキ ハナコ")
        }
