"""One importer per kind of file: it turns a row's cells into a validated record (with the domain's own
schemas and normalisers, so the rules are those of the API) and writes a batch of records through the
domain's bulk functions."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor

# (row, field, msgid, params)
Problem = tuple[int, str, str, dict[str, Any]]
Key = tuple[str, str]
KnownKeys = Callable[[set[Key]], dict[Key, int]]
Cells = dict[str, list[str]]  # field -> the non-empty cells mapped to it, in column order
NO_CUSTOMER = {
    "id": "Customer {id} does not exist.",
    "external": "No customer has this customer ID.",
    "email": "No customer has this email address.",
    "phone": "No customer has this phone number.",
}


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[Problem] = field(default_factory=list)
    keys: dict[Key, int] = field(default_factory=dict)


@dataclass
class Context:
    """What every importer may need besides the cells: the shop's time zone and currency."""

    timezone: str = "Asia/Tokyo"
    currency: str = "JPY"
    source: str = "import"  # the source recorded for external ids without one


class Importer:
    """Base of the importers; subclasses set `kind` and implement `parse` and `apply`."""

    kind = ""
    run_keys = False  # True: also in the write pass, give `apply` the keys earlier batches of this run wrote
    audit_rows = True
    batch_rows = 5000  # rows per batch (one transaction each) unless the user chooses
    # True: on SQLite, write batches on one connection with a larger cache and without foreign-key checks
    # (service._bulk_connection); only for importers whose every reference is checked in the transaction
    sqlite_bulk = False
    # Tables this import grows and looks rows up in by key lists (`value IN (...)`): PostgreSQL analyses them
    # as they grow (service._write_batch), else its planner keeps the statistics of the small table it saw
    # and scans the whole table for each lookup.
    grows: tuple[str, ...] = ()

    def __init__(self, session: Session, context: Context) -> None:
        self.context = context

    def parse(self, row: int, cells: Cells) -> tuple[Any | None, list[Problem]]:
        """The row as a validated record, or the problems that make it invalid."""
        raise NotImplementedError

    def apply(
        self, session: Session, *, actor: Actor, records: list[Any], write: bool, known: KnownKeys | None
    ) -> Outcome:
        """Write (or with write=False only check) a batch of records; rows that fail are in `errors`."""
        raise NotImplementedError

    def group(self, record: Any) -> str | None:
        """Records with the same group (the lines of one order) stay in one batch."""
        return None

    def row_of(self, record: Any) -> int:
        return int(record.row)


def first(cells: Cells, name: str) -> str | None:
    values = cells.get(name)
    return values[0] if values else None


def pydantic_problems(row: int, exc: ValidationError, rename: dict[str, str] | None = None) -> list[Problem]:
    """pydantic errors as problems with our msgids (shared with the pages' form errors)."""
    from kokyaku.web.render import validation_problems

    out = []
    for fld, message, params in validation_problems(exc.errors()):
        top = fld.split(".")[0]
        out.append((row, (rename or {}).get(top, top), message, params))
    return out


def importer_for(kind: str, session: Session, context: Context) -> Importer:
    from kokyaku.imports.kinds.customers import CompanyImporter, CustomerImporter
    from kokyaku.imports.kinds.orders import OrderImporter
    from kokyaku.imports.kinds.products import ProductImporter
    from kokyaku.imports.kinds.touchpoints import TouchpointImporter

    classes: dict[str, type[Importer]] = {
        "customers": CustomerImporter,
        "companies": CompanyImporter,
        "products": ProductImporter,
        "orders": OrderImporter,
        "touchpoints": TouchpointImporter,
    }
    return classes[kind](session, context)
