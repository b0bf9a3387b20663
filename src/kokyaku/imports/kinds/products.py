"""Products, upserted by SKU through commerce.service (ProductIn / ProductUpdate are the API's rules).

Catalogues are thousands of rows, not millions, and commerce has no bulk product writer yet, so each new or
changed product goes through create_product / update_product (one audit row each); lookups are per batch."""

from dataclasses import dataclass, field
from typing import Any

from babel.numbers import get_currency_precision
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.commerce import service as commerce
from kokyaku.commerce.models import Product
from kokyaku.commerce.schemas import ProductIn, ProductUpdate
from kokyaku.errors import KokyakuError
from kokyaku.imports import values as v
from kokyaku.imports.kinds import Cells, Importer, KnownKeys, Outcome, Problem, first, pydantic_problems

_FIELDS = ("sku", "name", "category", "price", "currency")


@dataclass
class ProductRow:
    row: int
    values: dict[str, Any] = field(default_factory=dict)


def minor_digits(currency: str) -> int:
    try:
        return int(get_currency_precision(currency))
    except Exception:  # an unknown code: ProductIn refuses it with its own message
        return 0


class ProductImporter(Importer):
    kind = "products"
    grows = ("products",)

    def parse(self, row: int, cells: Cells) -> tuple[Any | None, list[Problem]]:
        data: dict[str, Any] = {k: first(cells, k) for k in ("sku", "name", "category", "currency")}
        data = {k: val for k, val in data.items() if val}
        price = first(cells, "price")
        if price:
            try:
                digits = minor_digits(data.get("currency") or self.context.currency)
                data["price"] = v.parse_amount(price, digits)
            except ValueError as exc:
                return None, [(row, "price", str(exc), {})]
        try:
            model = ProductUpdate.model_validate(data)
        except ValidationError as exc:
            return None, pydantic_problems(row, exc)
        if not model.sku:
            return None, [(row, "sku", "This field is required.", {})]
        return ProductRow(row, {k: getattr(model, k) for k in data}), []

    def apply(
        self, session: Session, *, actor: Actor, records: list[Any], write: bool, known: KnownKeys | None
    ) -> Outcome:
        out = Outcome()
        skus = sorted({r.values["sku"] for r in records})
        existing = {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(skus)))}
        # SKUs that earlier batches of a check-only run would have created
        seen: dict[str, int] = (
            {k[1]: ref for k, ref in known({("sku", s) for s in skus}).items()} if known else {}
        )
        for r in records:
            sku = r.values["sku"]
            product = existing.get(sku)
            if product is None and sku not in seen:
                missing = [f for f in ("name", "price") if f not in r.values]
                if missing:
                    out.errors += [(r.row, f, "This field is required.", {}) for f in missing]
                    continue
                if write:
                    data = ProductIn.model_validate({"currency": self.context.currency, **r.values})
                    try:
                        existing[sku] = commerce.create_product(session, actor=actor, data=data)
                    except KokyakuError as exc:
                        out.errors.append((r.row, exc.field or "sku", exc.message, exc.params))
                        continue
                seen[sku] = -r.row
                out.keys[("sku", sku)] = -r.row
                out.created += 1
            elif product is None:
                out.updated += 1  # created by an earlier row of a check-only run
            elif all(getattr(product, k) == val for k, val in r.values.items()):
                out.unchanged += 1
            else:
                if write:
                    changes = {k: val for k, val in r.values.items() if getattr(product, k) != val}
                    update = ProductUpdate.model_validate(changes)
                    commerce.update_product(session, actor=actor, product_id=product.id, data=update)
                out.updated += 1
        return out
