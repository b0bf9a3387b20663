"""Import of a customer CSV through the same code path as `kokyaku import customers FILE`, against a reference
measured in the same run: the same file parsed with csv and its rows written with executemany into a plain
table, without validation, matching, search grams or audit rows (the floor for "read a CSV into a table").

    python bench/import_bench.py [--rows 1000000] [--pg postgresql+psycopg://.../kokyaku_test] [--out FILE]

The generated file has Japanese names with kana, emails, mobile and landline phones, postal codes,
prefectures weighted by population, birthdays, genders and interests (UTF-8, as Excel's "CSV UTF-8" writes).
Variants, each on a fresh database built by the migrations:
  all-or-nothing   the CLI default: pass 1 checks every row, pass 2 writes (batches of 50,000 rows,
                   the importer's default, which the CLI keeps unless --batch-size is given); files over
                   8 MB are read and checked row by row in a second process (imports/parsing.py)
  skip-invalid     one pass that checks and writes
  no per-row audit skip-invalid without the audit row per created customer (to price the audit rows)
  re-import        the same file again onto the all-or-nothing database: every row unchanged

    python bench/import_bench.py --rows 1000000 --reference-parts

prices the parts of reference B's database work instead (SQLite): the audit rows, the FTS5 documents, the
interests and the customers' secondary indexes, each left out in turn, then the first, second and fourth
together.
"""

import argparse
import csv
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kokyaku.audit.service import Actor  # noqa: E402
from kokyaku.db import Database  # noqa: E402
from kokyaku.imports.kinds.customers import CustomerImporter  # noqa: E402
from kokyaku.imports.service import BULK_CACHE_KB, Options, run_import  # noqa: E402
from kokyaku.kit.prefectures import PREFECTURE_NAMES  # noqa: E402
from kokyaku.migrate import upgrade  # noqa: E402

HEADER = [
    "氏名",
    "フリガナ",
    "メールアドレス",
    "電話番号",
    "郵便番号",
    "都道府県",
    "生年月日",
    "性別",
    "興味",
]
INTERESTS = [
    "旅行",
    "グルメ",
    "ファッション",
    "コスメ",
    "アウトドア",
    "読書",
    "音楽",
    "映画",
    "ワイン",
    "ヨガ",
]
POPULATION = [
    5.2, 1.2, 1.2, 2.3, 1.0, 1.1, 1.8, 2.9, 1.9, 1.9, 7.3, 6.3, 14.0, 9.2, 2.2, 1.0, 1.1, 0.8, 0.8, 2.0,
    2.0, 3.6, 7.5, 1.8, 1.4, 2.6, 8.8, 5.5, 1.3, 0.9, 0.6, 0.7, 1.9, 2.8, 1.3, 0.7, 1.0, 1.3, 0.7, 5.1,
    0.8, 1.3, 1.7, 1.1, 1.1, 1.6, 1.5,
]  # fmt: skip


def generate(path: Path, rows: int, seed: int = 11) -> None:
    """A realistic customer file: faker's Japanese name pools (kanji, kana, romaji), vectorised choices."""
    from faker import Faker

    provider = Faker("ja_JP").provider("faker.providers.person")
    last = list(provider.last_name_pairs.keys())
    weights = np.array(list(provider.last_name_pairs.values()), dtype=float)
    female, male = list(provider.first_name_female_pairs), list(provider.first_name_male_pairs)
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(HEADER)
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            li = rng.choice(len(last), n, p=weights / weights.sum())
            is_f = rng.random(n) < 0.52
            fi, mi = rng.integers(0, len(female), n), rng.integers(0, len(male), n)
            pref = rng.choice(47, n, p=np.array(POPULATION) / sum(POPULATION))
            years, days = rng.integers(1945, 2005, n), rng.integers(1, 28, n)
            months = rng.integers(1, 13, n)
            postal = rng.integers(1_000_000, 9_999_999, n)
            landline = rng.random(n) < 0.2
            tags = rng.integers(0, len(INTERESTS), (n, 2))
            for k in range(n):
                i = start + k
                lk = last[li[k]]
                fk = female[fi[k]] if is_f[k] else male[mi[k]]
                area = "03" if landline[k] else f"0{(90, 80, 70)[i % 3]}"
                phone = f"{area}-{1000 + i % 9000:04d}-{i // 9000 % 10000:04d}"
                writer.writerow([
                    f"{lk[0]} {fk[0]}", f"{lk[1]} {fk[1]}", f"{fk[2].lower()}.{lk[2].lower()}.{i}@example.jp",
                    phone, f"{postal[k] // 10000:03d}-{postal[k] % 10000:04d}", PREFECTURE_NAMES[pref[k]],
                    f"{years[k]}/{months[k]}/{days[k]}", "女" if is_f[k] else "男",
                    f"{INTERESTS[tags[k, 0]]};{INTERESTS[tags[k, 1]]}" if k % 3 else "",
                ])  # fmt: skip


# ---------------------------------------------------------------- databases


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def fresh_sqlite(folder: Path, name: str) -> str:
    path = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def fresh_pg(base: str, name: str) -> str:
    url = make_url(base)
    db_name = f"kokyaku_bench_{name}_{os.getpid()}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    admin.dispose()
    return url.set(database=db_name).render_as_string(hide_password=False)


def drop_pg(url: str) -> None:
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    for _attempt in range(10):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}"'))
            break
        except Exception:  # an autovacuum worker may still be in it; it leaves within seconds
            time.sleep(2)
    admin.dispose()


# ---------------------------------------------------------------- the runs


def reference(path: Path, url: str, batch: int = 5000) -> float:
    """csv.reader + executemany of the raw cells into a plain table, one commit per batch."""
    columns = ", ".join(f"c{i} TEXT" for i in range(len(HEADER)))
    marks = ", ".join("?" for _ in HEADER)
    started = time.perf_counter()
    if url.startswith("sqlite"):
        conn = sqlite3.connect(make_url(url).database, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"CREATE TABLE ref (id INTEGER PRIMARY KEY, {columns})")
        insert = f"INSERT INTO ref ({', '.join(f'c{i}' for i in range(len(HEADER)))}) VALUES ({marks})"
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            chunk: list[list[str]] = []
            for row in reader:
                chunk.append(row)
                if len(chunk) == batch:
                    conn.execute("BEGIN")
                    conn.executemany(insert, chunk)
                    conn.execute("COMMIT")
                    chunk = []
            if chunk:
                conn.execute("BEGIN")
                conn.executemany(insert, chunk)
                conn.execute("COMMIT")
        conn.close()
    else:
        import psycopg

        u = make_url(url)
        dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as conn:
            conn.execute(f"CREATE TABLE ref (id SERIAL PRIMARY KEY, {columns})")
            conn.commit()
            names = ", ".join(f"c{i}" for i in range(len(HEADER)))
            insert = f"INSERT INTO ref ({names}) VALUES ({marks.replace('?', '%s')})"
            with path.open(encoding="utf-8", newline="") as fh, conn.cursor() as cur:
                reader = csv.reader(fh)
                next(reader)
                chunk = []
                for row in reader:
                    chunk.append(row)
                    if len(chunk) == batch:
                        cur.executemany(insert, chunk)
                        conn.commit()
                        chunk = []
                if chunk:
                    cur.executemany(insert, chunk)
                    conn.commit()
    return time.perf_counter() - started


CUSTOMER_SECONDARY_INDEXES = [
    "ix_customers_kind_id", "ix_customers_prefecture_id", "ix_customers_company_id",
    "ix_customers_owner_id_id", "ix_customers_merged_into_id", "ix_customers_seg_gender_birthday",
    "ix_customers_seg_prefecture_birthday",
]  # fmt: skip
# --reference-parts: reference B with parts of its database work left out (their rows are still built)
REFERENCE_PARTS = {
    "everything": ((), False),
    "no audit rows": (("audit_log",), False),
    "no FTS5 documents": (("grams",), False),
    "no interests": (("customer_interests",), False),
    "no customer secondary indexes": ((), True),
    "none of audit, FTS5 and customer indexes": (("audit_log", "grams"), True),
}


def reference_same_rows(
    path: Path, url: str, batch: int = CustomerImporter.batch_rows, *,
    leave_out: tuple[str, ...] = (), no_customer_indexes: bool = False,
) -> float:  # fmt: skip
    """The rows our import writes per customer (customers, identities, interests, search grams, audit), made
    from the CSV with no validation, no matching and only trivial clean-up, written into the migrated schema
    the way the import writes them (same batch size; on SQLite the same page cache, no foreign-key checks,
    rows in index order, multi-row INSERTs through the driver's executemany, and the name grams as one FTS5
    document per customer, ids ascending, as customers.search_index writes them; COPY on PostgreSQL, with
    the grams as customer_search_grams rows): the floor for the same database work.

    `leave_out` names tables of `tables` below whose rows are built but not written; `no_customer_indexes`
    drops the customers' secondary indexes first (SQLite): what each part of the work costs."""
    import json
    from datetime import UTC, datetime

    from kokyaku.customers.search_index import FTS_TABLE, token
    from kokyaku.kit.normalize import ngrams, search_key

    now = datetime.now(UTC).replace(tzinfo=None)
    stamp = now.isoformat(sep=" ")
    genders = {"男": "male", "女": "female"}
    started = time.perf_counter()
    u = make_url(url)
    pg = not url.startswith("sqlite")
    if pg:
        import psycopg

        conn: object = psycopg.connect(u.set(drivername="postgresql").render_as_string(hide_password=False))
        next_id = 1
    else:
        conn = sqlite3.connect(u.database, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")  # type: ignore[attr-defined]
        conn.execute("PRAGMA synchronous=NORMAL")  # type: ignore[attr-defined]
        conn.execute(f"PRAGMA cache_size=-{BULK_CACHE_KB}")  # type: ignore[attr-defined]
        next_id = 1
    tables = {
        "customers": ["id", "kind", "name", "name_kana", "email", "phone", "birthday", "gender",
                      "postal_code", "prefecture", "custom", "search_text", "created_at", "updated_at"],
        "customer_identities": ["customer_id", "kind", "value", "created_at"],
        "customer_interests": ["customer_id", "tag"],
        "grams": ["gram", "customer_id"] if pg else ["rowid", "grams"],
        "audit_log": ["at", "actor_label", "entity_type", "entity_id", "action", "changes"],
    }  # fmt: skip
    table_of = {"grams": "customer_search_grams" if pg else FTS_TABLE}
    if no_customer_indexes:
        for index in CUSTOMER_SECONDARY_INDEXES:
            conn.execute(f"DROP INDEX {index}")  # type: ignore[attr-defined]

    def flush(rows: dict[str, list[tuple[object, ...]]]) -> None:
        for table in leave_out:
            rows.pop(table)
        if pg:
            with conn.cursor() as cur:  # type: ignore[attr-defined]
                for table, data in rows.items():
                    name = table_of.get(table, table)
                    with cur.copy(f"COPY {name} ({', '.join(tables[table])}) FROM STDIN") as copy:
                        for row in data:
                            copy.write_row(row)
            conn.commit()  # type: ignore[attr-defined]
            return
        rows["customer_identities"].sort(key=lambda r: (r[1], r[2]))
        conn.execute("BEGIN")  # type: ignore[attr-defined]
        # one document per customer, ids ascending, one row per statement (a multi-row INSERT into a virtual
        # table is no faster)
        conn.executemany(f"INSERT INTO {FTS_TABLE} (rowid, grams) VALUES (?, ?)", rows.get("grams", []))  # type: ignore[attr-defined]
        for table, data in rows.items():
            if table == "grams":
                continue
            width = len(tables[table])
            one = "(" + ", ".join("?" * width) + ")"
            head = f"INSERT INTO {table} ({', '.join(tables[table])}) VALUES "
            per = max(1, min(200, 999 // width))
            full = len(data) - len(data) % per
            flat = [v for row in data[:full] for v in row]
            step = per * width
            chunks = [flat[i : i + step] for i in range(0, len(flat), step)]
            conn.executemany(head + ", ".join([one] * per), chunks)  # type: ignore[attr-defined]
            conn.executemany(head + one, data[full:])  # type: ignore[attr-defined]
        conn.execute("COMMIT")  # type: ignore[attr-defined]

    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows: dict[str, list[tuple[object, ...]]] = {t: [] for t in tables}
        for name, kana, email, phone, postal, pref, birthday, gender, tags in reader:
            cid = next_id
            next_id += 1
            y, m, d = birthday.split("/")
            e164 = "+81" + phone.replace("-", "")[1:]
            key_name, key_kana = search_key(name), search_key(kana)
            day = f"{y}-{int(m):02d}-{int(d):02d}"
            created = {"birthday": [None, day], "emails": [None, [email.lower()]],
                       "gender": [None, genders[gender]], "kind": [None, "person"], "name": [None, name],
                       "name_kana": [None, kana], "phones": [None, [e164]], "postal_code": [None, postal],
                       "prefecture": [None, pref]}  # fmt: skip
            text = f"{key_name}\u0001{key_kana}"
            rows["customers"].append((cid, "person", name, kana, email.lower(), e164, day, genders[gender],
                                      postal, pref, "{}", text, stamp, stamp))  # fmt: skip
            rows["customer_identities"] += [(cid, "email", email.lower(), stamp), (cid, "phone", e164, stamp)]
            rows["customer_interests"] += [(cid, t) for t in dict.fromkeys(tags.split(";")) if t]
            grams = ngrams(key_name) | ngrams(key_kana)
            if pg:
                rows["grams"] += [(g, cid) for g in grams]
            else:
                rows["grams"].append((cid, " ".join(map(token, grams))))
            rows["audit_log"].append((stamp, "bench", "customer", cid, "create", json.dumps(created)))
            if len(rows["customers"]) == batch:
                flush(rows)
                rows = {t: [] for t in tables}
        if rows["customers"]:
            flush(rows)
    conn.close()  # type: ignore[attr-defined]
    return time.perf_counter() - started


def ours(path: Path, url: str, mode: str, audit_rows: bool = True) -> tuple[float, dict[str, float], object]:
    """kokyaku's import (the CLI's code path); returns seconds, seconds per phase, the finished run."""
    db = Database(url)
    phases: dict[str, float] = {}
    marks: dict[str, object] = {"t": time.perf_counter(), "phase": None}

    def progress(p: object) -> None:
        phase = p.phase  # type: ignore[attr-defined]
        if marks["phase"] is None:
            marks["phase"] = phase
        elif phase != marks["phase"]:
            now = time.perf_counter()
            phases[str(marks["phase"])] = now - float(marks["t"])  # type: ignore[arg-type]
            marks.update(t=now, phase=phase)

    started = time.perf_counter()
    marks["t"] = started
    run = run_import(db, kind="customers", path=path, actor=Actor.system("bench"),
                     options=Options(mode=mode, audit_rows=audit_rows), on_progress=progress)  # fmt: skip
    elapsed = time.perf_counter() - started
    phases[str(marks["phase"])] = time.perf_counter() - float(marks["t"])  # type: ignore[arg-type]
    db.dispose()
    return elapsed, phases, run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--pg", help="base PostgreSQL URL: measure on PostgreSQL (fresh databases) instead of SQLite"
    )
    parser.add_argument(
        "--work", type=Path, default=ROOT / "bench" / "out", help="folder for the CSV and SQLite files"
    )
    parser.add_argument("--out", type=Path, help="append the results as Markdown to this file")
    parser.add_argument(
        "--skip", default="", help="comma-separated variants to leave out: skip,noaudit,reimport"
    )
    parser.add_argument(
        "--reference-parts", action="store_true",
        help="SQLite: only reference B, whole and with parts of its database work left out, then stop",
    )  # fmt: skip
    args = parser.parse_args()
    if args.reference_parts and args.pg:
        parser.error("--reference-parts measures SQLite only")
    args.work.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    csv_path = args.work / f"customers_{args.rows}.csv"
    if not csv_path.exists():
        t = time.perf_counter()
        generate(csv_path, args.rows)
        size = csv_path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size:.0f} MB) in {time.perf_counter() - t:.0f} s")
    engine = "PostgreSQL" if args.pg else "SQLite"

    def fresh(name: str) -> str:
        if args.pg:
            return fresh_pg(args.pg, name)
        return fresh_sqlite(args.work, f"import_{name}_{args.rows}")

    results: list[tuple[str, float, float, str]] = []  # label, wall seconds, CPU seconds, detail

    def timed(label: str, fn: Any, *fn_args: Any) -> Any:
        """Run fn, print and keep its wall time and the CPU time of this process and of the children it
        waited for (the import's file-reading process); the machine may be shared."""
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        out = fn(*fn_args)
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
        detail = ""
        if isinstance(out, tuple):  # ours(): (seconds, phases, run)
            _s, phases, run = out
            detail = ", ".join(f"{p} {s:.1f} s" for p, s in phases.items())
            detail += f"; created {run.created:,}, updated {run.updated:,}, unchanged {run.unchanged:,}, "
            detail += f"invalid {run.invalid:,}"
        results.append((label, wall, cpu, detail))
        print(f"{label:<34} {args.rows / wall:>9,.0f} rows/s wall, {args.rows / cpu:>9,.0f} rows/CPU-s  "
              f"({wall:.1f} s, CPU {cpu:.1f} s) {detail}", flush=True)  # fmt: skip
        return out

    if args.reference_parts:
        for label, (leave_out, no_indexes) in REFERENCE_PARTS.items():
            url = fresh("parts")
            upgrade(url)
            seconds = reference_same_rows(csv_path, url, leave_out=leave_out, no_customer_indexes=no_indexes)
            rate = args.rows / seconds
            print(f"reference B, {label:<42} {seconds:6.1f} s {rate:>9,.0f} rows/s", flush=True)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        return
    ref_url = fresh("reference")
    timed("reference A: raw cells, one table", reference, csv_path, ref_url)
    same_url = fresh("same_rows")
    upgrade(same_url)
    timed("reference B: same rows, no checks", reference_same_rows, csv_path, same_url)

    variants = [("all-or-nothing (CLI default)", "all_or_nothing", True, "aon")]
    if "skip" not in skip:
        variants.append(("skip-invalid (one pass)", "skip_invalid", True, "skip"))
    if "noaudit" not in skip:
        variants.append(("skip-invalid, no per-row audit", "skip_invalid", False, "noaudit"))
    urls = []
    for label, mode, audit_rows, name in variants:
        url = fresh(name)
        upgrade(url)
        urls.append(url)
        timed(label, ours, csv_path, url, mode, audit_rows)
        if name == "aon" and "reimport" not in skip:
            timed("re-import, all unchanged", ours, csv_path, url, mode, audit_rows)
    if args.pg:
        for url in [ref_url, same_url, *urls]:
            drop_pg(url)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    ref_wall, ref_cpu = results[0][1], results[0][2]
    same_wall, same_cpu = results[1][1], results[1][2]
    where = (
        "this process (the SQLite engine runs in it) and the import's file-reading process"
        if not args.pg
        else "this process and the import's file-reading process (not the server's)"
    )
    lines = [
        f"\n### {engine}, {args.rows:,} rows ({time.strftime('%Y-%m-%d %H:%M')}; {machine})\n",
        f"Load average at the end: {os.getloadavg()[0]:.1f}. CPU time is {where}; the ratios compare speeds "
        "(higher is faster), wall and CPU separately.\n",
        "| run | rows/s (wall) | rows/CPU-s | wall s | CPU s | vs ref. A (wall / CPU) "
        "| vs ref. B (wall / CPU) | detail |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for label, wall, cpu, detail in results:
        speeds = (
            f"{ref_wall / wall:.3f} / {ref_cpu / cpu:.3f} | {same_wall / wall:.2f} / {same_cpu / cpu:.2f}"
        )
        rates = f"{args.rows / wall:,.0f} | {args.rows / cpu:,.0f} | {wall:.1f} | {cpu:.1f}"
        lines.append(f"| {label} | {rates} | {speeds} | {detail} |")
    text_out = "\n".join(lines) + "\n"
    print(text_out)
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(text_out)


if __name__ == "__main__":
    tempfile.tempdir = None
    main()
