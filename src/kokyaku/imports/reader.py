"""Reading CSV files as Excel and shop systems write them: the encoding is detected (UTF-8, UTF-8 with
BOM, Shift_JIS/CP932, then charset-normalizer as a last resort), rows are streamed with their spreadsheet row
number (the header is row 1); empty, binary, oversized or malformed files are refused with a clear error."""

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kokyaku.errors import KokyakuError

SAMPLE_BYTES = 1 << 20
READ_BUFFER = 1 << 16
# csv's own cell limit (131,072 characters) also stops an unclosed quote early instead of at the file's end.
CELL_LIMIT = csv.field_size_limit()
_ENCODING_LABELS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 (BOM)", "cp932": "Shift_JIS", "utf-16": "UTF-16",
                    "euc_jp": "EUC-JP"}  # fmt: skip


class ImportFileError(KokyakuError):
    """A problem with the file as a whole: nothing of it is imported."""

    code = "import_file_invalid"
    status = 400


class EmptyFile(ImportFileError):
    code = "import_file_empty"
    message = "The file is empty."


class NoRows(ImportFileError):
    code = "import_file_no_rows"
    message = "The file has a header row but no data rows."


class BinaryFile(ImportFileError):
    code = "import_file_binary"
    message = "This is not a CSV text file (it contains binary data)."


class ExcelWorkbook(ImportFileError):
    code = "import_file_excel"
    message = "This is an Excel workbook. Save it as CSV (UTF-8 or Shift_JIS) and upload that file."


class FileTooLarge(ImportFileError):
    code = "import_file_too_large"
    status = 413
    message = "The file is larger than the limit of {limit} MB."


class Undecodable(ImportFileError):
    code = "import_file_encoding"
    message = "Row {row}: the text is not valid {encoding}. Save the file as CSV UTF-8 and try again."


class MalformedCsv(ImportFileError):
    code = "import_file_malformed"
    message = "Row {row}: a quoted cell is not closed, or a cell is over {limit} characters."


class NoHeader(ImportFileError):
    code = "import_file_no_header"
    message = "The first row must name the columns."


@dataclass(frozen=True)
class Encoding:
    codec: str  # the Python codec name used to read the file
    label: str  # what users are shown ("Shift_JIS")


def _decodes(data: bytes, codec: str) -> str | None:
    """The text if `data` is valid in `codec`; a character cut at the end of the sample is allowed."""
    try:
        return codecs.getincrementaldecoder(codec)(errors="strict").decode(data, final=False)
    except UnicodeDecodeError:
        return None


def _mostly_halfwidth_kana(text: str) -> bool:
    # EUC-JP bytes also decode as CP932, but as a string of half-width katakana; real Shift_JIS files are
    # mostly kanji and full-width kana.
    wide = sum(1 for ch in text if ord(ch) > 0x7F)
    half = sum(1 for ch in text if "\uff61" <= ch <= "\uff9f")
    return wide > 0 and half / wide > 0.5


def detect_encoding(path: Path) -> Encoding:
    """BOM, then strict UTF-8, then CP932, then charset-normalizer; refuses empty and binary files."""
    with path.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)
        if not head.strip():
            raise EmptyFile()
        if head.startswith(codecs.BOM_UTF8):
            return Encoding("utf-8-sig", _ENCODING_LABELS["utf-8-sig"])
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return Encoding("utf-16", _ENCODING_LABELS["utf-16"])
        if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
            raise ExcelWorkbook()
        sample = head
        # An ASCII start says nothing about the encoding: read on to the first chunk that has other bytes.
        # That chunk starts on a character boundary in every candidate encoding: the one before is ASCII.
        while sample.isascii() and b"\x00" not in sample:
            chunk = fh.read(SAMPLE_BYTES)
            if not chunk:
                return Encoding("utf-8", _ENCODING_LABELS["utf-8"])
            sample = chunk
    if b"\x00" in sample:
        raise BinaryFile()
    if _decodes(sample, "utf-8") is not None:
        return Encoding("utf-8", _ENCODING_LABELS["utf-8"])
    text = _decodes(sample, "cp932")
    if text is not None and not (_mostly_halfwidth_kana(text) and _decodes(sample, "euc_jp") is not None):
        return Encoding("cp932", _ENCODING_LABELS["cp932"])
    if _decodes(sample, "euc_jp") is not None:
        return Encoding("euc_jp", _ENCODING_LABELS["euc_jp"])
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None or not best.encoding:
        raise BinaryFile()
    return Encoding(best.encoding, _ENCODING_LABELS.get(best.encoding, best.encoding))


class _CountingReader(io.RawIOBase):
    """Counts the bytes read, for progress by position in the file."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n  # type: ignore[no-any-return]

    def close(self) -> None:
        self.raw.close()
        super().close()


def _delimiter(first_line: str) -> str:
    # Excel writes commas; "Unicode text" exports are tab-separated; some European settings use semicolons.
    counts = {d: first_line.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class CsvFile:
    """A CSV file on disk: its encoding, delimiter and header, and a stream of (row number, cells)."""

    def __init__(self, path: str | Path, *, max_bytes: int | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        try:
            self.size = self.path.stat().st_size
        except OSError as exc:
            raise ImportFileError("The file {name} cannot be read.", name=self.name) from exc
        if max_bytes is not None and self.size > max_bytes:
            raise FileTooLarge(limit=max_bytes // (1024 * 1024))
        if self.size == 0:
            raise EmptyFile()
        self.encoding = detect_encoding(self.path)
        self.bytes_read = 0
        self.delimiter = ","
        self.header = self._read_header()

    def _read_header(self) -> list[str]:
        for _row, cells in self._records(header_only=True):
            header = [c.strip() for c in cells]
            if not any(header):
                raise NoHeader()
            return header
        raise EmptyFile()

    def _records(self, *, header_only: bool = False) -> Iterator[tuple[int, list[str]]]:
        raw = _CountingReader(self.path.open("rb", buffering=0))
        text = io.TextIOWrapper(io.BufferedReader(raw, READ_BUFFER), encoding=self.encoding.codec, newline="")
        row = 0
        try:
            lines = _checked_lines(text)
            if header_only:
                first = next(lines, "")
                self.delimiter = _delimiter(first)
                lines = _chain(first, lines)
            reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
            for cells in reader:
                row += 1
                self.bytes_read = raw.count
                yield row, cells
        except csv.Error as exc:
            raise MalformedCsv(row=row + 1, limit=f"{CELL_LIMIT:,}") from exc
        except UnicodeDecodeError as exc:
            raise Undecodable(row=row + 1, encoding=self.encoding.label) from exc
        finally:
            text.close()

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Data rows as (spreadsheet row number, cells); blank rows are skipped, their numbers kept."""
        records = self._records()
        next(records, None)  # the header
        for row, cells in records:
            if any(cells):
                yield row, cells

    def check_has_rows(self) -> None:
        for _ in self.rows():
            return
        raise NoRows()

    def preview(self, limit: int = 20) -> list[list[str]]:
        out = []
        for _row, cells in self.rows():
            out.append(cells)
            if len(out) >= limit:
                break
        return out


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def _checked_lines(text: io.TextIOWrapper) -> Iterator[str]:
    # NUL never belongs in a CSV (and PostgreSQL refuses it in text): the file is binary or corrupt.
    for line in text:
        if "\x00" in line:
            raise BinaryFile()
        yield line
