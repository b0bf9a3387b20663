"""SQLite's write-ahead log: the web server's own thread copies it back into the database between commits."""

import sqlite3
import time
from pathlib import Path

import pytest

from kokyaku.db import Database


def _checkpointed_rows(path: Path) -> int:
    """Rows of t in the database file itself: an immutable connection ignores the write-ahead log, so it
    sees only what a checkpoint has copied back."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
    except sqlite3.OperationalError:  # the table itself is not checkpointed yet
        return 0
    finally:
        conn.close()


def _write(db: Database, rows: int) -> None:
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.exec_driver_sql("INSERT INTO t (v) VALUES (?)", [("x" * 100,)] * rows)


def _wait_for_rows(path: Path, rows: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while (seen := _checkpointed_rows(path)) < rows and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


@pytest.mark.parametrize("background", [True, False])
def test_background_checkpoints_copy_the_log_back_between_commits(tmp_path: Path, background: bool) -> None:
    path = tmp_path / "wal.db"
    db = Database(f"sqlite:///{path}", background_checkpoints=background)
    try:
        _write(db, 2000)  # ~60 pages: far below either auto-checkpoint threshold
        seen = _wait_for_rows(path, 2000, seconds=5 if background else 1)
    finally:
        db.dispose()
    # Without the thread nothing copies the log back until a commit crosses the threshold.
    assert seen == (2000 if background else 0)


def test_dispose_stops_the_checkpoint_thread(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'stop.db'}", background_checkpoints=True)
    checkpointer = db._checkpointer
    assert checkpointer is not None and checkpointer._thread.is_alive()
    db.dispose()
    assert not checkpointer._thread.is_alive() and db._checkpointer is None

