"""Importing customers and companies: modes, upserts, audit rows, and a killed import."""

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from kokyaku.audit.models import AuditEntry
from kokyaku.customers import service as customers
from kokyaku.customers.models import Customer, CustomFieldDef, Identity
from kokyaku.customers.schemas import CustomerCreate, CustomFieldIn
from kokyaku.db import WAL_AUTOCHECKPOINT, Database
from kokyaku.imports.models import ImportRun
from kokyaku.imports.service import BadMapping, Options, _KillForTest, run_import
from tests.conftest import TEST_ACTOR
from tests.imports.helpers import JA_HEADER, counts, person, write_csv


def run(db: Database, path: Path, kind: str = "customers", **options: Any) -> ImportRun:
    return run_import(db, kind=kind, path=path, actor=TEST_ACTOR, options=Options(**options))


def test_cp932_file_with_japanese_headers_creates_customers(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", [JA_HEADER, person(1), person(2)], "cp932")
    result = run(db, path)
    assert (result.status, result.encoding, result.created, result.invalid) == ("done", "Shift_JIS", 2, 0)
    with db.session(write=False) as s:
        c = s.scalar(select(Customer).where(Customer.email == "taro.1@example.jp"))
        assert c is not None
        out = customers.to_out(s, c)
    assert (out.name, out.name_kana, out.phones, out.prefecture) == (
        "山田 太郎1",
        "やまだ たろう",
        ["+819010010001"],
        "大阪府",
    )
    assert (out.birthday.isoformat(), out.gender, out.postal_code, out.interests) == (  # type: ignore[union-attr]
        "1990-01-02",
        "male",
        "100-0001",
        ["旅行"],
    )
    # found by the list's search exactly as if created through the API (same grams, same search text)
    with db.session(write=False) as s:
        found = customers.list_customers(s, customers.CustomerFilters(q="やまだ"), limit=10).items
    assert len(found) == 2


def test_english_headers_split_names_and_a_custom_field(db: Database, tmp_path: Path) -> None:
    with db.session() as s:
        customers.create_custom_field(
            s,
            actor=TEST_ACTOR,
            data=CustomFieldIn(
                key="rank",
                label_ja="会員ランク",
                label_en="Member rank",
                type="choice",
                choices=["gold", "silver"],
            ),
        )
    header = [
        "Last name",
        "First name",
        "Last name (kana)",
        "First name (kana)",
        "E-mail",
        "Tel",
        "Birthday",
        "Member rank",
        "Favourite colour",
    ]
    rows = [
        header,
        ["佐藤", "花子", "サトウ", "ハナコ", "Hanako@Example.JP", "03-1234-5678", "19850304", "gold", "red"],
    ]
    result = run(db, write_csv(tmp_path / "e.csv", rows))
    assert result.created == 1 and result.columns["Favourite colour"] == ""
    with db.session(write=False) as s:
        c = s.scalar(select(Customer))
        assert c is not None
        assert (c.name, c.name_kana, c.email, c.phone, c.custom) == (
            "佐藤 花子",
            "サトウ ハナコ",
            "hanako@example.jp",
            "+81312345678",
            {"rank": "gold"},
        )


def test_dry_run_checks_everything_and_writes_nothing(db: Database, tmp_path: Path) -> None:
    rows = [JA_HEADER, person(1), person(2), ["", "", "not-an-email", "", "12", "火星", "1990/2/30", "?", ""]]
    before = counts(db)
    result = run(db, write_csv(tmp_path / "d.csv", rows), mode="dry_run", errors_path=tmp_path / "err.csv")
    assert (result.status, result.created, result.invalid, result.rows_done) == ("done", 2, 1, 3)
    assert counts(db) == before
    fields = {e["field"] for e in result.errors if e["row"] == 4}
    assert {"email", "postal_code", "prefecture", "birthday", "gender"} <= fields
    error_csv = (tmp_path / "err.csv").read_text(encoding="utf-8-sig").splitlines()
    assert error_csv[0].startswith("Row,Errors,氏名") and error_csv[1].startswith("4,")


def test_all_or_nothing_writes_nothing_when_one_row_is_bad(db: Database, tmp_path: Path) -> None:
    rows = [JA_HEADER] + [person(i) for i in range(30)] + [["名前", "", "bad@", "", "", "", "", "", ""]]
    result = run(db, write_csv(tmp_path / "a.csv", rows), batch_rows=10)
    assert result.status == "invalid" and result.invalid == 1
    assert result.errors[0]["row"] == 32 and result.errors[0]["column"] == "メールアドレス"
    assert counts(db)["customers"] == 0


def test_skip_invalid_writes_the_valid_rows(db: Database, tmp_path: Path) -> None:
    rows = [JA_HEADER, person(1), ["名前", "", "bad@", "", "", "", "", "", ""], person(3), ["x", "y"]]
    result = run(db, write_csv(tmp_path / "s.csv", rows), mode="skip_invalid")
    assert (result.status, result.created, result.invalid) == ("done", 2, 2)
    shape = [e for e in result.errors if e["row"] == 5]
    assert shape and shape[0]["params"] == {"cells": 2, "columns": 9}
    assert counts(db)["customers"] == 2


def test_reimport_changes_nothing_and_writes_no_audit(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", [JA_HEADER] + [person(i) for i in range(25)])
    first = run(db, path, batch_rows=10)
    after_first = counts(db)
    assert first.created == 25 and after_first["audit"] == 25
    second = run(db, path, batch_rows=10)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 25)
    assert counts(db) == after_first


def test_an_unchanged_file_skips_the_write_pass(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "same.csv", [JA_HEADER] + [person(i) for i in range(12)])
    phases: list[list[str]] = []
    for _attempt in range(2):
        seen: list[str] = []
        result = run_import(db, kind="customers", path=path, actor=TEST_ACTOR, options=Options(batch_rows=5),
                            on_progress=lambda p, seen=seen: seen.append(p.phase))  # fmt: skip
        phases.append(sorted(set(seen)))
    assert phases == [["check", "write"], ["check"]]
    assert (result.status, result.rows_done, result.created, result.unchanged) == ("done", 12, 0, 12)


def test_update_changes_only_filled_cells_and_audits_the_difference(db: Database, tmp_path: Path) -> None:
    run(db, write_csv(tmp_path / "1.csv", [JA_HEADER, person(1)]))
    # same email: the same customer. Empty cells keep what is there; a new phone is added, not swapped.
    second = [
        JA_HEADER,
        ["山田 太郎1", "", "TARO.1@example.jp", "080-1111-2222", "", "京都", "", "", "グルメ、旅行"],
    ]
    result = run(db, write_csv(tmp_path / "2.csv", second))
    assert (result.created, result.updated) == (0, 1)
    with db.session(write=False) as s:
        c = s.scalar(select(Customer))
        assert c is not None
        out = customers.to_out(s, c)
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "update")).all()
    assert out.name_kana == "やまだ たろう" and out.prefecture == "京都府" and out.phone == "+819010010001"
    assert out.phones == ["+819010010001", "+818011112222"] and out.interests == ["グルメ", "旅行"]
    assert len(audit) == 1 and set(audit[0].changes) == {"prefecture", "phones", "interests"}
    assert audit[0].changes["prefecture"] == ["大阪府", "京都府"]


def test_matching_by_external_id_then_email_then_phone(db: Database, tmp_path: Path) -> None:
    with db.session() as s:
        a = customers.create_customer(
            s, actor=TEST_ACTOR, data=CustomerCreate(name="A", emails=["a@example.jp"])
        )
        b = customers.create_customer(
            s, actor=TEST_ACTOR, data=CustomerCreate(name="B", phones=["0312345678"])
        )
        ids = (a.id, b.id)
    rows = [
        ["顧客番号", "氏名", "メール", "電話番号", "備考"],
        ["C-1", "", "a@example.jp", "", "by email"],  # adds C-1 to A
        ["", "", "", "03-1234-5678", "by phone"],  # B
        ["C-1", "", "", "", "by external id"],  # A again, via the id just added
        ["", "", "a@example.jp", "03-1234-5678", "both"],
    ]  # A's email, B's phone: a conflict
    result = run(db, write_csv(tmp_path / "m.csv", rows), mode="skip_invalid")
    assert (result.created, result.updated, result.invalid) == (0, 3, 1)
    conflict = [e for e in result.errors if e["row"] == 5]
    assert conflict[0]["field"] == "phone" and conflict[0]["params"]["other_id"] == ids[1]
    with db.session(write=False) as s:
        notes = dict(s.execute(select(Customer.id, Customer.note)).all())
        external = s.scalar(select(Identity).where(Identity.kind == "external"))
    assert notes == {ids[0]: "by external id", ids[1]: "by phone"}
    assert external is not None and (external.customer_id, external.value, external.source) == (
        ids[0],
        "C-1",
        "import",
    )


def test_same_customer_twice_in_a_file_is_one_customer(db: Database, tmp_path: Path) -> None:
    rows = (
        [JA_HEADER, person(1), [*person(1)[:3], "080-9999-0000", *person(1)[4:]]]
        + [person(i) for i in range(2, 12)]
        + [[*person(1)[:7], "", "グルメ"]]
    )
    # batches of 4: the third sighting of customer 1 is in another batch than the first two
    dry = run(db, write_csv(tmp_path / "t.csv", rows), mode="dry_run", batch_rows=4)
    assert (dry.created, dry.updated, dry.invalid) == (11, 2, 0)
    real = run(db, tmp_path / "t.csv", batch_rows=4)
    assert (real.created, real.updated, real.invalid) == (11, 2, 0)
    with db.session(write=False) as s:
        assert len(s.scalars(select(Customer)).all()) == 11


def test_companies_upsert_by_name(db: Database, tmp_path: Path) -> None:
    rows = [
        ["会社名", "業種", "従業員数", "ホームページ"],
        ["株式会社テスト", "小売", "120", "https://test.example.co.jp"],
    ]
    first = run(db, write_csv(tmp_path / "co.csv", rows), kind="companies")
    again = run(db, tmp_path / "co.csv", kind="companies")
    assert (first.created, again.unchanged) == (1, 1)
    with db.session(write=False) as s:
        co = s.scalar(select(Customer))
    assert co is not None and (co.kind, co.company_size, co.industry) == ("company", "50-249", "小売")
    # people name their company; an unknown company is an error at that row
    people = [
        ["氏名", "メール", "会社名"],
        ["社員 一郎", "ichiro@example.jp", "株式会社テスト"],
        ["社員 二郎", "jiro@example.jp", "存在しない会社"],
    ]
    result = run(db, write_csv(tmp_path / "p.csv", people), mode="skip_invalid")
    assert (result.created, result.invalid) == (1, 1) and result.errors[0]["field"] == "company"
    with db.session(write=False) as s:
        ichiro = s.scalar(select(Customer).where(Customer.email == "ichiro@example.jp"))
    assert ichiro is not None and ichiro.company_id == co.id


def test_required_custom_field_and_unknown_kokyaku_id(db: Database, tmp_path: Path) -> None:
    with db.session() as s:
        s.add(
            CustomFieldDef(
                key="member_no",
                label_ja="会員番号X",
                label_en="Member no",
                type="text",
                choices=[],
                applies_to="person",
                required=True,
            )
        )
    rows = [
        ["Kokyaku ID", "氏名", "メール", "Member no"],
        ["", "新規 太郎", "new@example.jp", ""],
        ["999999", "", "", "M-1"],
        ["", "新規 花子", "hanako@example.jp", "M-2"],
    ]
    result = run(db, write_csv(tmp_path / "r.csv", rows), mode="skip_invalid")
    problems = {(e["row"], e["field"]) for e in result.errors}
    assert problems == {(2, "custom.member_no"), (3, "kokyaku_id")} and result.created == 1


def test_a_mapping_must_name_the_customer(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["好きな色", "メモ"], ["赤", "x"]])
    with pytest.raises(BadMapping):
        run(db, path)
    with db.session(write=False) as s:
        failed = s.scalar(select(ImportRun))
    assert failed is not None and failed.status == "failed"


def test_killed_import_leaves_whole_batches_and_a_rerun_completes_it(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "k.csv", [JA_HEADER] + [person(i) for i in range(47)])
    with pytest.raises(_KillForTest):
        run(db, path, batch_rows=10, fail_in_batch=3)
    with db.session(write=False) as s:
        killed = s.scalar(select(ImportRun))
        assert killed is not None
        written = len(s.scalars(select(Customer)).all())
    # pass 1 checked all 47 rows; pass 2 committed batches 1 and 2, and nothing of batch 3
    assert written == 20 and counts(db)["audit"] == 20
    assert (killed.status, killed.phase, killed.rows_done, killed.created) == ("running", "write", 20, 20)
    # resuming the run continues after its last whole batch
    resumed = run_import(
        db, kind="customers", path=path, actor=TEST_ACTOR, options=Options(batch_rows=10), run_id=killed.id
    )
    assert (resumed.status, resumed.rows_done, resumed.created, resumed.unchanged) == ("done", 47, 47, 0)
    assert counts(db)["customers"] == 47 and counts(db)["audit"] == 47
    # and running the whole file again from the start adds nothing
    again = run(db, path, batch_rows=10)
    assert (again.created, again.unchanged) == (0, 47) and counts(db)["customers"] == 47


def test_a_killed_skip_invalid_import_rerun_from_scratch(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "k2.csv", [JA_HEADER] + [person(i) for i in range(25)])
    with pytest.raises(_KillForTest):
        run(db, path, mode="skip_invalid", batch_rows=10, fail_in_batch=2)
    assert counts(db)["customers"] == 10
    again = run(db, path, mode="skip_invalid", batch_rows=10)
    assert (again.created, again.unchanged) == (15, 10) and counts(db)["customers"] == 25


def test_the_database_still_refuses_orphan_rows_after_an_import(db: Database, tmp_path: Path) -> None:
    # On SQLite the import writes without foreign-key checks on its own connection, which also leaves WAL
    # checkpoints to a thread of its own; no connection may come back to the pool that way, and no thread
    # may stay behind, even after a killed import.
    path = write_csv(tmp_path / "o.csv", [JA_HEADER] + [person(i) for i in range(15)])
    with pytest.raises(_KillForTest):
        run(db, path, batch_rows=5, fail_in_batch=2)
    run(db, path, batch_rows=5)
    assert not [t for t in threading.enumerate() if t.name == "sqlite-wal-checkpoint"]
    held = []
    try:
        for _ in range(db.engine.pool.checkedin() + 1):  # type: ignore[attr-defined]
            held.append(db.engine.connect())
        for conn in held:
            with pytest.raises(IntegrityError), conn.begin():
                conn.execute(insert(Identity).values(customer_id=10**9, kind="email", value="o@example.jp"))
            if db.is_sqlite:
                assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_AUTOCHECKPOINT
    finally:
        for conn in held:
            conn.close()


def test_postgresql_analyses_the_tables_an_import_grows(db: Database, tmp_path: Path) -> None:
    """After write batches 1, 2 and 4 (not 3 or 5), so that lookups in the grown tables use their indexes."""
    if db.is_sqlite:
        pytest.skip("SQLite's planner needs no statistics to use an index for IN lists")
    import time

    from sqlalchemy import text

    def analyses() -> int:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return int(conn.scalar(text(
                "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'customer_identities'"
            )) or 0)  # fmt: skip

    before = analyses()
    path = write_csv(tmp_path / "c.csv", [JA_HEADER, *(person(i) for i in range(1, 11))], "utf-8")
    result = run(db, path, batch_rows=2)  # five batches
    assert (result.status, result.created) == ("done", 10)
    deadline = time.monotonic() + 10  # other backends report their statistics within about a second
    while analyses() < before + 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert analyses() == before + 3
