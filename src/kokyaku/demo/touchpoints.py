"""Demo touchpoints: emails opened, web visits, store visits, calls, inquiries and SNS reactions for the demo
customers, with their timeline entries. Busy customers get many, most get a few; where a customer has
orders, part of the touchpoints lead up to them (a newsletter click or a web visit days before an online
order, a store visit on the day of a store purchase). Vectorised with numpy and written in batches."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
from rich.progress import Progress
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from kokyaku.db import Database, utcnow
from kokyaku.timeline import entries
from kokyaku.timeline.models import Touchpoint

BATCH = 20_000  # customers per transaction
HISTORY_DAYS = 730
# (channel, type, share): what a mid-size Japanese retailer sees across its channels
MIX: list[tuple[str, str, float]] = [
    ("web", "page_view", 0.30), ("email", "email_open", 0.20), ("email", "email_click", 0.07),
    ("store", "visit", 0.10), ("sns", "sns_like", 0.07), ("sns", "sns_comment", 0.02),
    ("phone", "call", 0.07), ("inquiry", "inquiry", 0.05), ("chat", "chat", 0.04), ("ad", "ad_click", 0.04),
    ("web", "cart_add", 0.04),
]  # fmt: skip
_SHARES = np.array([m[2] for m in MIX]) / sum(m[2] for m in MIX)
PAGES = ["/", "/products/new", "/sale", "/products/coat-wool", "/products/tea-set", "/stores", "/blog/spring",
         "/products/skin-care", "/cart", "/mypage"]  # fmt: skip
CAMPAIGNS = ["春の新作のご案内", "夏のセール開催中", "秋冬コレクション", "年末年始の営業について",
             "会員様限定クーポン", "Spring arrivals", "Members-only coupon"]  # fmt: skip
STORES = ["渋谷店", "梅田店", "名古屋栄店", "福岡天神店", "札幌大通店", "横浜店"]
CALL_NOTES = ["配送日の確認", "商品の在庫について問い合わせ", "返品方法の相談", "ギフト包装の依頼",
              "ポイント残高の確認", "Asked about delivery times", "予約の変更"]  # fmt: skip
INQUIRY_NOTES = ["サイズ交換について", "商品の使い方について", "請求書の再発行依頼", "法人向け見積もり依頼",
                 "Question about international shipping"]  # fmt: skip
CHAT_NOTES = ["在庫確認", "クーポンが使えない", "配送状況の確認", "Order status question"]
VISIT_NOTES = ["新作を試着", "スタッフと相談して購入を検討", "イベントに参加", ""]


def _orders_by_customer(session: Session, lo: int, hi: int) -> dict[int, list[tuple[datetime, str]]]:
    """Orders of customers lo..hi (if the commerce demo ran first), to lead touchpoints up to them."""
    try:
        from kokyaku.commerce.models import Order
    except ImportError:  # commerce not installed: touchpoints stand alone
        return {}
    out: dict[int, list[tuple[datetime, str]]] = {}
    stmt = select(Order.customer_id, Order.ordered_at, Order.channel).where(Order.customer_id.between(lo, hi))
    for cid, at, channel in session.execute(stmt):
        out.setdefault(cid, []).append((at, channel))
    return out


def _summary(rng: np.random.Generator, channel: str, type_: str) -> tuple[str, dict[str, Any]]:
    if channel == "web":
        return "", {"url": PAGES[int(rng.integers(len(PAGES)))]}
    if channel == "email":
        return CAMPAIGNS[int(rng.integers(len(CAMPAIGNS)))], {}
    if channel == "store":
        return VISIT_NOTES[int(rng.integers(len(VISIT_NOTES)))], {
            "store": STORES[int(rng.integers(len(STORES)))]
        }
    if channel == "phone":
        return CALL_NOTES[int(rng.integers(len(CALL_NOTES)))], {}
    if channel == "inquiry":
        return INQUIRY_NOTES[int(rng.integers(len(INQUIRY_NOTES)))], {"form": "contact"}
    if channel == "chat":
        return CHAT_NOTES[int(rng.integers(len(CHAT_NOTES)))], {}
    if channel == "ad":
        return "", {"campaign": ("google", "instagram", "line")[int(rng.integers(3))]}
    return "", {}


def _lead_up(rng: np.random.Generator, ordered_at: datetime, channel: str) -> tuple[int, datetime]:
    """A touchpoint that plausibly led to an order: index into MIX and its time."""
    if channel == "store":
        return 3, ordered_at - timedelta(minutes=int(rng.integers(5, 90)))
    pick = (0, 2, 10, 9)[int(rng.integers(4))]  # web visit, email click, cart, ad click
    return pick, ordered_at - timedelta(hours=float(rng.exponential(48.0)))


def _batch_rows(
    rng: np.random.Generator, ids: np.ndarray, per_customer: float, now: datetime, orders: dict[int, Any]
) -> list[dict[str, Any]]:
    # Gamma-Poisson counts: a long tail of very engaged customers, many with one or two contacts.
    counts = rng.poisson(rng.gamma(0.8, per_customer / 0.8, len(ids)))
    rows: list[dict[str, Any]] = []
    total = int(counts.sum())
    kinds = rng.choice(len(MIX), total, p=_SHARES)
    # recent days are likelier: engagement decays, and the list grew over time
    ages = np.mod(rng.exponential(HISTORY_DAYS / 2.5, total), HISTORY_DAYS)
    k = 0
    for cid, n in zip(ids.tolist(), counts.tolist(), strict=True):
        theirs = orders.get(cid, [])
        for j in range(n):
            if theirs and j % 2 == 0:
                ordered_at, channel = theirs[int(rng.integers(len(theirs)))]
                idx, at = _lead_up(rng, ordered_at, channel)
            else:
                idx, at = int(kinds[k]), now - timedelta(days=float(ages[k]))
            k += 1
            channel, type_, _share = MIX[idx]
            summary, props = _summary(rng, channel, type_)
            rows.append({"customer_id": cid, "channel": channel, "type": type_, "at": at, "summary": summary,
                         "properties": props, "created_at": now})  # fmt: skip
    return rows


def generate_touchpoints(
    db: Database,
    *,
    customer_ids: Sequence[int] | np.ndarray,
    per_customer: float = 5.0,
    seed: int = 7,
    progress: Progress | None = None,
) -> int:
    """Touchpoints (and their timeline entries) for the given customers; returns how many were written."""
    ids = np.asarray(customer_ids, dtype=np.int64)
    if per_customer <= 0 or len(ids) == 0:
        return 0
    rng = np.random.default_rng(seed + 101)
    now = utcnow().replace(microsecond=0)
    task = progress.add_task("touchpoints", total=len(ids)) if progress else None
    table = cast(Table, Touchpoint.__table__)
    written = 0
    for offset in range(0, len(ids), BATCH):
        batch = ids[offset : offset + BATCH]
        # One transaction per batch: a killed run leaves whole batches, never half of one.
        with db.session() as session:
            orders = _orders_by_customer(session, int(batch.min()), int(batch.max()))
            rows = _batch_rows(rng, batch, per_customer, now, orders)
            if rows:
                result = session.execute(
                    insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
                )
                tp_ids = [r[0] for r in result]
                entries.bulk_add(session, [
                    {"customer_id": r["customer_id"], "at": r["at"], "kind": "touchpoint",
                     "channel": r["channel"], "summary": r["summary"], "ref_type": "touchpoint",
                     "ref_id": tid, "properties": {"type": r["type"]}}
                    for r, tid in zip(rows, tp_ids, strict=True)
                ])  # fmt: skip
            written += len(rows)
        if progress and task is not None:
            progress.advance(task, len(batch))
    return written
