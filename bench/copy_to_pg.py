"""Copy a benchmark database from SQLite into PostgreSQL, so both databases are measured on the same rows.

    python bench/copy_to_pg.py --sqlite bench/out/segments.db --pg postgresql+psycopg://...

The PostgreSQL database is migrated to head and emptied first. Every non-empty table is copied with COPY,
parents before children; datetimes are naive UTC text in SQLite and go in with the session in UTC. The id
sequences are advanced past the copied ids afterwards.
"""

import argparse
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

import kokyaku.models  # noqa: E402,F401 - registers every table on Base.metadata
from kokyaku.db import Base  # noqa: E402
from kokyaku.migrate import upgrade  # noqa: E402

CHUNK = 50_000


def copy(sqlite_path: str, pg_url: str, *, resume: bool = False) -> None:
    upgrade(pg_url)
    url = make_url(pg_url).set(drivername="postgresql")
    src = sqlite3.connect(sqlite_path)
    tables = [t for t in Base.metadata.sorted_tables if t.name != "alembic_version"]
    with psycopg.connect(url.render_as_string(hide_password=False)) as pg:
        pg.execute("SET TIME ZONE 'UTC'")
        if not resume:
            pg.execute("TRUNCATE " + ", ".join(t.name for t in tables) + " RESTART IDENTITY CASCADE")
        for table in tables:
            if resume and pg.execute(f"SELECT EXISTS (SELECT 1 FROM {table.name})").fetchone()[0]:  # type: ignore[index]
                continue
            present = {r[1] for r in src.execute(f"PRAGMA table_info({table.name})")}
            # a column missing from an older SQLite file keeps its PostgreSQL default
            columns = [c.name for c in table.columns if c.name in present]
            if not columns:  # a table the SQLite file predates
                continue
            started = time.perf_counter()
            rows = src.execute(f"SELECT {', '.join(columns)} FROM {table.name}")  # noqa: S608 - names from metadata
            n = 0
            with pg.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as cp:
                while chunk := rows.fetchmany(CHUNK):
                    for row in chunk:
                        cp.write_row(row)
                    n += len(chunk)
            pg.commit()  # table by table, so --resume can pick up after a failure
            if n:
                print(f"{table.name}: {n:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
            if "id" in table.columns and n:
                pg.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"(SELECT max(id) FROM {table.name}))"
                )
        pg.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sqlite", required=True)
    parser.add_argument("--pg", required=True)
    parser.add_argument("--resume", action="store_true", help="keep what is copied; copy the empty tables")
    args = parser.parse_args()
    copy(args.sqlite, args.pg, resume=args.resume)


if __name__ == "__main__":
    main()
