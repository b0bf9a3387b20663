"""An import file's rows as batches of validated records, read in this process or in a second one.

Reading, cleaning and checking the cells is pure Python and most of a check pass: ~60% of it for a
1,000,000-row customer file. For big files a second process (spawned, so it shares no threads or database
connections with this one) does it and hands over each batch pickled, while this process matches the
previous batch against the database and writes it: a two-core machine works on both at once. The batches
are the same either way (tests/imports/test_parse_in_child.py). As with any spawned process, a script that
imports big files itself needs the usual `if __name__ == "__main__":` guard (the `kokyaku` commands have it).
"""

import gc
import multiprocessing
import pickle
import traceback
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from kokyaku.errors import KokyakuError
from kokyaku.imports.kinds import Cells, Context, Importer, Problem, importer_for
from kokyaku.imports.reader import CsvFile
from kokyaku.imports.values import cell

# (records, raw cells by row number, problems of the rows that could not be parsed, rows in the batch)
Batch = tuple[list[Any], dict[int, list[str]], list[Problem], int]

# smaller files: starting the second process (~0.7 s) would cost more than it saves
CHILD_MIN_BYTES = 8 * 1024 * 1024
_PICKLE = pickle.HIGHEST_PROTOCOL
_BATCH, _END, _FAILED, _CRASHED = b"B", b"E", b"F", b"X"


@dataclass
class ParseSpec:
    """What reading an import file needs, in a form a second process can receive."""

    kind: str
    path: Path
    name: str
    max_bytes: int | None
    context: Context
    fields: list[tuple[int, str]]  # (column index, field) of the mapped columns
    batch_rows: int


class RowParser:
    """Rows -> batches of records; an importer's group (the lines of one order) stays in one batch."""

    def __init__(self, importer: Importer, spec: ParseSpec, file: CsvFile) -> None:
        self.importer, self.spec, self.file = importer, spec, file

    def batches(self, skip: int) -> Iterator[Batch]:
        importer, limit = self.importer, self.spec.batch_rows
        pending = _Pending()
        last_group: str | None = None
        seen = 0
        for row, cells in self.file.rows():
            seen += 1
            if seen <= skip:
                continue
            record, problems = self.parse(row, cells)
            group = importer.group(record) if record is not None else None
            if len(pending.raw) >= limit and (group is None or group != last_group):
                yield pending.take()
            pending.raw[row] = cells
            if record is not None:
                pending.records.append(record)
                last_group = group
            else:
                pending.invalid += problems
        if pending.records or pending.invalid:
            yield pending.take()

    def parse(self, row: int, cells: list[str]) -> tuple[Any | None, list[Problem]]:
        width = len(self.file.header)
        if len(cells) != width and not (len(cells) > width and not any(cells[width:])):
            message = "This row has {cells} cells but the header has {columns}."
            return None, [(row, "", message, {"cells": len(cells), "columns": width})]
        mapped: Cells = {}
        for i, fld in self.spec.fields:
            text = cells[i]
            if text:
                text = cell(text)
                if text:
                    mapped.setdefault(fld, []).append(text)
        return self.importer.parse(row, mapped)


class _Pending:
    """The batch being filled. Batches are handed on with take(), so that no suspended generator frame
    still holds one: the young-generation collection after each batch (service._young_gc_only) would
    otherwise walk its ~10^5 objects for nothing (40-60 ms a batch)."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.raw: dict[int, list[str]] = {}
        self.invalid: list[Problem] = []

    def take(self) -> Batch:
        batch = (self.records, self.raw, self.invalid, len(self.raw))
        self.records, self.raw, self.invalid = [], {}, []
        return batch


class Batches:
    """The batches of one pass over the file, with how far into the file they reach (for progress).
    `spooled` batches also come as the compressed pickle of (records, rows) that the all-or-nothing spool
    keeps, made by whichever process parsed them. An iterator object rather than a generator, for the
    reason given in _Pending."""

    def __init__(self, parser: RowParser, skip: int, spooled: bool) -> None:
        self._iter = parser.batches(skip)
        self._file = parser.file
        self.spooled = spooled
        self.bytes_read = 0
        self.spool_blob: bytes | None = None

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> Batch:
        batch = next(self._iter)
        self.bytes_read = self._file.bytes_read
        if self.spooled:
            self.spool_blob = spool_blob(batch[0], batch[3])
        return batch


class ChildBatches(Batches):
    """The same batches, parsed by a second process and read from a pipe."""

    def __init__(self, pipe: Pipe, spooled: bool) -> None:
        self._pipe = pipe
        self.spooled = spooled
        self.bytes_read = 0
        self.spool_blob = None

    def __next__(self) -> Batch:
        try:
            message = memoryview(self._pipe.recv_bytes())
        except EOFError:
            raise RuntimeError("The process reading the import file ended unexpectedly.") from None
        tag = bytes(message[:1])
        if tag == _END:
            raise StopIteration
        if tag == _FAILED:
            raise _rebuilt(pickle.loads(message[1:]))  # noqa: S301 - our own child process
        if tag == _CRASHED:
            raise RuntimeError("Reading the import file failed:\n" + bytes(message[1:]).decode())
        size = int.from_bytes(message[1:9], "little")
        head = message[9 : 9 + size]
        records, n_rows = pickle.loads(zlib.decompress(head) if self.spooled else head)  # noqa: S301
        raw, invalid, self.bytes_read = pickle.loads(message[9 + size :])  # noqa: S301
        self.spool_blob = bytes(head) if self.spooled else None
        return records, raw, invalid, n_rows


def spool_blob(records: list[Any], n_rows: int) -> bytes:
    return zlib.compress(pickle.dumps((records, n_rows), protocol=_PICKLE), 1)


@contextmanager
def batches(
    importer: Importer, spec: ParseSpec, file: CsvFile, *, skip: int, spooled: bool, db_url: str | None,
    in_child: bool | None = None,
) -> Iterator[Batches]:  # fmt: skip
    """The file's batches from `skip` rows on. `in_child`: None decides by the file's size; a second
    process needs a database it can open itself (`db_url`: not an in-memory SQLite)."""
    if in_child is None:
        in_child = file.size >= CHILD_MIN_BYTES
    if not in_child or not db_url or _in_memory(db_url):
        yield Batches(RowParser(importer, spec, file), skip, spooled)
        return
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main,
        args=(theirs, db_url, spec, skip, spooled),
        name="kokyaku-import-parse",
        daemon=True,
    )
    child.start()
    theirs.close()
    try:
        yield ChildBatches(ours, spooled)
    finally:
        ours.close()  # a child still sending fails on the closed pipe and ends
        child.join(timeout=5)
        if child.is_alive():
            child.terminate()
            child.join()


def _in_memory(url: str) -> bool:
    return url.startswith("sqlite") and make_url(url).database in (None, "", ":memory:")


def _child_main(pipe: Pipe, db_url: str, spec: ParseSpec, skip: int, spooled: bool) -> None:
    from kokyaku.db import Database

    gc.disable()  # as in the parent's import (service._young_gc_only): a batch is ~10^5 live objects
    try:
        db = Database(db_url)
        try:
            with db.session(write=False) as s:
                importer = importer_for(spec.kind, s, spec.context)
        finally:
            db.dispose()
        file = CsvFile(spec.path, max_bytes=spec.max_bytes, name=spec.name)
        for records, raw, invalid, n_rows in RowParser(importer, spec, file).batches(skip):
            head = pickle.dumps((records, n_rows), protocol=_PICKLE)
            if spooled:
                head = zlib.compress(head, 1)
            tail = pickle.dumps((raw, invalid, file.bytes_read), protocol=_PICKLE)
            pipe.send_bytes(b"".join((_BATCH, len(head).to_bytes(8, "little"), head, tail)))
            del records, raw, invalid, head, tail
            gc.collect(1)
        pipe.send_bytes(_END)
    except KokyakuError as exc:
        _send_quietly(pipe, _FAILED + pickle.dumps((type(exc), exc.args, exc.__dict__), protocol=_PICKLE))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent stopped reading (cancelled or failed): nothing to report to
    except BaseException:
        _send_quietly(pipe, _CRASHED + traceback.format_exc().encode())
    finally:
        pipe.close()


def _send_quietly(pipe: Pipe, data: bytes) -> None:
    with suppress(OSError):
        pipe.send_bytes(data)


def _rebuilt(state: tuple[type[KokyakuError], tuple[Any, ...], dict[str, Any]]) -> KokyakuError:
    """The child's error as the same class with the same msgid and params (the default pickling of an
    exception would call the class with the formatted text and lose the params that translation needs)."""
    cls, args, attrs = state
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(attrs)
    return exc
