"""Export of customers (the customer list's filters, or a segment) and orders (one row per line) to CSV
(UTF-8 with BOM, so Excel reads Japanese) and XLSX (openpyxl, write-only), headers in the user's language.

Rows are read in keyset pages through the domains' list functions and written as they come, so memory does
not grow with the export. Text cells that a spreadsheet would run as a formula (= + - @, tab, CR) get a
leading apostrophe; the importer removes it again, so an export imports back without changes."""

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from babel.numbers import get_currency_precision
from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.auth.models import User
from kokyaku.commerce import service as commerce
from kokyaku.customers import service as customers
from kokyaku.customers.models import Customer, Identity, Interest
from kokyaku.db import Database
from kokyaku.i18n import gettext
from kokyaku.imports.mapping import custom_defs
from kokyaku.imports.values import FORMULA_START
from kokyaku.kit.normalize import format_phone_national
from kokyaku.kit.time import to_local

PAGE = 1000
FORMATS = ("csv", "xlsx")
CUSTOMER_COLUMNS = [
    ("kokyaku_id", "Kokyaku ID"), ("name", "Name"), ("name_kana", "Kana"), ("email", "Email"),
    ("other_emails", "Other emails"), ("phone", "Phone"), ("other_phones", "Other phones"),
    ("external_id", "External ID"), ("external_source", "External ID source"), ("birthday", "Birthday"),
    ("gender", "Gender"), ("postal_code", "Postal code"), ("prefecture", "Prefecture"), ("city", "City"),
    ("street", "Street"), ("company", "Company"), ("job_title", "Job title"), ("industry", "Industry"),
    ("company_size", "Company size"), ("website", "Website"), ("owner", "Owner"), ("source", "Source"),
    ("channel", "Channel"), ("locale", "Language"), ("note", "Note"), ("interests", "Interests"),
]  # fmt: skip
ORDER_COLUMNS = [
    ("order_id", "Order ID"), ("ordered_at", "Order date"), ("customer_id", "Kokyaku ID"),
    ("customer_email", "Email"), ("customer_name", "Customer"), ("channel", "Channel"), ("status", "Status"),
    ("currency", "Currency"), ("sku", "SKU"), ("product_name", "Product name"), ("quantity", "Quantity"),
    ("unit_price", "Unit price"), ("returned_quantity", "Returned quantity"), ("line_total", "Line total"),
    ("order_total", "Order total"),
]  # fmt: skip
_GENDER_LABELS = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}


def neutralise(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


@dataclass
class Export:
    """What to export: rows (the header first) and the name the download gets."""

    filename: str
    rows: Iterator[list[Any]]


# ---------------------------------------------------------------- customers


def _pages(
    session: Session, filters: customers.CustomerFilters, segment_id: int | None, tz: str
) -> Iterator[list[Customer]]:
    cursor: str | None = None
    while True:
        if segment_id is not None:
            from kokyaku.segments import service as segments

            segment = segments.get_segment(session, segment_id)
            page = segments.members(session, segment, tz, cursor=cursor, limit=PAGE)
        else:
            page = customers.list_customers(session, filters, cursor=cursor, limit=PAGE)
        if page.items:
            yield page.items
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def customer_rows(
    session: Session,
    filters: customers.CustomerFilters,
    *,
    locale: str,
    tz: str,
    segment_id: int | None = None,
) -> Iterator[list[Any]]:
    """The header, then one row per customer (people and companies as the filters choose)."""
    kind = filters.kind or "customers"
    defs = custom_defs(session, "companies" if kind == "company" else "customers")
    yield (
        [gettext(locale, label) for _k, label in CUSTOMER_COLUMNS]
        + [d.label_ja if locale == "ja" else d.label_en for d in defs]
        + [gettext(locale, "Created")]
    )
    owners = {uid: email for uid, email in session.execute(select(User.id, User.email))}
    for page in _pages(session, filters, segment_id, tz):
        ids = [c.id for c in page]
        idents: dict[int, dict[str, list[tuple[str, str | None]]]] = {}
        stmt = select(Identity.customer_id, Identity.kind, Identity.value, Identity.source).where(
            Identity.customer_id.in_(ids)
        )
        for cid, ikind, value, source in session.execute(stmt.order_by(Identity.id)):
            idents.setdefault(cid, {}).setdefault(ikind, []).append((value, source))
        tags: dict[int, list[str]] = {}
        for cid, tag in session.execute(
            select(Interest.customer_id, Interest.tag)
            .where(Interest.customer_id.in_(ids))
            .order_by(Interest.tag)
        ):
            tags.setdefault(cid, []).append(tag)
        company_ids = {c.company_id for c in page if c.company_id}
        companies: dict[int, str] = {}
        if company_ids:
            named = select(Customer.id, Customer.name).where(Customer.id.in_(company_ids))
            companies = {cid: name for cid, name in session.execute(named)}
        for c in page:
            mine = idents.get(c.id, {})
            emails = [v for v, _s in mine.get("email", [])]
            phones = [format_phone_national(v) for v, _s in mine.get("phone", [])]
            external = mine.get("external", [])
            values = {
                "kokyaku_id": c.id, "name": c.name, "name_kana": c.name_kana,
                "email": emails[0] if emails else c.email, "other_emails": "; ".join(emails[1:]),
                "phone": phones[0] if phones else (format_phone_national(c.phone) if c.phone else None),
                "other_phones": "; ".join(phones[1:]),
                "external_id": external[0][0] if external else None,
                "external_source": external[0][1] if external else None,
                "birthday": c.birthday.isoformat() if c.birthday else None,
                "gender": _gender(c.gender, locale),
                "postal_code": c.postal_code, "prefecture": c.prefecture, "city": c.city, "street": c.street,
                "company": companies.get(c.company_id) if c.company_id else None, "job_title": c.job_title,
                "industry": c.industry, "company_size": c.company_size, "website": c.website,
                "owner": owners.get(c.owner_id) if c.owner_id else None, "source": c.source,
                "channel": c.channel, "locale": c.locale, "note": c.note,
                "interests": "; ".join(tags.get(c.id, [])),
            }  # fmt: skip
            custom = c.custom or {}
            created = to_local(c.created_at, tz)
            yield (
                [values[k] for k, _label in CUSTOMER_COLUMNS]
                + [_cell(custom.get(d.key)) for d in defs]
                + [created.strftime("%Y-%m-%d %H:%M") if created else None]
            )


def _gender(value: str | None, locale: str) -> str | None:
    return gettext(locale, _GENDER_LABELS[value]) if value in _GENDER_LABELS else value


def _cell(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# ---------------------------------------------------------------- orders


def order_rows(
    session: Session, filters: commerce.OrderFilters, *, locale: str, tz: str
) -> Iterator[list[Any]]:
    """The header, then one row per order line, newest order first."""
    yield [gettext(locale, label) for _k, label in ORDER_COLUMNS]
    cursor: str | None = None
    while True:
        page = commerce.list_orders(session, filters, cursor=cursor, limit=PAGE)
        orders = page.items
        lines = commerce.lines_of(session, [o.id for o in orders])
        cids = sorted({o.customer_id for o in orders})
        found = session.execute(
            select(Customer.id, Customer.name, Customer.email).where(Customer.id.in_(cids))
        )
        people: dict[int, str] = {}
        emails: dict[int, str | None] = {}
        for cid, name, email in found:
            people[cid], emails[cid] = name, email
        for o in orders:
            scale = 10 ** get_currency_precision(o.currency)
            at = to_local(o.ordered_at, tz)
            for line in lines.get(o.id, []):
                values = {
                    "order_id": o.external_id, "ordered_at": at.strftime("%Y-%m-%d %H:%M:%S") if at else None,
                    "customer_id": o.customer_id, "customer_email": emails.get(o.customer_id),
                    "customer_name": people.get(o.customer_id), "channel": o.channel, "status": o.status,
                    "currency": o.currency, "sku": line.sku, "product_name": line.name,
                    "quantity": line.quantity,
                    "unit_price": _major(line.unit_price, scale), "returned_quantity": line.returned_quantity,
                    "line_total": _major(line.unit_price * line.quantity, scale),
                    "order_total": _major(o.total, scale),
                }  # fmt: skip
                yield [values[k] for k, _label in ORDER_COLUMNS]
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def _major(amount: int, scale: int) -> int | float:
    return amount if scale == 1 else amount / scale


# ---------------------------------------------------------------- formats


def csv_bytes(rows: Iterable[list[Any]], *, chunk_rows: int = 500) -> Iterator[bytes]:
    """UTF-8 with BOM, CRLF line ends (what Excel writes), formulas neutralised; yields chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    for n, row in enumerate(rows, start=1):
        writer.writerow(["" if v is None else neutralise(v) for v in row])
        if n % chunk_rows == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def write_xlsx(rows: Iterable[list[Any]], path: str, *, title: str = "Export") -> None:
    """A write-only workbook: rows go to disk as they come; text is never taken for a formula."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    try:
        for row in rows:
            cells = []
            for value in row:
                value = neutralise(value)
                if isinstance(value, str):
                    # XLSX cannot hold control characters; data written by older versions or other systems
                    # may have them, and one such cell must not abort the whole download half-way.
                    c = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
                    c.data_type = "s"  # openpyxl would store "=..." as a formula
                    cells.append(c)
                else:
                    cells.append(value)
            sheet.append(cells)
    except BaseException:
        # Finish the sheet's own temporary file now: left to the garbage collector, openpyxl's writer would
        # try to end its XML in a file that is already closed (an "exception ignored" at some later moment).
        with contextlib.suppress(Exception):
            sheet.close()
        raise
    workbook.save(path)


def xlsx_bytes(rows: Iterable[list[Any]], *, title: str = "Export") -> Iterator[bytes]:
    """The workbook built in a temporary file, then streamed out in chunks and deleted."""
    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    try:
        write_xlsx(rows, path, title=title)
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 16):
                yield chunk
    finally:
        os.unlink(path)


MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def stream(db: Database, what: str, fmt: str, **kwargs: Any) -> Iterator[bytes]:
    """An export in a read transaction of its own, so that a streamed response outlives the request's."""
    with db.session(write=False) as session:
        rows = customer_rows(session, **kwargs) if what == "customers" else order_rows(session, **kwargs)
        if fmt == "xlsx":
            yield from xlsx_bytes(rows, title=what)
        else:
            yield from csv_bytes(rows)


def write_file(db: Database, what: str, fmt: str, path: str, **kwargs: Any) -> int:
    """The export written to `path`; returns the number of data rows."""
    count = -1
    with db.session(write=False) as session:
        rows = customer_rows(session, **kwargs) if what == "customers" else order_rows(session, **kwargs)

        def counted() -> Iterator[list[Any]]:
            nonlocal count
            for row in rows:
                count += 1
                yield row

        if fmt == "xlsx":
            write_xlsx(counted(), path, title=what)
        else:
            with open(path, "wb") as fh:
                for chunk in csv_bytes(counted()):
                    fh.write(chunk)
    return max(count, 0)
