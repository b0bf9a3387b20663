"""Import CDNOW_sample.txt through the normal order path: one customer per CDNOW id, bulk_insert_orders."""

from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from kokyaku.commerce.bulk import bulk_insert_orders
from kokyaku.customers.bulk import Prospect, create_prospects
from tests.conftest import TEST_ACTOR

CDNOW = Path("/work/shared/data/cdnow/CDNOW_sample.txt")
if not CDNOW.exists():
    CDNOW = Path(__file__).resolve().parents[3] / "shared/data/cdnow/CDNOW_sample.txt"
TOKYO = ZoneInfo("Asia/Tokyo")


def import_cdnow(session: Session, currency: str = "USD") -> dict[str, int]:
    """Create the 2,357 customers and 6,919 orders (dollars in cents); returns CDNOW id -> customer id."""
    assert CDNOW.exists(), f"CDNOW sample not found at {CDNOW}"
    rows = [line.split() for line in CDNOW.read_text().splitlines() if line.strip()]
    cdnow_ids = sorted({r[0] for r in rows})
    ids = create_prospects(
        session,
        actor=TEST_ACTOR,
        prospects=[Prospect(name=f"CDNOW {i}", identities=[], source="import") for i in cdnow_ids],
    )
    customer = dict(zip(cdnow_ids, ids, strict=True))
    orders = []
    for n, (master, _sample, day, cds, dollars) in enumerate(rows):
        when = datetime.combine(datetime.strptime(day, "%Y%m%d").date(), time(14, 30), TOKYO)
        orders.append({
            "customer_id": customer[master], "channel": "online", "ordered_at": when, "currency": currency,
            "external_id": f"cdnow-{n}",
            "lines": [{"name": f"{cds} CDs", "quantity": 1, "unit_price": round(float(dollars) * 100)}],
        })  # fmt: skip
    bulk_insert_orders(session, orders, actor=TEST_ACTOR, timeline=False)
    return customer
