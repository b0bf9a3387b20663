"""Running an import: the file is read as a stream and handled in batches (5,000 rows by default, 50,000
for customers and companies).

Modes:
- dry_run: every row is checked against the rules and the database (pass "check"); nothing is written.
- all_or_nothing: the check pass runs over the whole file first; only if no row is invalid (and some row
  creates or changes something) does the write pass start. A file with one bad row writes nothing.
- skip_invalid: one write pass; invalid rows are reported and left out.

Crash safety: each write batch is one transaction that also advances `import_runs.rows_done` and the counts,
so a killed import has written whole batches only, and the run row says exactly how many rows they held.
Running the job again resumes after `rows_done`; running the same file again from the start is safe too,
because every kind upserts (customers by Kokyaku ID / external id / email / phone, products by SKU, orders
by order id, touchpoints by touchpoint id): what the first run wrote is found and counted as unchanged.
"""

import csv
import gc
import pickle
import sqlite3
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.db import WAL_AUTOCHECKPOINT_BACKSTOP, Database, utcnow
from kokyaku.errors import KokyakuError, NotFound, ValidationFailed
from kokyaku.i18n import gettext
from kokyaku.imports import mapping as mapping_
from kokyaku.imports import parsing
from kokyaku.imports.kinds import Context, Key, Problem, importer_for
from kokyaku.imports.models import KINDS, MODES, ImportRun
from kokyaku.imports.parsing import ParseSpec
from kokyaku.imports.reader import CsvFile, ImportFileError

BULK_CACHE_KB = 256 * 1024  # SQLite page cache of an import's writing connection
KEPT_ERRORS = 200  # problems stored on the run for the page; the error file has all of them


class ImportRunNotFound(NotFound):
    code = "import_run_not_found"
    message = "Import {id} does not exist."


class BadMapping(ValidationFailed):
    code = "import_mapping_invalid"


class ImportAborted(KokyakuError):
    """The write pass of an all-or-nothing import met a row that the check pass accepted (the data changed
    in between); the batches before it are written, the rest is not."""

    code = "import_aborted"
    status = 409
    message = "Row {row}: {reason} The data changed while importing; run the import again."


class _KillForTest(RuntimeError):
    """Raised inside a write batch by the test-only `fail_in_batch` option."""


@dataclass
class Options:
    mode: str = "all_or_nothing"
    columns: dict[str, str] | None = None  # header -> field chosen by the user; missing headers are proposed
    mapping_name: str | None = None
    batch_rows: int | None = None  # None: the importer's own (Importer.batch_rows)
    max_bytes: int | None = None
    locale: str = "en"
    errors_path: Path | None = None
    context: Context = field(default_factory=Context)
    audit_rows: bool = True  # bench/import_bench.py measures the import without per-row audit rows too
    fail_in_batch: int | None = None  # tests only: raise inside the n-th write batch, before its commit
    parse_in_child: bool | None = None  # read the file in a second process; None: for big files (parsing.py)


@dataclass
class Progress:
    phase: str
    rows: int
    bytes_read: int
    size: int


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    rows: int = 0


# ---------------------------------------------------------------- keys of this run (bounded memory)


class RunKeys:
    """The identities a check pass would have written in earlier batches, so that later batches see them:
    kept in a private temporary SQLite file, not in memory, because a file may hold millions of rows."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect("")
        # 2,000,000 keys take ~100 MB: with SQLite's default 2 MB cache every insert would read pages back
        self.conn.execute(f"PRAGMA cache_size=-{BULK_CACHE_KB}")
        # one B-tree: the key and its customer together (a rowid table would add an index of the keys)
        self.conn.execute(
            "CREATE TABLE k (kind TEXT, value TEXT, ref INTEGER, PRIMARY KEY (kind, value)) WITHOUT ROWID"
        )

    def lookup(self, keys: set[Key]) -> dict[Key, int]:
        found: dict[Key, int] = {}
        by_kind: dict[str, list[str]] = {}
        for kind, value in keys:
            by_kind.setdefault(kind, []).append(value)
        # one kind per query, so that SQLite searches the primary key instead of scanning the table
        for kind, values in by_kind.items():
            for start in range(0, len(values), 500):
                chunk = values[start : start + 500]
                sql = f"SELECT value, ref FROM k WHERE kind = ? AND value IN ({','.join('?' * len(chunk))})"
                found.update({(kind, value): ref for value, ref in self.conn.execute(sql, [kind, *chunk])})
        return found

    def add(self, keys: dict[Key, int]) -> None:
        rows = sorted((k, v, ref) for (k, v), ref in keys.items())  # in key order: page after page
        self.conn.executemany("INSERT OR REPLACE INTO k VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self.conn.close()


@contextmanager
def _bulk_connection(db: Database, enabled: bool) -> Iterator[Connection | None]:
    """On SQLite, one connection for all the write batches of a pass, set up for bulk writing: its page
    cache stays warm from batch to batch (the pool would hand out others), it is larger (BULK_CACHE_KB),
    foreign-key checks are off, because the importer only writes references it has just checked in the same
    transaction (they cost a parent lookup per row: ~15% of an import of customers), and a thread copies the
    write-ahead log back meanwhile instead of the batches' commits (Database.checkpointing_thread: ~9 s of
    a 1,000,000-row import's 82 s write pass moved to the other core). Restored after."""
    if not (enabled and db.is_sqlite):
        yield None
        return
    conn = db.engine.connect().execution_options(sqlite_immediate=True)
    raw = conn.connection.driver_connection
    assert raw is not None
    cache = raw.execute("PRAGMA cache_size").fetchone()[0]
    autocheckpoint = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    try:
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute(f"PRAGMA cache_size=-{BULK_CACHE_KB}")
        with db.checkpointing_thread() as threaded:
            if threaded:
                raw.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_BACKSTOP}")
            yield conn
    finally:
        try:
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute(f"PRAGMA cache_size={int(cache)}")
            raw.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        except Exception:
            conn.invalidate()  # never hand a connection without foreign keys back to the pool
            raise
        finally:
            conn.close()


@contextmanager
def _young_gc_only() -> Iterator[None]:
    """Pause automatic garbage collection during an import: a batch holds ~10^5 live objects, and the
    collector's full passes over them cost a fifth of the time. Each batch ends with a young-generation
    collection instead, so cycles are still freed."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Spool:
    """Parsed batches of a check pass, pickled to a temporary file for the write pass that follows."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(), after the write pass
        self.count = 0

    def add(self, data: bytes) -> None:
        """One batch as parsing.spool_blob makes it."""
        self.file.write(len(data).to_bytes(8, "little"))
        self.file.write(data)
        self.count += 1

    def batches(self) -> Iterator[parsing.Batch]:
        self.file.seek(0)
        for _ in range(self.count):
            yield self._read()  # not bound to a name here: see parsing._Pending

    def _read(self) -> parsing.Batch:
        size = int.from_bytes(self.file.read(8), "little")
        records, n_rows = pickle.loads(zlib.decompress(self.file.read(size)))  # noqa: S301 - our own file
        return records, {}, [], n_rows

    def close(self) -> None:
        self.file.close()


# ---------------------------------------------------------------- the error file


class ErrorFile:
    """Invalid rows as a CSV the user can fix and import again: row number, the problems, then the row."""

    def __init__(self, path: Path | None, header: list[str], locale: str) -> None:
        self.path = path
        self.locale = locale
        self.count = 0
        self._fh: Any = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._fh)
            self._writer.writerow([gettext(locale, "Row"), gettext(locale, "Errors"), *header])

    def add(self, row: int, problems: list[tuple[str, str]], cells: list[str]) -> None:
        self.count += 1
        if self._fh is not None:
            text = " / ".join(f"{column}: {message}" if column else message for column, message in problems)
            self._writer.writerow([row, text, *cells])

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


# ---------------------------------------------------------------- runs


def get_run(session: Session, run_id: int, *, user_id: int | None = None) -> ImportRun:
    run = session.get(ImportRun, run_id)
    if run is None or (user_id is not None and run.user_id != user_id):
        raise ImportRunNotFound(id=run_id)
    return run


def list_runs(session: Session, *, user_id: int | None = None, limit: int = 20) -> list[ImportRun]:
    stmt = select(ImportRun).order_by(ImportRun.id.desc()).limit(limit)
    if user_id is not None:
        stmt = stmt.where(ImportRun.user_id == user_id)
    return list(session.scalars(stmt))


def create_run(
    session: Session, *, kind: str, path: Path, filename: str, size: int, actor: Actor,
    mode: str = "all_or_nothing", columns: dict[str, str] | None = None, encoding: str | None = None,
    locale: str = "en",
    status: str = "uploaded", errors_path: Path | None = None,
) -> ImportRun:  # fmt: skip
    if kind not in KINDS:
        raise ValidationFailed([("kind", "Not one of the allowed values.", {})])
    if mode not in MODES:
        raise ValidationFailed([("mode", "Not one of the allowed values.", {})])
    run = ImportRun(
        kind=kind, mode=mode, status=status, filename=filename[:255], path=str(path), size=size,
        encoding=encoding, columns=columns or {}, locale=locale, user_id=actor.user_id, errors=[],
        message_params={}, errors_path=str(errors_path) if errors_path else None,
    )  # fmt: skip
    session.add(run)
    session.flush()
    return run


def resolve_columns(
    session: Session,
    kind: str,
    header: list[str],
    *,
    columns: dict[str, str] | None,
    mapping_name: str | None,
) -> dict[str, str]:
    """The mapping to use: the proposal, overlaid by a saved mapping, overlaid by the user's choices."""
    defs = mapping_.custom_defs(session, kind)
    chosen = mapping_.propose(kind, header, defs)
    if mapping_name:
        chosen = mapping_.apply_saved(chosen, mapping_.get_mapping(session, kind, mapping_name).columns)
    if columns:
        chosen = {h: columns.get(h, f) for h, f in chosen.items()}
    problems = mapping_.check(kind, chosen, defs)
    if problems:
        raise BadMapping(problems)
    return chosen


def run_import(
    db: Database,
    *,
    kind: str,
    path: str | Path,
    actor: Actor,
    options: Options | None = None,
    run_id: int | None = None,
    filename: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    check_cancel: Callable[[], None] | None = None,
) -> ImportRun:
    """Import one file (creating its run, or continuing run `run_id`); returns the finished run.

    File-level problems (empty, binary, oversized, malformed, a bad mapping) raise after marking the run
    failed; invalid rows are counted and reported on the run."""
    options = options or Options()
    path = Path(path)
    if run_id is None:
        with db.session() as s:
            run = create_run(
                s, kind=kind, path=path, filename=filename or path.name,
                size=path.stat().st_size if path.exists() else 0,
                actor=actor, mode=options.mode, locale=options.locale, status="running",
                errors_path=options.errors_path,
            )  # fmt: skip
            run_id = run.id
    runner = _Runner(db, run_id, kind, path, actor, options, on_progress, check_cancel)
    return runner.run()


class _Runner:
    def __init__(
        self, db: Database, run_id: int, kind: str, path: Path, actor: Actor, options: Options,
        on_progress: Callable[[Progress], None] | None, check_cancel: Callable[[], None] | None,
    ) -> None:  # fmt: skip
        self.db, self.run_id, self.kind, self.path, self.actor = db, run_id, kind, path, actor
        self.options = options
        self.on_progress = on_progress
        self.check_cancel = check_cancel
        self.kept: list[dict[str, Any]] = []
        self.bulk_conn: Connection | None = None

    # -------------------------------------------------------- the passes

    def run(self) -> ImportRun:
        with _young_gc_only():
            return self._run()

    def _run(self) -> ImportRun:
        try:
            self.file = CsvFile(self.path, max_bytes=self.options.max_bytes, name=self.path.name)
            self.file.check_has_rows()
            with self.db.session(write=False) as s:
                self.columns = resolve_columns(
                    s, self.kind, self.file.header, columns=self.options.columns,
                    mapping_name=self.options.mapping_name,
                )  # fmt: skip
                self.importer = importer_for(self.kind, s, self.options.context)
            self.importer.audit_rows = self.options.audit_rows
        except KokyakuError as exc:
            self._finish("failed", message=exc)
            raise
        fields = [(i, self.columns.get(h, "")) for i, h in enumerate(self.file.header)]
        self.spec = ParseSpec(
            kind=self.kind, path=self.path, name=self.path.name, max_bytes=self.options.max_bytes,
            context=self.options.context, fields=[(i, f) for i, f in fields if f],
            batch_rows=self.options.batch_rows or self.importer.batch_rows,
        )  # fmt: skip
        self.bytes_read = 0
        self.header_of: dict[str, str] = {}
        for h, f in self.columns.items():
            self.header_of.setdefault(f, h)
        with self.db.session() as s:
            run = s.get(ImportRun, self.run_id)
            assert run is not None
            resume = run.phase == "write" and run.rows_done > 0 and run.status in ("running", "queued")
            start_counts = Counts(run.created, run.updated, run.unchanged, run.invalid, run.rows_done)
            run.status = "running"
            run.encoding = self.file.encoding.label
            run.columns = self.columns
            run.size = self.file.size
            run.started_at = run.started_at or utcnow()
            self.kept = list(run.errors or []) if resume else []
            errors_path = Path(run.errors_path) if run.errors_path else None
        mode = self.options.mode
        try:
            if resume:
                counts = self._pass(
                    "write", errors_path, skip=start_counts.rows, counts=start_counts, append=True
                )
            elif mode in ("dry_run", "all_or_nothing"):
                spool = Spool() if mode == "all_or_nothing" else None
                try:
                    counts = self._pass("check", errors_path, spool=spool)
                    # Every row unchanged (a file imported again): the write pass would write nothing, so
                    # it is not run. Had the data changed since, the import would simply have run first.
                    changes = counts.created or counts.updated
                    if spool is not None and counts.invalid == 0 and changes:
                        counts = self._pass("write", None, rows_total=counts.rows, spool=spool)
                finally:
                    if spool is not None:
                        spool.close()
            else:
                counts = self._pass("write", errors_path)
        except (KokyakuError, _KillForTest) as exc:
            if isinstance(exc, KokyakuError):
                self._finish("failed", message=exc)
            raise
        status = "invalid" if mode == "all_or_nothing" and counts.invalid else "done"
        return self._finish(status, counts=counts)

    def _pass(
        self, phase: str, errors_path: Path | None, *, skip: int = 0, counts: Counts | None = None,
        append: bool = False, rows_total: int | None = None, spool: "Spool | None" = None,
    ) -> Counts:  # fmt: skip
        """One pass over the file. A check pass fills `spool` with the parsed batches; the write pass of the
        same import then reads them back instead of parsing and validating every row again."""
        counts = counts or Counts()
        write = phase == "write"
        keys = RunKeys() if not write or getattr(self.importer, "run_keys", False) else None
        errors = (
            ErrorFile(errors_path, self.file.header, self.options.locale)
            if errors_path and not append
            else None
        )
        if errors_path and append:
            errors = _AppendErrors(errors_path)
        with self.db.session() as s:
            run = s.get(ImportRun, self.run_id)
            assert run is not None
            run.phase = phase
            if not append:
                run.rows_done = 0
                run.created = run.updated = run.unchanged = run.invalid = 0
                run.errors = []
                self.kept = []
            if rows_total is not None:
                run.rows_total = rows_total
        batch_no = 0
        self._report(phase, counts, rows_total)  # the pass has begun (progress bars, timings)
        stack = ExitStack()
        self.bulk_conn = stack.enter_context(_bulk_connection(self.db, write and self.importer.sqlite_bulk))
        try:
            read: parsing.Batches | None = None  # the file's batches (or else the spool's)
            source: Iterable[parsing.Batch]
            if write and spool is not None:
                source = spool.batches()
            else:
                source = read = stack.enter_context(parsing.batches(
                    self.importer, self.spec, self.file, skip=skip, spooled=spool is not None,
                    db_url=self.db.url, in_child=self.options.parse_in_child,
                ))  # fmt: skip
            for batch, raw, invalid, n_rows in source:
                batch_no += 1
                if read is not None:
                    self.bytes_read = read.bytes_read
                    if spool is not None:  # a check pass keeps what it read for the write pass
                        assert read.spool_blob is not None
                        spool.add(read.spool_blob)
                if self.check_cancel:
                    self.check_cancel()
                if write:
                    outcome = self._write_batch(batch, raw, invalid, n_rows, counts, keys, errors, batch_no)
                else:
                    with self.db.session(write=False) as s:
                        outcome = self.importer.apply(s, actor=self.actor, records=batch, write=False,
                                                      known=keys.lookup if keys else None)  # fmt: skip
                    by_row = self._tally(outcome, invalid, n_rows, counts)
                    with self.db.session() as s:
                        self._save_progress(s, counts)
                    self._record_errors(by_row, raw, errors)
                if keys is not None:
                    keys.add(outcome.keys)
                self._report(phase, counts, rows_total)
                # The batch's garbage, young generations only (see _young_gc_only); the batch itself is let
                # go first, or the collector would walk its ~10^5 live objects for nothing.
                del batch, raw, invalid, outcome
                gc.collect(1)
        finally:
            self.bulk_conn = None
            stack.close()
            if keys is not None:
                keys.close()
            if errors is not None:
                errors.close()
        return counts

    def _write_batch(
        self, batch: list[Any], raw: dict[int, list[str]], invalid: list[Problem], n_rows: int,
        counts: Counts, keys: "RunKeys | None", errors: Any, batch_no: int,
    ) -> Any:  # fmt: skip
        mode = self.options.mode
        if invalid and mode == "all_or_nothing":
            row, fld, msg, params = invalid[0]
            raise ImportAborted(row=row, reason=gettext(self.options.locale, msg, **params))
        for attempt in (1, 2):
            before = Counts(**counts.__dict__)
            kept = len(self.kept)
            try:
                with self.db.session(connection=self.bulk_conn) as s:
                    outcome = self.importer.apply(s, actor=self.actor, records=batch, write=True,
                                                  known=keys.lookup if keys else None)  # fmt: skip
                    if outcome.errors and mode == "all_or_nothing":
                        row, fld, msg, params = outcome.errors[0]
                        raise ImportAborted(row=row, reason=gettext(self.options.locale, msg, **params))
                    by_row = self._tally(outcome, invalid, n_rows, counts)
                    self._save_progress(s, counts)
                    if self.options.fail_in_batch == batch_no:
                        s.flush()
                        raise _KillForTest(f"killed in batch {batch_no}")
            except IntegrityError:
                # Someone else wrote one of these identities, SKUs or order ids since our lookup: once more.
                if attempt == 2:
                    raise
                continue
            except BaseException:
                counts.__dict__.update(before.__dict__)
                del self.kept[kept:]
                raise
            self._record_errors(by_row, raw, errors)
            self._refresh_statistics(batch_no)
            return outcome
        raise AssertionError("unreachable")

    def _refresh_statistics(self, batch_no: int) -> None:
        """PostgreSQL: analyse the tables the import grows after batches 1, 2, 4, 8, ...: the planner's row
        counts stay within twice the truth at the cost of a few samples. Without it, identity lookups in a
        table that grew from nothing to 200,000 rows took 56 ms each (full scans), 22 of a 100,000-row
        import's 45 seconds."""
        tables = self.importer.grows
        if not tables or batch_no & (batch_no - 1) or self.db.is_sqlite:
            return
        with self.db.session() as s:
            s.execute(text(f"ANALYZE {', '.join(tables)}"))

    # -------------------------------------------------------- bookkeeping

    def _tally(
        self, outcome: Any, invalid: list[Problem], n_rows: int, counts: Counts
    ) -> dict[int, list[Problem]]:
        """Add a batch's outcome to the counts and keep its first problems for the run; by row."""
        by_row: dict[int, list[Problem]] = {}
        for p in sorted(invalid + outcome.errors, key=lambda p: p[0]):
            by_row.setdefault(p[0], []).append(p)
        counts.created += outcome.created
        counts.updated += outcome.updated
        counts.unchanged += outcome.unchanged
        counts.invalid += len(by_row)
        counts.rows += n_rows
        for row, items in by_row.items():
            for _r, f, m, p in items:
                if len(self.kept) < KEPT_ERRORS:
                    self.kept.append({"row": row, "field": f, "column": self._column(f), "message": m,
                                      "params": {k: _plain(val) for k, val in p.items()}})  # fmt: skip
        return by_row

    def _record_errors(
        self, by_row: dict[int, list[Problem]], raw: dict[int, list[str]], errors: Any
    ) -> None:
        if errors is None:
            return
        for row, items in by_row.items():
            shown = [(self._column(f), gettext(self.options.locale, m, **p)) for _r, f, m, p in items]
            errors.add(row, shown, raw.get(row, []))

    def _column(self, fld: str) -> str:
        return self.header_of.get(fld, fld)

    def _save_progress(self, s: Session, counts: Counts) -> None:
        run = s.get(ImportRun, self.run_id)
        assert run is not None
        run.rows_done = counts.rows
        run.created, run.updated, run.unchanged, run.invalid = (
            counts.created, counts.updated, counts.unchanged, counts.invalid,
        )  # fmt: skip
        run.errors = list(self.kept)

    def _report(self, phase: str, counts: Counts, rows_total: int | None) -> None:
        if self.on_progress:
            done = self.bytes_read
            if rows_total:  # reading the spool, not the file: the share of rows says how far
                done = self.file.size * counts.rows // rows_total
            self.on_progress(Progress(phase, counts.rows, done, self.file.size))

    def _finish(
        self, status: str, *, counts: Counts | None = None, message: KokyakuError | None = None
    ) -> ImportRun:
        with self.db.session() as s:
            run = s.get(ImportRun, self.run_id)
            assert run is not None
            run.status = status
            run.finished_at = utcnow()
            if counts is not None:
                self._save_progress(s, counts)
                run.rows_total = counts.rows if run.rows_total is None else run.rows_total
            if message is not None:
                run.message = message.message[:500]
                run.message_params = {k: _plain(v) for k, v in message.params.items()}
                if isinstance(message, ValidationFailed):
                    run.errors = [{"row": None, "field": f, "column": f, "message": m, "params": p}
                                  for f, m, p in message.problems]  # fmt: skip
            s.flush()
            s.expunge(run)
        return run


class _AppendErrors(ErrorFile):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._fh = path.open("a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh)


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def file_error_text(run: ImportRun, locale: str) -> str | None:
    if not run.message:
        return None
    return gettext(locale, run.message, **(run.message_params or {}))


__all__ = ["ImportFileError", "Options", "Progress", "run_import", "get_run", "list_runs", "create_run"]
