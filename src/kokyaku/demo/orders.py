"""Demo products and orders grown from a repeat-buying process.

Each customer has a latent purchase rate (gamma across customers) and, after every purchase, a chance to
drop out for good (beta across customers): the BG/NBD story, so that most buyers buy once, some stay loyal
for years and many lapse. Purchases follow the Japanese retail calendar (year-end and oseibo in December,
New Year sales, Golden Week, ochugen in July, weekends). Simulated with numpy for whole blocks of customers,
written with the commerce bulk path (batched core inserts), and the metrics of each block are computed
set-based right after its orders.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from rich.progress import Progress
from sqlalchemy import insert, select

from kokyaku.commerce import service
from kokyaku.commerce.models import Product
from kokyaku.db import Database, utcnow

BLOCK = 20_000  # customers per transaction: a killed run leaves whole blocks
HISTORY_DAYS = 3 * 365
NON_BUYERS = 0.12  # prospects who never buy
MAX_ORDERS = 600  # per customer (about one order every two days over three years)
JST = timedelta(hours=9)

# (category, SKU prefix, [(name, yen)]) for a mid-size Japanese retailer with a gift business
CATALOGUE: list[tuple[str, str, list[tuple[str, int]]]] = [
    ("お茶・飲料", "TEA", [
        ("静岡煎茶 100g", 1080), ("宇治抹茶 30g", 2160), ("玄米茶 200g", 648), ("ほうじ茶 150g", 756),
        ("水出し緑茶ティーバッグ", 540), ("有機ルイボスティー", 972), ("ドリップコーヒー 10袋", 1296),
        ("コーヒー豆 中煎り 200g", 1620), ("麦茶 54袋", 378), ("甘酒 6本", 1944), ("和紅茶 50g", 1188),
        ("煎茶ティーバッグ 20袋", 864), ("抹茶ラテの素", 1058), ("柚子茶 480g", 1296), ("玉露 80g", 3240),
        ("黒豆茶 30袋", 1080), ("アイスコーヒー 1L×6本", 2376), ("炭酸水 500ml×24本", 2160),
        ("りんごジュース 1L×6本", 3888), ("梅ジュース 500ml", 1080),
    ]),
    ("和菓子・洋菓子", "SWT", [
        ("どら焼き 5個入", 1296), ("羊羹 詰め合わせ", 2700), ("最中 10個入", 1620),
        ("栗きんとん 6個", 2376), ("抹茶バウムクーヘン", 1944), ("焼き菓子アソート", 2160),
        ("チーズケーキ", 2592), ("季節の上生菓子 6個", 3024), ("かりんとう 3袋", 972),
        ("おかき詰め合わせ", 2160), ("フィナンシェ 10個", 2484), ("プリン 4個", 1728), ("大福 6個", 1296),
        ("せんべい 24枚", 1620), ("チョコレート 12粒", 3240), ("カステラ 1本", 2376), ("わらび餅", 1080),
        ("ロールケーキ", 1944), ("マカロン 8個", 2592), ("甘納豆", 864),
    ]),
    ("食品・調味料", "FD", [
        ("こしひかり 5kg", 3240), ("あきたこまち 2kg", 1404), ("丸大豆醤油 1L", 648),
        ("天然醸造味噌 750g", 1080), ("本みりん 500ml", 756), ("かつお節 削り節", 1296),
        ("利尻昆布 100g", 1620), ("干し椎茸 50g", 1296), ("梅干し 500g", 2376), ("ごま油 450g", 972),
        ("出汁パック 30袋", 1944), ("のり 10枚×3", 1620), ("ちりめんじゃこ", 1080),
        ("手延べそうめん 2kg", 3240), ("信州そば 6人前", 1944), ("讃岐うどん 8人前", 1620),
        ("カレールー 中辛", 540), ("はちみつ 500g", 2700), ("ジャム 3種セット", 2160),
        ("オリーブオイル 500ml", 2052),
    ]),
    ("お酒", "SAK", [
        ("純米大吟醸 720ml", 3850), ("純米酒 1.8L", 2970), ("芋焼酎 900ml", 1650), ("麦焼酎 720ml", 1430),
        ("梅酒 720ml", 1980), ("クラフトビール 6本", 2640), ("赤ワイン フルボディ", 2750),
        ("白ワイン 辛口", 2420), ("スパークリングワイン", 3300), ("日本酒 飲み比べ 3本", 4950),
        ("ウイスキー 700ml", 5500), ("ゆず酒 500ml", 1650), ("泡盛 720ml", 1870),
        ("にごり酒 720ml", 1540), ("日本酒 300ml×5本", 3520),
    ]),
    ("ギフト", "GFT", [
        ("お中元 ビールギフト", 5400), ("お中元 そうめん詰め合わせ", 4320),
        ("お中元 フルーツゼリー", 3780), ("お歳暮 ハムギフト", 5940), ("お歳暮 カニ缶詰め合わせ", 8640),
        ("お歳暮 蕎麦セット", 4860), ("カタログギフト 3,000円", 3300), ("カタログギフト 5,000円", 5500),
        ("カタログギフト 10,000円", 10800), ("出産内祝い タオルセット", 3240),
        ("快気祝い 焼き菓子", 3240), ("引き出物 バウムクーヘン", 4320), ("老舗の佃煮詰め合わせ", 5400),
        ("銘茶ギフト 3缶", 5400), ("高級果物 メロン", 10800), ("和牛すき焼き用 500g", 10800),
        ("海鮮漬け丼セット", 6480), ("名入れ日本酒", 6600), ("ギフト包装", 330),
        ("のし・メッセージカード", 110),
    ]),
    ("キッチン・食器", "KIT", [
        ("有田焼 湯呑み", 2750), ("美濃焼 茶碗", 1980), ("急須 常滑焼", 4950), ("箸 夫婦セット", 3300),
        ("漆塗り 汁椀", 4400), ("南部鉄器 鉄瓶", 16500), ("土鍋 6号", 6600), ("おろし金", 1650),
        ("曲げわっぱ 弁当箱", 7700), ("ガラスの冷茶グラス 2客", 3850), ("木製まな板", 4180),
        ("ステンレス保温ボトル", 3080), ("ふきん 5枚組", 1320), ("竹ざる", 2200),
        ("包丁 三徳 165mm", 8800),
    ]),
    ("日用品", "DLY", [
        ("今治タオル フェイス", 1320), ("今治タオル バス", 3850), ("ハンドソープ 詰め替え", 660),
        ("入浴剤 詰め合わせ", 1980), ("無添加石けん 3個", 1320), ("手ぬぐい", 1100),
        ("洗濯洗剤 詰め替え", 858), ("蚊取り線香", 880), ("使い捨てカイロ 30個", 990),
        ("マスク 50枚", 770), ("キッチンペーパー 4ロール", 528), ("歯ブラシ 4本", 660),
        ("ルームフレグランス", 3300), ("竹炭 消臭", 1650), ("ごみ袋 45L", 418),
    ]),
    ("コスメ・美容", "CSM", [
        ("化粧水 しっとり", 3300), ("乳液", 3520), ("美容液", 6600), ("日焼け止め SPF50", 2200),
        ("クレンジングオイル", 2750), ("洗顔フォーム", 1650), ("ハンドクリーム", 1320),
        ("リップクリーム", 880), ("シートマスク 7枚", 1980), ("ヘアオイル", 2640), ("シャンプー", 2420),
        ("トリートメント", 2640), ("椿油", 2200), ("ボディミルク", 2970), ("香水 30ml", 6380),
    ]),
    ("衣料・雑貨", "APL", [
        ("綿の靴下 3足", 1650), ("ストール", 4950), ("エコバッグ", 1980), ("扇子", 3300),
        ("折りたたみ傘", 3850), ("浴衣", 14300), ("甚平", 7700), ("ルームウェア", 6600), ("帽子", 4400),
        ("手袋", 3300), ("がま口財布", 5500), ("風呂敷", 2750), ("名刺入れ", 6600), ("キーケース", 4950),
        ("腕時計", 19800),
    ]),
    ("季節・行事", "SSN", [
        ("おせち 三段重", 21600), ("年越しそば セット", 3240), ("鏡餅", 1620), ("恵方巻", 1944),
        ("ひな人形 飾り", 16500), ("こいのぼり ミニ", 5500), ("母の日 カーネーション", 4400),
        ("父の日 ギフトセット", 5500), ("うちわ", 1100), ("お月見団子", 1080),
        ("ハロウィン お菓子", 1620), ("クリスマスケーキ", 4860), ("クリスマス シュトーレン", 3240),
        ("正月飾り しめ縄", 3850), ("敬老の日 ギフト", 4950),
    ]),
    ("文具・和紙", "STN", [
        ("万年筆", 11000), ("ボールペン 3色", 1650), ("一筆箋", 550), ("和紙 便箋セット", 1320),
        ("ご祝儀袋", 440), ("御朱印帳", 2200), ("手帳 2026", 2750), ("ノート 5冊", 1100), ("筆ペン", 660),
        ("ポチ袋 10枚", 385), ("はがき 季節の絵柄", 880), ("マスキングテープ 3巻", 990),
        ("レターセット", 1540), ("スタンプ", 1980), ("ブックカバー 革", 4400),
    ]),
    ("ペット用品", "PET", [
        ("国産 犬用おやつ", 880), ("猫用 かつお節", 660), ("ドッグフード 2kg", 3080),
        ("キャットフード 1.5kg", 2420), ("ペットシーツ 100枚", 1980), ("猫砂 7L", 1320), ("首輪", 2750),
        ("リード", 3300), ("ペット用ベッド", 6600), ("爪とぎ", 1540), ("おもちゃ ボール", 770),
        ("ブラシ", 1650), ("食器 陶器", 2200), ("ペット用 シャンプー", 1980), ("キャリーバッグ", 8800),
    ]),
]  # fmt: skip
GIFT_CATEGORIES = ("ギフト", "季節・行事")
CHANNELS = ["store", "online", "marketplace", "phone", "sns", "event", "other"]
CHANNEL_MIX = np.array([0.42, 0.33, 0.12, 0.05, 0.04, 0.02, 0.02])
# hour of day (Japan) of a purchase: shop hours for the store, evenings for online
HOURS_STORE = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 8, 10, 9, 9, 10, 11, 11, 10, 7, 5, 0, 0, 0], float)
HOURS_ONLINE = np.array([3, 2, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 6, 5, 4, 4, 4, 5, 6, 7, 9, 10, 9, 6], float)


@dataclass
class Catalogue:
    ids: np.ndarray
    skus: list[str]
    names: list[str]
    prices: np.ndarray
    popularity: np.ndarray  # probability of each product in an everyday order
    gift_popularity: np.ndarray  # the same within the gift categories, for the gift seasons


def catalogue_rows() -> list[dict[str, Any]]:
    """The demo catalogue: ~200 products across ten categories with yen prices."""
    rows = []
    for category, prefix, items in CATALOGUE:
        for i, (name, price) in enumerate(items, start=1):
            rows.append({"sku": f"{prefix}-{i:03d}", "name": name, "category": category, "price": price})
    return rows


def ensure_products(db: Database, rng: np.random.Generator) -> Catalogue:
    """Insert the catalogue products that are missing (by SKU) and return all of them with popularities."""
    rows = catalogue_rows()
    with db.session() as session:
        have = set(session.scalars(select(Product.sku)))
        now = utcnow()
        new = [{**r, "currency": "JPY", "created_at": now} for r in rows if r["sku"] not in have]
        if new:
            session.execute(insert(Product), new)
        by_sku = {
            p.sku: p
            for p in session.scalars(select(Product).where(Product.sku.in_([r["sku"] for r in rows])))
        }
    products = [by_sku[r["sku"]] for r in rows]
    # Zipf-like popularity over a random order: a few best sellers, a long tail.
    rank = rng.permutation(len(products)) + 1
    pop = 1.0 / rank**0.9
    gift = np.array([p.category in GIFT_CATEGORIES for p in products])
    return Catalogue(
        ids=np.array([p.id for p in products]),
        skus=[p.sku for p in products],
        names=[p.name for p in products],
        prices=np.array([p.price for p in products]),
        popularity=pop / pop.sum(),
        gift_popularity=np.where(gift, pop, 0) / np.where(gift, pop, 0).sum(),
    )


def seasonal_intensity(start: date, days: int) -> np.ndarray:
    """Relative purchase intensity of each day (mean 1): Japanese retail peaks and weekends."""
    d = np.array([start + timedelta(days=i) for i in range(days)])
    month = np.array([x.month for x in d])
    day = np.array([x.day for x in d])
    weekday = np.array([x.weekday() for x in d])
    w = np.ones(days)
    w[(month == 12) & (day <= 25)] = 1.7  # oseibo and Christmas
    w[(month == 12) & (day > 25)] = 1.4  # year-end shopping
    w[(month == 1) & (day <= 3)] = 1.9  # New Year sales (hatsuuri)
    w[(month == 7) & (day <= 20)] = 1.5  # ochugen
    w[month == 8] = 1.1
    w[((month == 4) & (day >= 29)) | ((month == 5) & (day <= 5))] = 1.6  # Golden Week
    w[(month == 2) & (day <= 14)] *= 1.15  # Valentine's
    w *= np.where(weekday >= 5, 1.3, 1.0)
    return w / w.mean()


@dataclass
class Plan:
    """Per customer: first purchase (days since start), the Poisson arrivals in the rest of the window and
    how many of them were purchases before the customer dropped out; cum/grid map calendar to intensity."""

    first: np.ndarray
    arrivals: np.ndarray
    count: np.ndarray
    cum: np.ndarray  # cumulative intensity at grid points
    grid: np.ndarray  # days since start: 0, 1, ..., now


def _draw(
    rng: np.random.Generator, n: int, scale: float, cum: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, ...]:
    # Acquisition grows over time: later days are more likely to see a first purchase.
    first = grid[-1] * rng.beta(1.4, 1.0, n)
    lam = rng.gamma(0.7, scale, n) / 365.0  # orders per (average) day while alive
    p = rng.beta(0.9, 2.4, n)  # chance to drop out after each purchase
    alive = rng.geometric(np.clip(p, 1e-6, 1.0))  # purchases made before dropping out (>= 1)
    window = cum[-1] - np.interp(first, grid, cum)
    arrivals = rng.poisson(lam * window)
    count = 1 + np.minimum(np.minimum(arrivals, alive - 1), MAX_ORDERS - 1)
    count[rng.random(n) < NON_BUYERS] = 0
    return first, arrivals, count


def plan(rng: np.random.Generator, n: int, per_customer: float, cum: np.ndarray, grid: np.ndarray) -> Plan:
    """Draw the process for n customers with the rate scale chosen so that the mean is `per_customer`."""
    probe = np.random.default_rng(int(rng.integers(2**32)))
    state = probe.bit_generator.state
    lo, hi = 0.01, 1000.0
    for _ in range(30):  # bisection on the gamma scale; the same probe draws each time, so it is monotone
        mid = (lo * hi) ** 0.5
        probe.bit_generator.state = state
        mean = _draw(probe, 30_000, mid, cum, grid)[2].mean()
        lo, hi = (mid, hi) if mean < per_customer else (lo, mid)
    first, arrivals, count = _draw(rng, n, (lo * hi) ** 0.5, cum, grid)
    return Plan(first, arrivals, count, cum, grid)


def _times(rng: np.random.Generator, plan: Plan, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order times (days since start) of customers idx, grouped by customer, and the owner of each order.

    Given k arrivals of a Poisson process in a window, their times are uniform order statistics; only the
    first m are purchases (the rest came after dropout). U_(j) = S_j / S_(k+1) with S the sums of unit
    exponentials, and S_(k+1) = S_m + Gamma(k + 1 - m); in intensity space, then mapped to the calendar."""
    count = plan.count[idx]
    owner = np.repeat(np.arange(len(idx)), count)
    times = np.empty(len(owner))
    if len(owner) == 0:
        return times, owner
    first = plan.first[idx]
    c0 = np.interp(first, plan.grid, plan.cum)
    width = plan.cum[-1] - c0
    repeats = np.maximum(count - 1, 0)
    pos = np.concatenate(([0], np.cumsum(count)[:-1]))
    buyer = count > 0
    times[pos[buyer]] = first[buyer]
    n_rep = int(repeats.sum())
    if n_rep == 0:
        return times, owner
    starts = np.concatenate(([0], np.cumsum(repeats)[:-1]))
    rep_owner = np.repeat(np.arange(len(idx)), repeats)
    csum = np.cumsum(rng.exponential(1.0, n_rep))
    before = np.where(starts > 0, csum[np.clip(starts - 1, 0, n_rep - 1)], 0.0)
    within = csum - before[rep_owner]
    last = np.zeros(len(idx))
    has = repeats > 0
    last[has] = within[(starts + repeats - 1)[has]]
    rest = rng.gamma(np.maximum(plan.arrivals[idx] - repeats, 0) + 1.0, 1.0)
    u = within / (last + rest)[rep_owner]
    rep_times = np.interp(c0[rep_owner] + u * width[rep_owner], plan.cum, plan.grid)
    rep_pos = np.repeat(pos + 1, repeats) + (np.arange(n_rep) - np.repeat(starts, repeats))
    times[rep_pos] = rep_times
    return times, owner


def _orders(
    rng: np.random.Generator, cat: Catalogue, customer_ids: np.ndarray, times: np.ndarray, owner: np.ndarray,
    start: datetime, now: datetime, gift_day: np.ndarray, pref_channel: np.ndarray,
) -> list[dict[str, Any]]:  # fmt: skip
    """Order dicts for the bulk path: channel, time of day, lines, status, a few returns and cancellations."""
    n = len(times)
    day = np.floor(times).astype(int)
    channel = np.where(rng.random(n) < 0.75, pref_channel[owner], rng.choice(len(CHANNELS), n, p=CHANNEL_MIX))
    store_like = np.isin(channel, (0, 5))
    hour = np.where(
        store_like,
        rng.choice(24, n, p=HOURS_STORE / HOURS_STORE.sum()),
        rng.choice(24, n, p=HOURS_ONLINE / HOURS_ONLINE.sum()),
    )
    # a time of day that suits the channel; never later than now
    seconds = np.minimum(
        day * 86400 + hour * 3600 + rng.integers(0, 3600, n), (now - start).total_seconds() - 1
    )
    n_lines = rng.choice(4, n, p=[0.55, 0.27, 0.12, 0.06]) + 1
    total_lines = int(n_lines.sum())
    line_order = np.repeat(np.arange(n), n_lines)
    gift = gift_day[day[line_order]] & (rng.random(total_lines) < 0.4)
    product = np.where(
        gift,
        rng.choice(len(cat.ids), total_lines, p=cat.gift_popularity),
        rng.choice(len(cat.ids), total_lines, p=cat.popularity),
    )
    qty = rng.choice(3, total_lines, p=[0.85, 0.11, 0.04]) + 1
    price = cat.prices[product]
    discounted = rng.random(total_lines) < 0.08
    price = np.where(
        discounted, np.round(price * rng.uniform(0.7, 0.9, total_lines) / 10) * 10, price
    ).astype(int)
    age_days = (now - start).total_seconds() / 86400 - times
    fate = rng.random(n)
    shipped_channel = ~store_like
    line_start = np.concatenate(([0], np.cumsum(n_lines)[:-1]))

    ids, skus, names = cat.ids.tolist(), cat.skus, cat.names
    cids = customer_ids[owner].tolist()
    products, qtys, prices = product.tolist(), qty.tolist(), price.tolist()
    orders = []
    for i in range(n):
        if age_days[i] < 3:
            status = "placed" if shipped_channel[i] else "paid"
        else:
            status = "shipped" if shipped_channel[i] else "paid"
        if fate[i] < 0.025:
            status = "cancelled"
        elif fate[i] < 0.04 and status == "shipped":
            status = "returned"
        elif fate[i] < 0.045 and status in ("paid", "shipped"):
            status = "refunded"
        lines = []
        for k in range(line_start[i], line_start[i] + n_lines[i]):
            j = products[k]
            lines.append({"product_id": ids[j], "sku": skus[j], "name": names[j], "quantity": qtys[k],
                          "unit_price": prices[k]})  # fmt: skip
        if 0.045 <= fate[i] < 0.055 and status == "shipped":
            lines[0]["returned_quantity"] = 1  # one unit sent back; the order still counts
        orders.append({
            "customer_id": cids[i], "channel": CHANNELS[channel[i]], "status": status,
            "ordered_at": start + timedelta(seconds=int(seconds[i])), "lines": lines,
        })  # fmt: skip
    return orders


def generate_orders(
    db: Database, *, customer_ids: Sequence[int] | np.ndarray, orders_per_customer: float = 10.0,
    seed: int = 7, progress: Progress | None = None, now: datetime | None = None,
) -> int:  # fmt: skip
    """Add the catalogue if missing and about `orders_per_customer` orders per customer; returns how many."""
    ids = np.asarray(customer_ids, dtype=np.int64)
    if len(ids) == 0 or orders_per_customer <= 0:
        return 0
    rng = np.random.default_rng(seed + 1)
    cat = ensure_products(db, rng)
    now = now or utcnow()
    first_day = (now + JST).date() - timedelta(days=HISTORY_DAYS)
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC) - JST  # midnight in Japan
    horizon = (now - start).total_seconds() / 86400
    days = int(np.ceil(horizon))
    weights = seasonal_intensity(first_day, days)
    grid = np.append(np.arange(days, dtype=float), horizon)  # the last day ends now
    cum = np.concatenate(
        ([0.0], np.cumsum(weights[:-1]), [weights[:-1].sum() + weights[-1] * (horizon - days + 1)])
    )
    dates = [first_day + timedelta(days=i) for i in range(days)]
    gift_day = np.array([(d.month == 7 and d.day <= 20) or (d.month == 12 and d.day <= 25) for d in dates])
    p = plan(rng, len(ids), orders_per_customer, cum, grid)
    pref = rng.choice(len(CHANNELS), len(ids), p=CHANNEL_MIX)
    total = int(p.count.sum())
    task = progress.add_task("orders", total=total) if progress else None
    written = 0
    for lo in range(0, len(ids), BLOCK):
        idx = np.arange(lo, min(lo + BLOCK, len(ids)))
        times, owner = _times(rng, p, idx)
        if len(times) == 0:
            continue
        orders = _orders(rng, cat, ids[idx], times, owner, start, now, gift_day, pref[idx])
        with db.session() as session:  # one transaction per block, metrics of its customers included
            service.bulk_insert_orders(session, orders, actor=None)
        written += len(orders)
        if progress and task is not None:
            progress.advance(task, len(orders))
    return written
