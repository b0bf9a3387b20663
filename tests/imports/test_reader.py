"""Reading files as users bring them: the encodings Excel writes, and clear errors for bad files."""

import codecs
from pathlib import Path

import pytest

from kokyaku.imports import values
from kokyaku.imports.reader import (
    SAMPLE_BYTES,
    BinaryFile,
    CsvFile,
    EmptyFile,
    ExcelWorkbook,
    FileTooLarge,
    MalformedCsv,
    NoHeader,
    NoRows,
    Undecodable,
)
from tests.imports.helpers import JA_HEADER, person, write_csv


@pytest.mark.parametrize(
    ("encoding", "label"), [("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8 (BOM)"), ("cp932", "Shift_JIS")]
)
def test_each_encoding_reads_the_same_japanese_text(tmp_path: Path, encoding: str, label: str) -> None:
    rows = [JA_HEADER, person(1), ["髙橋 ①子", "たかはし", "t@example.jp", "", "", "", "", "女", ""]]
    path = write_csv(tmp_path / "c.csv", rows, encoding)
    f = CsvFile(path)
    assert f.encoding.label == label
    assert f.header == JA_HEADER  # no BOM left on the first header
    read = [cells for _row, cells in f.rows()]
    # CP932 has NEC's ① and the 髙 variant, which Shift_JIS proper lacks: Excel writes them.
    assert read == rows[1:]


def test_a_late_non_ascii_byte_still_decides_the_encoding(tmp_path: Path) -> None:
    ascii_rows = [["name", "email"]] + [[f"user {i}", f"u{i}@example.com"] for i in range(60_000)]
    path = write_csv(tmp_path / "late.csv", [*ascii_rows, ["山田 太郎", "yamada@example.jp"]], "cp932")
    assert path.stat().st_size > SAMPLE_BYTES
    f = CsvFile(path)
    assert f.encoding.label == "Shift_JIS"
    assert list(f.rows())[-1][1] == ["山田 太郎", "yamada@example.jp"]


def test_tab_separated_and_quoted_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text('name\tnote\n"A"\t"line one\nline two"\nB\tx\n', encoding="utf-8")
    f = CsvFile(path)
    assert f.delimiter == "\t"
    # a cell over two lines is one spreadsheet row: B is row 3
    assert list(f.rows()) == [(2, ["A", "line one\nline two"]), (3, ["B", "x"])]


def test_blank_rows_are_skipped_but_keep_their_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", [["name"], ["A"], [""], ["B"], [",,"]])
    assert [row for row, _c in CsvFile(path).rows()] == [2, 4, 5]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", EmptyFile),
        (b"\r\n \r\n", EmptyFile),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", BinaryFile),
        (b"name,email\nA,\x00\x00\n", BinaryFile),
        (b"PK\x03\x04\x14\x00\x06\x00", ExcelWorkbook),
        (b",,,\nA,B,C,D\n", NoHeader),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, content: bytes, error: type[Exception]) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(error):
        f = CsvFile(path)
        list(f.rows())


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", [JA_HEADER])
    with pytest.raises(NoRows):
        CsvFile(path).check_has_rows()


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", [JA_HEADER] + [person(i) for i in range(2000)])
    with pytest.raises(FileTooLarge) as caught:
        CsvFile(path, max_bytes=100 * 1024)
    assert caught.value.params == {"limit": 0} or "limit" in caught.value.params
    CsvFile(path)  # no limit unless one is given (the CLI)


def test_unclosed_quote_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('name,email\nA,a@example.jp\n"B,b@example.jp\nC,c@example.jp\n', encoding="utf-8")
    with pytest.raises(MalformedCsv) as caught:
        list(CsvFile(path).rows())
    assert caught.value.params["row"] == 3
    assert "Row 3" in str(caught.value)


def test_text_that_stops_being_utf8_names_the_row(tmp_path: Path) -> None:
    good = "name\n" + "".join(f"名前{i}\n" for i in range(150_000))  # past the 1 MB sample
    path = tmp_path / "mixed.csv"
    path.write_bytes(good.encode("utf-8") + "壊れた\n".encode("cp932"))
    f = CsvFile(path)
    assert f.encoding.label == "UTF-8"
    with pytest.raises(Undecodable) as caught:
        list(f.rows())
    assert caught.value.params["row"] > 140_000


def test_utf16_with_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "u16.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "氏名\tメール\n山田\ty@example.jp\n".encode("utf-16-le"))
    f = CsvFile(path)
    assert f.header == ["氏名", "メール"] and list(f.rows()) == [(2, ["山田", "y@example.jp"])]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1990-01-02", "1990-01-02"),
        ("1990/1/2", "1990-01-02"),
        ("19900102", "1990-01-02"),
        ("1990年1月2日", "1990-01-02"),
        ("平成2年1月2日", "1990-01-02"),
        ("H2.1.2", "1990-01-02"),
        ("令和元年5月1日", "2019-05-01"),
        ("昭和64年1月7日", "1989-01-07"),
        ("1990/01/02 00:00", "1990-01-02"),
    ],
)
def test_dates_in_japanese_formats(text: str, expected: str) -> None:
    assert values.parse_date(text).isoformat() == expected


@pytest.mark.parametrize("text", ["1990/13/01", "平成32年1月1日x", "yesterday", "令和1年4月30日"])
def test_bad_dates(text: str) -> None:
    with pytest.raises(ValueError, match="Must be a date"):
        values.parse_date(text)


def test_cells_genders_amounts_prefectures() -> None:
    assert [values.parse_gender(g) for g in ("男", "女性", "M", "f", "その他", "不明")] == [
        "male",
        "female",
        "male",
        "female",
        "other",
        "unknown",
    ]
    assert values.parse_amount("¥1,200") == 1200 and values.parse_amount("1200円") == 1200
    assert values.parse_amount("12.50", 2) == 1250
    assert [values.canonical_prefecture(p) for p in ("東京", "Tokyo", "大阪", "北海道", "京都")] == [
        "東京都",
        "東京都",
        "大阪府",
        "北海道",
        "京都府",
    ]
    assert values.cell("'=1+1") == "=1+1" and values.cell("'abc") == "'abc"
    assert values.cell("ＡＢＣ　１２３ ") == "ABC 123"
