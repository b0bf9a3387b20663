"""Duplicate detection at scale: demo customers plus planted duplicates (a second record of the same person
with another email, and one with the name written with a variant kanji), then the candidate search and the
stored scan, against a reference measured in the same run: one plain read of every customer's blocking
columns (the least any whole-table comparison must do).

    python bench/duplicates_bench.py [--customers 200000] [--planted 500]
    python bench/duplicates_bench.py --pg postgresql+psycopg://user:pw@127.0.0.1:5432/kokyaku
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sqlalchemy import create_engine, delete, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from kokyaku.customers import duplicates, search_index  # noqa: E402
from kokyaku.customers.merge_models import DuplicateCandidate  # noqa: E402
from kokyaku.customers.models import Customer  # noqa: E402
from kokyaku.customers.service import search_text_of  # noqa: E402
from kokyaku.db import Database, utcnow  # noqa: E402
from kokyaku.demo.generate import generate  # noqa: E402
from kokyaku.kit.normalize import ngrams, search_key  # noqa: E402
from kokyaku.migrate import upgrade  # noqa: E402

VARIANTS = {"斉": "斎", "辺": "邊", "沢": "澤", "崎": "﨑", "高": "髙", "浜": "濱", "島": "嶋"}


def _fresh_pg(url: str) -> str:
    target = make_url(url).set(database="kokyaku_bench_duplicates")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return target.render_as_string(hide_password=False)


def _plant(db: Database, n: int, seed: int) -> set[tuple[int, int]]:
    """Copies of n random people: half with the same name and birthday, half with a variant kanji in the name
    at the same postal code (and the same kana); returns the planted pairs."""
    rng = random.Random(seed)
    with db.session() as s:
        people = (
            s.execute(
                select(Customer)
                .where(Customer.kind == "person", Customer.name_kana.is_not(None))
                .limit(200_000)
            )
            .scalars()
            .all()
        )
        variable = [p for p in people if any(ch in VARIANTS for ch in p.name)]
        chosen = rng.sample(people, n // 2) + rng.sample(variable, min(n - n // 2, len(variable)))
        start = (s.scalar(select(Customer.id).order_by(Customer.id.desc()).limit(1)) or 0) + 1
        rows: list[dict[str, object]] = []
        grams: dict[int, set[str]] = {}
        planted = set()
        now = utcnow()
        for i, p in enumerate(chosen):
            cid = start + i
            variant = i >= n // 2
            name = "".join(VARIANTS.get(ch, ch) for ch in p.name) if variant else p.name.replace(" ", "")
            rows.append({
                "id": cid, "kind": "person", "name": name, "name_kana": p.name_kana,
                "birthday": None if variant else p.birthday, "postal_code": p.postal_code,
                "email": f"copy{cid}@example.net", "search_text": search_text_of(name, p.name_kana),
                "note": f"copy of {p.id}", "custom": {}, "created_at": now, "updated_at": now,
            })  # fmt: skip
            grams[cid] = ngrams(search_key(name)) | ngrams(search_key(p.name_kana))
            planted.add((p.id, cid))
        s.execute(insert(Customer.__table__), rows)
        search_index.write(s, grams)
    return planted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--planted", type=int, default=500)
    parser.add_argument("--pg", help="a PostgreSQL URL (a fresh database is made beside it)")
    parser.add_argument("--reuse", help="the URL of a database an earlier run made (skips generating)")
    args = parser.parse_args()
    if args.reuse:
        url = args.reuse
        db = Database(url)
    else:
        url = _fresh_pg(args.pg) if args.pg else f"sqlite:///{tempfile.mkdtemp()}/bench.db"
        upgrade(url)
        db = Database(url)
        t = time.perf_counter()
        generate(db, customers=args.customers, seed=11, touchpoints_per_customer=0)
        print(f"generated {args.customers} customers in {time.perf_counter() - t:.1f} s; database {url}")
        _plant(db, args.planted, seed=3)
    with db.session(write=False) as s:
        notes = s.execute(select(Customer.id, Customer.note).where(Customer.note.like("copy of %"))).all()
        planted = {(int(note.removeprefix("copy of ")), cid) for cid, note in notes}

    with db.session(write=False) as s:
        t = time.perf_counter()
        cols = (Customer.id, Customer.kind, Customer.search_text, Customer.birthday, Customer.postal_code,
                Customer.email, Customer.phone)  # fmt: skip
        rows = s.execute(select(*cols).where(Customer.merged_into_id.is_(None))).all()
        reference = time.perf_counter() - t
    print(f"reference: read {len(rows)} customers' blocking columns: {reference:.2f} s")

    timings = []
    for _ in range(3):
        with db.session(write=False) as s:
            t = time.perf_counter()
            pairs = duplicates.find_pairs(s)
            timings.append(time.perf_counter() - t)
    best = min(timings)
    found_planted = len(planted & set(pairs))
    print(
        f"find_pairs: {len(pairs)} pairs in {best:.2f} s (best of 3; {best / reference:.1f}x the reference)"
    )
    print(f"planted duplicates found: {found_planted}/{len(planted)}")
    with db.session() as s:
        s.execute(delete(DuplicateCandidate))  # an earlier run's candidates: the first scan stores them all
    with db.session() as s:
        first = duplicates.scan(s)
    with db.session() as s:
        again = duplicates.scan(s)
    print(
        f"scan (store {first.added} candidates): {first.seconds:.2f} s; "
        f"rescan (no changes): {again.seconds:.2f} s"
    )

    engine = "SQLite" if db.is_sqlite else "PostgreSQL"
    reused = " (timed again with `--reuse` on the data of an earlier run)" if args.reuse else ""
    load = os.getloadavg()[0]
    out = ROOT / "bench" / f"RESULTS_duplicates{'' if db.is_sqlite else '_pg'}.md"
    out.write_text(
        f"# Duplicate detection ({engine})\n\n"
        f"`python bench/duplicates_bench.py --customers {args.customers} --planted {args.planted}"
        f"{'' if db.is_sqlite else ' --pg ...'}`{reused}\n\n"
        f"Machine: {os.cpu_count()} CPUs, load average {load:.1f} at the end of the run.\n\n"
        f"| measure | value |\n|---|---|\n"
        f"| customers | {len(rows)} |\n"
        f"| reference: read every customer's blocking columns | {reference:.2f} s |\n"
        f"| find_pairs (best of 3) | {best:.2f} s ({best / reference:.1f}x reference) |\n"
        f"| candidate pairs | {len(pairs)} |\n"
        f"| planted duplicates found | {found_planted}/{len(planted)} |\n"
        f"| scan, first (stores candidates) | {first.seconds:.2f} s |\n"
        f"| scan, again (nothing changed) | {again.seconds:.2f} s |\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")
    db.dispose()


if __name__ == "__main__":
    main()
