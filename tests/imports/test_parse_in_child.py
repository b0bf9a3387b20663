"""Reading an import file in a second process (imports/parsing.py) gives what reading it here gives: the same
batches, the same runs and rows, the same file errors; and the process does not outlive its pass."""

import multiprocessing
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kokyaku.audit.models import AuditEntry
from kokyaku.customers.models import Customer, Identity
from kokyaku.db import Database
from kokyaku.imports import parsing
from kokyaku.imports.kinds import Context, importer_for
from kokyaku.imports.models import ImportRun
from kokyaku.imports.reader import CsvFile, MalformedCsv
from kokyaku.imports.service import Options, run_import
from tests.conftest import TEST_ACTOR, _wipe
from tests.imports.helpers import JA_HEADER, person, write_csv

BAD_EMAIL = ["名前", "", "bad@", "", "", "", "", "", ""]
SHORT_ROW = ["x", "y"]


def _rows(n: int) -> list[list[str]]:
    rows = [JA_HEADER]
    for i in range(n):
        rows.append(BAD_EMAIL if i % 11 == 5 else SHORT_ROW if i % 17 == 3 else person(i))
    return rows


def _batches(db: Database, path: Path, *, in_child: bool, skip: int = 0) -> tuple[list[Any], int]:
    file = CsvFile(path)
    with db.session(write=False) as s:
        importer = importer_for("customers", s, Context())
    spec = parsing.ParseSpec(
        kind="customers", path=path, name=path.name, max_bytes=None, context=Context(),
        fields=[(i, f) for i, f in enumerate(["name", "name_kana", "email", "phone", "postal_code",
                                              "prefecture", "birthday", "gender", "interests"])],
        batch_rows=7,
    )  # fmt: skip
    with parsing.batches(
        importer, spec, file, skip=skip, spooled=True, db_url=db.url, in_child=in_child
    ) as got:
        out = []
        for batch in got:
            assert got.spool_blob is not None
            out.append((batch, pickle.loads(zlib.decompress(got.spool_blob))))  # noqa: S301 - made here
        return out, got.bytes_read


def test_the_child_reads_the_same_batches(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", _rows(60))
    here, here_bytes = _batches(db, path, in_child=False)
    there, there_bytes = _batches(db, path, in_child=True)
    assert len(here) == 9 and there == here
    assert here_bytes == there_bytes == path.stat().st_size
    invalid_rows = {p[0] for (_records, _raw, invalid, _n), _blob in here for p in invalid}
    assert invalid_rows == {i + 2 for i in range(60) if i % 11 == 5 or i % 17 == 3}
    # the spool keeps (records, rows) of each batch
    assert [blob for _batch, blob in there] == [(b[0], b[3]) for b, _blob in here]
    # resuming after 20 rows starts at the 21st data row
    resumed, _ = _batches(db, path, in_child=True, skip=20)
    assert min(min(b[1]) for b, _blob in resumed) == 22
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("mode", ["dry_run", "skip_invalid", "all_or_nothing"])
def test_an_import_read_by_the_child_writes_what_one_read_here_writes(
    db: Database, tmp_path: Path, mode: str
) -> None:
    rows = _rows(45) if mode != "all_or_nothing" else [JA_HEADER] + [person(i) for i in range(45)]
    path = write_csv(tmp_path / "m.csv", rows)

    def outcome(in_child: bool) -> tuple[Any, ...]:
        errors = tmp_path / f"errors-{in_child}.csv"
        options = Options(mode=mode, batch_rows=10, parse_in_child=in_child, errors_path=errors)
        run = run_import(db, kind="customers", path=path, actor=TEST_ACTOR, options=options)
        with db.session(write=False) as s:
            stored = (
                s.execute(
                    select(Customer.name, Customer.email, Customer.birthday).order_by(Customer.id)
                ).all(),
                s.execute(select(Identity.kind, Identity.value).order_by(Identity.id)).all(),
                s.execute(select(AuditEntry.changes).order_by(AuditEntry.id)).all(),
            )
        counts = (run.status, run.rows_done, run.created, run.invalid, run.errors)
        return counts, stored, errors.read_text(encoding="utf-8-sig")

    in_child = outcome(True)
    assert in_child[0][2] > 0 or mode == "dry_run"
    if mode != "dry_run":  # start again from an empty database for the same import read here
        _wipe(db)
    assert outcome(False) == in_child
    assert not multiprocessing.active_children()


def test_a_file_error_in_the_child_is_the_same_error(db: Database, tmp_path: Path) -> None:
    lines = [",".join(JA_HEADER)] + [",".join(person(i)) for i in range(30)] + ['"broken,x', "a,b"]
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    caught = []
    for in_child in (False, True):
        with pytest.raises(MalformedCsv) as error:
            run_import(db, kind="customers", path=path, actor=TEST_ACTOR,
                       options=Options(mode="dry_run", batch_rows=10, parse_in_child=in_child))  # fmt: skip
        caught.append((error.value.message, error.value.params, str(error.value)))
    assert caught[0] == caught[1] and caught[1][1]["row"] == 32
    with db.session(write=False) as s:
        runs = s.scalars(select(ImportRun).order_by(ImportRun.id)).all()
    failed = ("failed", caught[0][0], caught[0][1])
    assert [(r.status, r.message, r.message_params) for r in runs] == [failed, failed]
    assert not multiprocessing.active_children()


def test_a_cancelled_import_stops_the_child(db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", [JA_HEADER] + [person(i) for i in range(200)])
    seen = []

    class Cancelled(Exception):
        pass

    def cancel() -> None:
        seen.append(len(multiprocessing.active_children()))
        if len(seen) == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        run_import(db, kind="customers", path=path, actor=TEST_ACTOR, check_cancel=cancel,
                   options=Options(mode="skip_invalid", batch_rows=10, parse_in_child=True))  # fmt: skip
    assert seen == [1, 1]  # the child was reading while the import ran
    assert not multiprocessing.active_children()
    with db.session(write=False) as s:
        assert len(s.scalars(select(Customer)).all()) == 10  # the first batch only
