"""Engine, sessions, the declarative base and the SQLite pragmas."""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from kokyaku.errors import DatabaseBusy

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC (SQLite keeps no zone) and returns them aware in UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Kokyaku stores only timezone-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def utcnow() -> datetime:
    return datetime.now(UTC)


# Pages of write-ahead log after which a committing connection copies the log back into the database itself.
WAL_AUTOCHECKPOINT = 16384  # 64 MB
# The same, as a backstop only, in a process whose own thread does that work (WalCheckpointer).
WAL_AUTOCHECKPOINT_BACKSTOP = 65536  # 256 MB


def make_engine(
    url: str,
    *,
    busy_timeout_ms: int = 10000,
    echo: bool = False,
    wal_autocheckpoint: int = WAL_AUTOCHECKPOINT,
) -> Engine:
    """Create the engine; on SQLite set WAL, busy timeout and foreign keys, and let writes BEGIN IMMEDIATE."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            pool_size=20,
            max_overflow=20,
        )
        _configure_sqlite(engine, busy_timeout_ms, wal_autocheckpoint)
        return engine
    return create_engine(url, echo=echo, pool_size=20, max_overflow=20, pool_pre_ping=True)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, wal_autocheckpoint: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN is ours (deferred or IMMEDIATE).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA temp_store=MEMORY")
        # Checkpoint every 16,384 WAL pages (64 MB), not SQLite's default 1,000: one ingestion batch writes
        # 1,500+ random index pages, so the default checkpointed (rewrote and synced) on every commit; this
        # way most of a page's rewrites fold into one (bench/RESULTS_timeline.md). The size limit makes each
        # completed checkpoint truncate the file back to 64 MB (it kept its 1.7 GB peak without one).
        cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cur.execute("PRAGMA journal_size_limit=67108864")
        cur.close()

    turn = _WriteTurn(busy_timeout_ms / 1000)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer that starts deferred and upgrades later can hit SQLITE_BUSY without waiting;
        # IMMEDIATE takes the write lock up front and honours busy_timeout.
        if not conn.get_execution_options().get("sqlite_immediate", False):
            conn.exec_driver_sql("BEGIN")
            return
        raw = conn.connection.dbapi_connection
        turn.take(raw)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turn.end(raw)
            raise

    # The turn ends once COMMIT or ROLLBACK has run: the engine's commit and rollback events come before
    # them, so the dialect's own calls (also the pool's rollback of a returned connection) are wrapped.
    commit, rollback = engine.dialect.do_commit, engine.dialect.do_rollback

    def do_commit(fairy: Any) -> None:
        try:
            commit(fairy)
        finally:
            turn.end(getattr(fairy, "dbapi_connection", fairy))

    def do_rollback(fairy: Any) -> None:
        try:
            rollback(fairy)
        finally:
            turn.end(getattr(fairy, "dbapi_connection", fairy))

    engine.dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
    engine.dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]

    @event.listens_for(engine, "invalidate")
    @event.listens_for(engine, "close")
    def _on_gone(dbapi_conn: Any, *_args: Any) -> None:
        turn.end(dbapi_conn)


class _WriteTurn:
    """The writers of one process take turns at SQLite's single write lock.

    SQLite lets one connection write at a time; one that finds the lock taken sleeps and polls (1, 2, 5, ...
    100 ms), so with two writers in a process the second woke up to tens of milliseconds after the first
    had committed. Here it waits on a lock that is handed over the moment the commit ends. Writers in other
    processes (a separate `kokyaku worker`) still meet at SQLite's lock. Either wait gives up after the
    busy timeout, this one with DatabaseBusy."""

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self._holder: Any = None  # the DB-API connection whose transaction has the turn
        self._timeout = timeout

    def take(self, dbapi_conn: Any) -> None:
        if not self._lock.acquire(timeout=self._timeout):
            raise DatabaseBusy()
        self._holder = dbapi_conn

    def end(self, dbapi_conn: Any) -> None:
        # Calls for connections without the turn (most rollbacks, pool closes) pass by.
        if dbapi_conn is not None and self._holder is dbapi_conn:
            self._holder = None
            self._lock.release()


class WalCheckpointer:
    """Copies SQLite's write-ahead log back into the database from a thread of its own, between commits.

    Otherwise the commit that crosses the auto-checkpoint threshold does it, and syncs, before it returns:
    ~22 ms per ingestion batch on average, paid by whichever request commits. PASSIVE never waits for
    readers or the writer; the commit-time checkpoint stays as a backstop should this thread fall behind."""

    def __init__(self, path: str, interval: float = 0.2) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(path, interval), name="sqlite-wal-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self, path: str, interval: float) -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    continue  # another checkpoint is running (the backstop): try again next time
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Database:
    """The engine plus the two kinds of session scope: read-only and writing.

    `background_checkpoints` (SQLite, long-lived processes such as the web server): a WalCheckpointer copies
    the write-ahead log back between commits, so that requests do not wait for it.

    A writing session that waited out the busy timeout (SQLite: another writer held the database) raises
    DatabaseBusy, which the app answers with 503: nothing was written."""

    def __init__(
        self, url: str, *, busy_timeout_ms: int = 10000, background_checkpoints: bool = False
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        path = make_url(url).database if self.is_sqlite else None
        threaded = background_checkpoints and path not in (None, "", ":memory:")
        self.engine = make_engine(
            url,
            busy_timeout_ms=busy_timeout_ms,
            wal_autocheckpoint=WAL_AUTOCHECKPOINT_BACKSTOP if threaded else WAL_AUTOCHECKPOINT,
        )
        self._checkpointer = WalCheckpointer(str(path)) if threaded else None
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        write_engine = self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        self._writer = sessionmaker(write_engine, expire_on_commit=False)

    @contextmanager
    def session(self, *, write: bool = True, connection: Connection | None = None) -> Iterator[Session]:
        """One transaction: commits at the end, rolls back on any error, then runs after-commit hooks.
        `connection` runs it on a connection the caller holds (and has set up) instead of the pool's."""
        if connection is not None:
            session = Session(bind=connection, expire_on_commit=False)
        else:
            session = (self._writer if write else self._reader)()
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            if _sqlite_busy(exc):
                raise DatabaseBusy() from exc
            raise
        finally:
            hooks = session.info.pop("after_commit", [])
            session.close()
        for hook in hooks:
            hook()

    @contextmanager
    def checkpointing_thread(self) -> Iterator[bool]:
        """SQLite: a WalCheckpointer for the duration of a long series of writes (an import), unless the
        database runs one already (the web server's). Yields whether the writes may leave checkpoints to a
        thread: then their connection should raise its own threshold to WAL_AUTOCHECKPOINT_BACKSTOP, and
        the copying runs on another core instead of inside their commits."""
        path = make_url(self.url).database if self.is_sqlite else None
        if path in (None, "", ":memory:"):
            yield False
            return
        own = WalCheckpointer(str(path)) if self._checkpointer is None else None
        try:
            yield True
        finally:
            if own is not None:
                own.stop()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()


def _sqlite_busy(exc: BaseException) -> bool:
    """SQLite gave up waiting for another connection's write lock (its busy timeout ran out)."""
    orig = exc.orig if isinstance(exc, OperationalError) else exc
    return isinstance(orig, sqlite3.OperationalError) and orig.sqlite_errorname == "SQLITE_BUSY"


def after_commit(session: Session, hook: Any) -> None:
    """Queue a side effect (email, job wake-up) to run only if the transaction commits."""
    session.info.setdefault("after_commit", []).append(hook)
