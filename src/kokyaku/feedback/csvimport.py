"""Reviews from a CSV file (review-site exports): the file is read by the imports domain's reader (encoding
detection: UTF-8, BOM, Shift_JIS), columns are matched by Japanese or English header, every row is checked
first, and the valid rows go through reviews.import_reviews (idempotent by source and review id)."""

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.config import Settings
from kokyaku.errors import KokyakuError, ValidationFailed
from kokyaku.feedback.reviews import import_reviews
from kokyaku.feedback.schemas import ImportResult, ReviewIn
from kokyaku.imports.reader import CsvFile
from kokyaku.web.render import validation_problems

BATCH = 500
# field -> header names (compared after header_key: width-folded, lower-case, no spaces or punctuation)
HEADERS: dict[str, tuple[str, ...]] = {
    "source": ("source", "site", "platform", "ソース", "サイト", "媒体", "掲載サイト", "プラットフォーム"),
    "external_id": ("externalid", "reviewid", "id", "レビューid", "口コミid", "投稿id", "id番号"),
    "rating": ("rating", "stars", "score", "評価", "星", "点数", "評点", "スコア"),
    "title": ("title", "subject", "タイトル", "件名", "見出し"),
    "text": (
        "text",
        "review",
        "body",
        "comment",
        "content",
        "本文",
        "レビュー",
        "口コミ",
        "コメント",
        "内容",
    ),
    "author": ("author", "reviewer", "name", "user", "投稿者", "投稿者名", "ユーザー", "ユーザー名", "名前"),
    "posted_at": ("postedat", "date", "posted", "createdat", "投稿日", "投稿日時", "日付", "日時", "掲載日"),
    "url": ("url", "link", "リンク"),
    "customer_email": ("customeremail", "email", "mail", "メール", "メールアドレス", "顧客メール"),
    "customer_id": ("customerid", "kokyakuid", "顧客id"),
}
_PUNCT = re.compile(r"[\s_\-・:：()（）\[\]【】/.]+")
_JA_DATE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日(?:\s*(\d{1,2})[:時](\d{1,2})分?)?$")


class NoRequiredColumn(KokyakuError):
    code = "reviews_csv_column_missing"
    status = 400
    message = "The file has no column for {column}. Name a column {names}."


def header_key(name: str) -> str:
    return _PUNCT.sub("", unicodedata.normalize("NFKC", name).lower())


def map_header(header: list[str]) -> dict[int, str]:
    """Column index -> field, the first column that matches each field."""
    synonyms = {header_key(s): f for f, names in HEADERS.items() for s in names}
    out: dict[int, str] = {}
    for i, name in enumerate(header):
        f = synonyms.get(header_key(name))
        if f and f not in out.values():
            out[i] = f
    return out


def parse_rating(value: str) -> Any:
    value = unicodedata.normalize("NFKC", value).strip()
    if value and set(value) <= {"★", "☆"}:
        return value.count("★")
    try:
        number = float(value)
    except ValueError:
        return value  # pydantic names the problem
    return int(number) if number.is_integer() else value


def parse_time(value: str) -> Any:
    value = unicodedata.normalize("NFKC", value).strip()
    m = _JA_DATE.match(value)
    if m:
        y, mo, d, h, mi = m.groups()
        return datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0))
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return value  # ISO 8601 (with or without zone) or a problem pydantic names


@dataclass
class CsvResult:
    rows: int = 0
    result: ImportResult = field(default_factory=ImportResult)
    errors: list[tuple[int, str, str, dict[str, Any]]] = field(
        default_factory=list
    )  # row, field, msgid, params
    written: bool = False


def import_csv(
    session: Session,
    settings: Settings,
    *,
    actor: Actor,
    path: str | Path,
    source: str | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    base_url: str = "",
    max_bytes: int | None = None,
) -> CsvResult:
    """Check every row, then (unless dry_run, and only if all rows are valid or skip_invalid) import them in
    the caller's transaction. `source` fills rows without a source column."""
    csv = CsvFile(path, max_bytes=max_bytes)
    columns = map_header(csv.header)
    required = ["external_id", "rating", "posted_at"] + ([] if source else ["source"])
    for f in required:
        if f not in columns.values():
            raise NoRequiredColumn(column=f, names=" / ".join(HEADERS[f][:3] + HEADERS[f][-2:]))
    out = CsvResult()
    valid: list[tuple[int, ReviewIn]] = []
    for row, cells in csv.rows():
        out.rows += 1
        data: dict[str, Any] = {"source": source} if source else {}
        for i, f in columns.items():
            value = cells[i].strip() if i < len(cells) else ""
            if value:
                data[f] = (
                    parse_rating(value) if f == "rating" else parse_time(value) if f == "posted_at" else value
                )
        try:
            valid.append((row, ReviewIn.model_validate(data)))
        except ValidationError as exc:
            out.errors += [(row, f.split(".")[0], m, p) for f, m, p in validation_problems(exc.errors())]
    if dry_run or (out.errors and not skip_invalid):
        return out
    for start in range(0, len(valid), BATCH):
        batch = valid[start : start + BATCH]
        try:
            done = import_reviews(
                session, settings, actor=actor, reviews=[r for _, r in batch], base_url=base_url
            )
        except ValidationFailed as exc:
            # reviews.<i>.<field> -> the spreadsheet row
            for path_, message, params in exc.problems:
                parts = path_.split(".")
                row = batch[int(parts[1])][0] if len(parts) > 2 and parts[1].isdigit() else 0
                out.errors.append((row, parts[-1], message, params))
            if not skip_invalid:
                raise
            continue
        for name in ("created", "updated", "unchanged", "linked", "alerts", "followups"):
            setattr(out.result, name, getattr(out.result, name) + getattr(done, name))
    out.written = True
    return out
