"""Demo customers: Japanese people with kana and addresses by prefecture, some English speakers, companies
with contacts, interests and owners. Vectorised with numpy and written with batched inserts, so that a
million customers take minutes."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

import numpy as np
from faker import Faker
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session

from kokyaku.audit.service import Actor
from kokyaku.auth import service as auth
from kokyaku.auth.models import User
from kokyaku.auth.schemas import UserCreate
from kokyaku.config import get_settings
from kokyaku.customers import search_index
from kokyaku.customers.models import Customer, Identity, Interest
from kokyaku.customers.service import search_text_of
from kokyaku.db import Database, utcnow
from kokyaku.demo.orders import generate_orders
from kokyaku.demo.touchpoints import generate_touchpoints
from kokyaku.kit.normalize import ngrams, search_key
from kokyaku.kit.prefectures import PREFECTURE_NAMES
from kokyaku.models import metadata

BATCH = 20_000
DEMO = Actor.system("demo")
# Rough population shares (millions, 2020 census) so that Tokyo, Kanagawa and Osaka dominate as in life.
_POPULATION = [
    5.2,
    1.2,
    1.2,
    2.3,
    1.0,
    1.1,
    1.8,
    2.9,
    1.9,
    1.9,
    7.3,
    6.3,
    14.0,
    9.2,
    2.2,
    1.0,
    1.1,
    0.8,
    0.8,
    2.0,
    2.0,
    3.6,
    7.5,
    1.8,
    1.4,
    2.6,
    8.8,
    5.5,
    1.3,
    0.9,
    0.6,
    0.7,
    1.9,
    2.8,
    1.3,
    0.7,
    1.0,
    1.3,
    0.7,
    5.1,
    0.8,
    1.3,
    1.7,
    1.1,
    1.1,
    1.6,
    1.5,
]
INTERESTS = [
    "グルメ",
    "旅行",
    "ファッション",
    "コスメ",
    "アウトドア",
    "スポーツ",
    "読書",
    "音楽",
    "映画",
    "ゲーム",
    "料理",
    "カフェ",
    "ワイン",
    "日本酒",
    "ガーデニング",
    "ペット",
    "子育て",
    "健康",
    "ヨガ",
    "キャンプ",
    "tech",
    "wine",
    "travel",
    "fitness",
]
SOURCES = [
    ("店頭", "store"),
    ("Instagram", "sns"),
    ("LINE", "sns"),
    ("Google検索", "web"),
    ("紹介", "referral"),
    ("チラシ", "print"),
    ("Amazon", "marketplace"),
    ("楽天市場", "marketplace"),
    ("展示会", "event"),
    ("メールマガジン", "email"),
]
INDUSTRIES = [
    "小売",
    "飲食",
    "製造",
    "IT・通信",
    "建設",
    "不動産",
    "医療・福祉",
    "教育",
    "物流",
    "美容",
    "宿泊",
    "士業",
]
DEMO_USERS = [
    ("sales1@example.com", "営業 一郎", "sales"),
    ("sales2@example.com", "営業 花子", "sales"),
    ("support@example.com", "サポート 太郎", "support"),
    ("marketing@example.com", "Marketing Emma", "marketing"),
    ("manager@example.com", "管理 部長", "manager"),
]


@dataclass
class Pools:
    last: list[tuple[str, str, str]]
    last_w: np.ndarray
    female: list[tuple[str, str, str]]
    male: list[tuple[str, str, str]]
    en_first_f: list[str]
    en_first_m: list[str]
    en_last: list[str]
    cities: list[str]
    towns: list[str]
    companies: list[str]


def _pools(seed: int) -> Pools:
    ja, en = Faker("ja_JP"), Faker("en_US")
    ja.seed_instance(seed)
    p = ja.provider("faker.providers.person")
    a = ja.provider("faker.providers.address")
    e = en.provider("faker.providers.person")
    weights = np.array(list(p.last_name_pairs.values()), dtype=float)
    return Pools(
        last=list(p.last_name_pairs.keys()),
        last_w=weights / weights.sum(),
        female=list(p.first_name_female_pairs),
        male=list(p.first_name_male_pairs),
        en_first_f=list(e.first_names_female)[:200],
        en_first_m=list(e.first_names_male)[:200],
        en_last=list(e.last_names)[:300],
        cities=list(a.cities),
        towns=list(a.towns),
        companies=list(dict.fromkeys(ja.company() for _ in range(3000))),
    )


def _ensure_users(session: Session) -> list[int]:
    settings = get_settings()
    ids = []
    for email, name, role in DEMO_USERS:
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            data = UserCreate(email=email, name=name, role=role, password="demo-password-" + role)  # type: ignore[arg-type]
            user = auth.create_user(session, settings, actor=DEMO, data=data)
        ids.append(user.id)
    return ids


def _people(
    rng: np.random.Generator,
    pools: Pools,
    ids: np.ndarray,
    owners: list[int],
    company_ids: list[int],
    today: date,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], list[str]]]:
    n = len(ids)
    english = rng.random(n) < 0.05
    female = rng.random(n) < 0.52
    last_idx = rng.choice(len(pools.last), n, p=pools.last_w)
    first_f = rng.integers(0, len(pools.female), n)
    first_m = rng.integers(0, len(pools.male), n)
    en_f = rng.integers(0, len(pools.en_first_f), n)
    en_m = rng.integers(0, len(pools.en_first_m), n)
    en_l = rng.integers(0, len(pools.en_last), n)
    ages = np.clip(rng.normal(44, 15, n), 18, 90).astype(int)
    day_of_year = rng.integers(0, 365, n)
    prefs = rng.choice(47, n, p=np.array(_POPULATION) / sum(_POPULATION))
    cities = rng.integers(0, len(pools.cities), n)
    towns = rng.integers(0, len(pools.towns), n)
    blocks = rng.integers(1, 30, (n, 3))
    postal = rng.integers(1_000_000, 9_999_999, n)
    has_phone = rng.random(n) < 0.8
    has_birthday = rng.random(n) < 0.85
    owner_idx = rng.integers(0, len(owners), n)
    has_owner = rng.random(n) < 0.6
    source_idx = rng.integers(0, len(SOURCES), n)
    n_interests = rng.poisson(1.5, n)
    works = rng.random(n) < (0.12 if company_ids else 0)
    company_idx = rng.integers(0, max(len(company_ids), 1), n)
    for i in range(n):
        cid = int(ids[i])
        if english[i]:
            first = pools.en_first_f[en_f[i]] if female[i] else pools.en_first_m[en_m[i]]
            last = pools.en_last[en_l[i]]
            name, kana, romaji_first, romaji_last = f"{first} {last}", None, first, last
        else:
            lk = pools.last[last_idx[i]]
            fk = pools.female[first_f[i]] if female[i] else pools.male[first_m[i]]
            name, kana = f"{lk[0]} {fk[0]}", f"{lk[1]} {fk[1]}"
            romaji_first, romaji_last = fk[2], lk[2]
        email = f"{romaji_first.lower()}.{romaji_last.lower()}.{cid}@example.{'com' if english[i] else 'jp'}"
        # 090/080/070 then eight digits not starting with 0 (090-0xxx numbers are not issued)
        subscriber = 10_000_000 + (cid * 7919) % 90_000_000
        phone = f"+81{(90, 80, 70)[cid % 3]}{subscriber}" if has_phone[i] else None
        birthday = (
            date(today.year - int(ages[i]), 1, 1) + timedelta(days=int(day_of_year[i]))
            if has_birthday[i]
            else None
        )
        src = SOURCES[source_idx[i]]
        row = {
            "id": cid,
            "kind": "person",
            "name": name,
            "name_kana": kana,
            "email": email,
            "phone": phone,
            "birthday": birthday,
            "gender": "female" if female[i] else "male",
            "postal_code": f"{postal[i] // 10000:03d}-{postal[i] % 10000:04d}",
            "prefecture": PREFECTURE_NAMES[prefs[i]],
            "city": pools.cities[cities[i]],
            "street": f"{pools.towns[towns[i]]}{blocks[i, 0]}-{blocks[i, 1]}-{blocks[i, 2]}",
            "company_id": company_ids[company_idx[i]] if works[i] else None,
            "source": src[0],
            "channel": src[1],
            "owner_id": owners[owner_idx[i]] if has_owner[i] else None,
            "locale": "en" if english[i] else "ja",
            "custom": {},
            "search_text": search_text_of(name, kana),
        }
        identities = [{"customer_id": cid, "kind": "email", "value": email}]
        if phone:
            identities.append({"customer_id": cid, "kind": "phone", "value": phone})
        tags = list({INTERESTS[j] for j in rng.integers(0, len(INTERESTS), min(n_interests[i], 5))})
        yield row, identities, tags


def _companies(
    rng: np.random.Generator, pools: Pools, ids: np.ndarray, owners: list[int]
) -> list[dict[str, Any]]:
    rows = []
    sizes = ["1-9", "10-49", "50-249", "250-999", "1000+"]
    for k, cid in enumerate(ids):
        name = pools.companies[k % len(pools.companies)]
        if k >= len(pools.companies):
            name = f"{name} {k // len(pools.companies) + 1}号店"
        pref = PREFECTURE_NAMES[int(rng.choice(47, p=np.array(_POPULATION) / sum(_POPULATION)))]
        rows.append(
            {
                "id": int(cid),
                "kind": "company",
                "name": name,
                "name_kana": None,
                "industry": INDUSTRIES[int(rng.integers(0, len(INDUSTRIES)))],
                "company_size": sizes[int(rng.integers(0, len(sizes)))],
                "prefecture": pref,
                "city": pools.cities[int(rng.integers(0, len(pools.cities)))],
                "website": f"https://company{int(cid)}.example.co.jp",
                "custom": {},
                "owner_id": owners[int(rng.integers(0, len(owners)))],
                "locale": "ja",
                "search_text": search_text_of(name, None),
                "email": f"info@company{int(cid)}.example.co.jp",
                "phone": None,
                "source": "展示会",
                "channel": "event",
            }
        )
    return rows


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _grams(rows: list[dict[str, Any]]) -> dict[int, set[str]]:
    return {r["id"]: ngrams(search_key(r["name"])) | ngrams(search_key(r["name_kana"])) for r in rows}


def _write(
    session: Session,
    rows: list[dict[str, Any]],
    identities: list[dict[str, Any]],
    interests: list[dict[str, Any]],
) -> None:
    now = utcnow()
    for r in rows:
        r["created_at"] = r["updated_at"] = now
    ident_now = [{**i, "created_at": now} for i in identities]
    session.execute(insert(_table(Customer)), rows)
    if ident_now:
        session.execute(insert(_table(Identity)), ident_now)
    if interests:
        session.execute(insert(_table(Interest)), interests)
    search_index.write(session, _grams(rows))


def generate(
    db: Database,
    *,
    customers: int,
    seed: int = 7,
    if_empty: bool = False,
    console: Console | None = None,
    touchpoints_per_customer: float = 5.0,
    orders_per_customer: float = 10.0,
) -> int:
    """Insert `customers` customers (2% of them companies); returns how many were written."""
    with db.session() as session:
        existing = session.scalar(select(func.count()).select_from(Customer)) or 0
        if if_empty and existing:
            if console:
                console.print(f"{existing} customers exist already; no demo data added")
            return 0
        owners = _ensure_users(session)
        start = (session.scalar(select(func.max(Customer.id))) or 0) + 1
    rng = np.random.default_rng(seed)
    pools = _pools(seed)
    n_companies = max(1, customers // 50)
    company_ids = np.arange(start, start + n_companies)
    person_ids = np.arange(start + n_companies, start + customers)
    today = date.today()
    progress = Progress(
        TextColumn("[bold]demo[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None,
    )
    with progress:
        task = progress.add_task("customers", total=customers)
        with db.session() as session:
            _write(session, _companies(rng, pools, company_ids, owners), [], [])
        progress.advance(task, n_companies)
        for offset in range(0, len(person_ids), BATCH):
            batch = person_ids[offset : offset + BATCH]
            rows: list[dict[str, Any]] = []
            identities: list[dict[str, Any]] = []
            interests: list[dict[str, Any]] = []
            for row, ids, tags in _people(rng, pools, batch, owners, list(map(int, company_ids)), today):
                rows.append(row)
                identities.extend(ids)
                interests.extend({"customer_id": row["id"], "tag": t} for t in tags)
            # One transaction per batch: a killed run leaves whole batches, never half of one.
            with db.session() as session:
                _write(session, rows, identities, interests)
            progress.advance(task, len(batch))
        # Orders from a repeat-buying process for every customer (companies too), with their metrics.
        generate_orders(
            db,
            customer_ids=np.arange(start, start + customers),
            orders_per_customer=orders_per_customer,
            seed=seed,
            progress=progress,
        )
        # After the customers (and their orders, when generated) so that touchpoints can lead up to purchases.
        generate_touchpoints(
            db, customer_ids=person_ids, per_customer=touchpoints_per_customer, seed=seed, progress=progress
        )
    _advance_sequences(db)
    return customers


def _advance_sequences(db: Database) -> None:
    """Rows were written with explicit ids; on PostgreSQL move each id sequence past them, or the next
    ordinary insert would collide."""
    if db.is_sqlite:
        return
    with db.session() as session:
        for table in metadata.sorted_tables:
            if "id" in table.c and table.c.id.primary_key and table.c.id.autoincrement:
                session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table.name}), false)"
                    )
                )
