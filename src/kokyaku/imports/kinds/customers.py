"""People and companies: cells -> customers.schemas.CustomerUpdate (the API's rules), identities through the
kit normalisers (fast path in imports/fastnorm.py), written by customers.bulk.upsert_customers."""

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.auth.models import User
from kokyaku.customers import bulk
from kokyaku.customers.models import COMPANY, PERSON
from kokyaku.customers.schemas import CustomerUpdate
from kokyaku.imports import values as v
from kokyaku.imports.fastcheck import FastCheck
from kokyaku.imports.fastnorm import fast_email, fast_phone
from kokyaku.imports.kinds import (
    Cells,
    Context,
    Importer,
    KnownKeys,
    Outcome,
    Problem,
    first,
    pydantic_problems,
)
from kokyaku.imports.mapping import CUSTOM_PREFIX, custom_defs
from kokyaku.kit.normalize import NormalizationError, normalize_external_id

# Cells copied to the schema as they are (after the cell clean-up); the schema normalises and checks them.
_PLAIN = ("name_kana", "postal_code", "city", "street", "job_title", "industry", "website", "source",
          "channel", "note")  # fmt: skip
_LOCALES = {"ja": "ja", "日本語": "ja", "japanese": "ja", "jp": "ja",
            "en": "en", "英語": "en", "english": "en"}  # fmt: skip
_MAX_EXTERNAL = 200
_FAST = FastCheck(CustomerUpdate)  # the schema's rules without building the model (imports/fastcheck.py)


class CustomerImporter(Importer):
    kind = "customers"
    customer_kind = PERSON
    # ~25 rows in six tables per customer: a bigger transaction rewrites each hot index page fewer times.
    # At 1,000,000 customers on SQLite: 20,000 rows a batch 87 s of writing, 50,000 75 s, 100,000 73 s; a
    # batch of 50,000 holds the write lock ~4 s, well within the 10 s other writers wait for it.
    batch_rows = 50_000
    sqlite_bulk = True  # bulk.upsert_customers checks every id it writes in its own transaction
    grows = ("customers", "customer_identities")

    def __init__(self, session: Session, context: Context) -> None:
        super().__init__(session, context)
        self.defs = {d.key: d for d in custom_defs(session, self.kind)}
        users = session.execute(select(User.id, User.email, User.name)).all()
        self.users: dict[str, int] = {}
        for uid, email, name in users:
            self.users.setdefault(name.strip(), uid)
            self.users[email.lower()] = uid

    def parse(self, row: int, cells: Cells) -> tuple[Any | None, list[Problem]]:
        problems: list[Problem] = []
        data: dict[str, Any] = {}
        record = bulk.UpsertRow(row=row, kind=self.customer_kind)

        def bad(fld: str, message: str, **params: Any) -> None:
            problems.append((row, fld, message, params))

        raw_id = first(cells, "kokyaku_id")
        if raw_id:
            try:
                record.customer_id = v.parse_int(raw_id)
            except ValueError as exc:
                bad("kokyaku_id", str(exc))
        external = first(cells, "external_id")
        if external:
            source = (first(cells, "external_source") or self.context.source)[:50]
            try:
                if len(external) > _MAX_EXTERNAL:
                    raise NormalizationError("At most {max_length} characters.")
                record.external_ids.append((source, normalize_external_id(external)))
            except NormalizationError as exc:
                bad("external_id", str(exc), max_length=_MAX_EXTERNAL)
        name = first(cells, "name") or v.join_name(first(cells, "last_name"), first(cells, "first_name"))
        if name:
            data["name"] = name
        kana = first(cells, "name_kana") or v.join_name(
            first(cells, "last_name_kana"), first(cells, "first_name_kana")
        )
        if kana:
            data["name_kana"] = kana
        for fld, attr, limit, normalise in (
            ("email", "emails", 254, fast_email), ("phone", "phones", 30, fast_phone),
        ):  # fmt: skip
            out = getattr(record, attr)
            for text in cells.get(fld, []) + cells.get(f"other_{attr}", []):
                for item in v.split_identities(text):
                    if len(item) > limit:
                        bad(fld, "At most {max_length} characters.", max_length=limit)
                        continue
                    try:
                        value = normalise(item)
                    except NormalizationError as exc:
                        bad(fld, str(exc))
                        continue
                    if value not in out:
                        out.append(value)
        for fld in _PLAIN:
            plain = cells.get(fld)
            if plain and fld not in data:
                data[fld] = plain[0]
        self._special(cells, data, record, bad)
        interests = [t for text in cells.get("interests", []) for t in v.split_list(text)]
        if interests:
            data["interests"] = interests
        for key, d in self.defs.items():
            given = first(cells, CUSTOM_PREFIX + key)
            if given:
                try:
                    record.custom[key] = bulk.custom_value(d, given)
                except ValueError as exc:
                    bad(CUSTOM_PREFIX + key, str(exc))
        checked = _FAST.values(data)
        if checked is None:
            try:
                model = CustomerUpdate.model_validate(data)
            except ValidationError as exc:
                problems += pydantic_problems(row, exc)
                return None, problems
            checked = {fld: getattr(model, fld) for fld in data}
        if problems:
            return None, problems
        for fld, value in checked.items():
            if fld == "interests":
                record.interests = value
            elif value is not None:
                record.fields[fld] = value
        if not (record.fields or record.emails or record.phones or record.external_ids or record.custom):
            bad("name", "This field is required.")
            return None, problems
        return record, []

    def _special(self, cells: Cells, data: dict[str, Any], record: bulk.UpsertRow, bad: Any) -> None:
        """The cells that need converting before the schema sees them."""
        text = first(cells, "birthday")
        if text:
            try:
                data["birthday"] = v.parse_date(text)
            except ValueError as exc:
                bad("birthday", str(exc))
        text = first(cells, "gender")
        if text:
            try:
                data["gender"] = v.parse_gender(text)
            except ValueError as exc:
                bad("gender", str(exc))
        text = first(cells, "prefecture")
        if text:
            data["prefecture"] = v.canonical_prefecture(text)
        text = first(cells, "address")
        if text:
            prefecture, rest = v.split_address(text)
            if prefecture and "prefecture" not in data:
                data["prefecture"] = prefecture
            if rest and not first(cells, "street"):
                data["street"] = rest
        text = first(cells, "company_size")
        if text:
            try:
                data["company_size"] = v.company_size(text)
            except ValueError as exc:
                bad("company_size", str(exc))
        text = first(cells, "locale")
        if text:
            locale = _LOCALES.get(text.lower())
            if locale is None:
                bad("locale", v.BAD_CHOICE)
            else:
                data["locale"] = locale
        text = first(cells, "owner")
        if text:
            owner = self.users.get(text.lower()) or self.users.get(text)
            if owner is None:
                bad("owner", "No user has this email or name.")
            else:
                data["owner_id"] = owner
        text = first(cells, "company")
        if text:
            record.company_name = text

    def apply(
        self, session: Session, *, actor: Actor, records: list[Any], write: bool, known: KnownKeys | None
    ) -> Outcome:
        result = bulk.upsert_customers(
            session, actor=actor, rows=records, write=write, known=known, audit_rows=self.audit_rows
        )
        return Outcome(result.created, result.updated, result.unchanged, result.errors, result.keys)


class CompanyImporter(CustomerImporter):
    kind = "companies"
    customer_kind = COMPANY
