"""The one SQLite database: opened the same way by every store module (WAL, busy timeout), behind the
`core.engine.Database` interface, over sqlite-utils; each connection owned by one thread at a time
(`OwnedConnection`)."""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import sqlite_utils

from core.dialect import SQLITE

class WrongThread(sqlite3.ProgrammingError):
    """A connection used by a thread that does not own it: a bug of the caller, never a fault of the storage."""


class OwnedConnection(sqlite3.Connection):
    """An SQLite connection that one thread owns: the one that opened it, or after `hand_over` the next one that
    uses it. A call from any other thread raises `WrongThread`, every time.

    One connection has one transaction: a statement from a second thread runs inside the first one's (a migration
    on the event loop once ended the database thread's transaction: `cannot commit - no transaction is active`).
    Such a race fails once in thousands of runs; this check fails every run, so a test catches it. sqlite3's own
    `check_same_thread` cannot be handed over, hence this subclass (half a microsecond a call)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._owner: threading.Thread | None = threading.current_thread()
        self._claiming = threading.Lock()

    def _check_owner(self) -> None:
        me = threading.current_thread()
        if self._owner is me:
            return
        with self._claiming:
            if self._owner is None:  # handed over: the first thread to use it owns it now
                self._owner = me
                return
        raise WrongThread(
            f"this SQLite connection belongs to thread {self._owner.name!r}, and thread {me.name!r} used it: run the "
            "call on its owner (the server's stores: on the database thread, Runtime.db), hand the connection "
            "over for good (core.sqlite.hand_over), or let threads take turns under core.sqlite.OwnerLock")

    def execute(self, *args, **kwargs):
        self._check_owner()
        return super().execute(*args, **kwargs)

    def executemany(self, *args, **kwargs):
        self._check_owner()
        return super().executemany(*args, **kwargs)

    def executescript(self, *args, **kwargs):
        self._check_owner()
        return super().executescript(*args, **kwargs)

    def cursor(self, *args, **kwargs):
        self._check_owner()
        return super().cursor(*args, **kwargs)

    def commit(self):
        self._check_owner()
        return super().commit()

    def rollback(self):
        self._check_owner()
        return super().rollback()

    def close(self):
        self._check_owner()
        return super().close()


def _owned(db) -> OwnedConnection | None:
    """The owned SQLite connection of `db` (a SqliteDatabase or the connection itself); None on PostgreSQL,
    whose pool gives each thread a connection of its own for each statement or transaction."""
    conn = getattr(db, "conn", db)
    return conn if isinstance(conn, OwnedConnection) else None


def hand_over(db) -> None:
    """The owner lets go of `db` for good: the next thread that uses it owns it. For a connection opened on one
    thread for another (a test's thread working on a database the test opened). The caller must not use it again."""
    conn = _owned(db)
    if conn is not None:
        conn._check_owner()
        conn._owner = None


class OwnerLock:
    """A re-entrant lock whose holder owns `db`'s connection: for one connection that several threads use in
    turn, each only while holding the lock (the knowledge base's searches and syncs, the rate-limit buckets).
    Using the connection without the lock, from any thread but the last holder, still raises `WrongThread`."""

    def __init__(self, db):
        self._lock = threading.RLock()
        self._conn = _owned(db)

    def __enter__(self) -> "OwnerLock":
        self._lock.acquire()
        if self._conn is not None:
            self._conn._owner = threading.current_thread()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def connect(path: str | os.PathLike | None = None, busy_timeout: float = 30) -> SqliteDatabase:
    """Open (creating) the database at `path`, or an in-memory one when `path` is None; a write waits up to
    `busy_timeout` seconds for another connection's. The calling thread owns it (`OwnedConnection`).

    The connection is in autocommit mode; group writes with `db.transaction()`.
    """
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    conn = sqlite3.connect(":memory:" if path is None else str(path), timeout=busy_timeout, check_same_thread=False,
                           isolation_level=None, factory=OwnedConnection)
    if path is not None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    # No memory-mapped reads: a mapped file that cannot be backed (full disk, file changed under us) kills the
    # process with SIGBUS instead of returning an error SQLite can report.
    conn.execute("PRAGMA mmap_size=0")
    return SqliteDatabase(conn)


class SqliteDatabase:
    """The `core.engine.Database` interface over one sqlite3 connection (`conn`, for what only SQLite has: a
    Python function, `pragma data_version`), through `sqlite_utils.Database` (`utils`). `execute` returns the
    sqlite3 cursor itself: rows are read lazily, as the stores always did."""

    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.utils = sqlite_utils.Database(conn)

    def execute(self, sql: str, args: Sequence = ()) -> sqlite3.Cursor:
        return self.utils.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        """One statement for many rows: sqlite3 steps them without Python in between."""
        self.conn.executemany(sql, rows)

    def insert(self, sql: str, args: Sequence = ()) -> int:
        """An INSERT of one row; its new id (the cursor's lastrowid: cheaper here than RETURNING)."""
        return self.conn.execute(sql, args).lastrowid

    @contextmanager
    def transaction(self) -> Iterator[SqliteDatabase]:
        """All-or-nothing writes: commit on success, roll back on any exception. Takes the write lock at once
        (BEGIN IMMEDIATE), so that a read-then-write inside waits for no one half-way."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.conn.in_transaction:  # SQLite rolls back by itself on some errors (a full disk): keep the cause
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:  # a commit that failed (no space for the journal) must not leave the transaction open
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def serialise(self, name: str) -> None:
        """Nothing to do: inside `transaction()` this connection already holds SQLite's one writer lock."""

    def has_table(self, name: str) -> bool:
        return self.utils[name].exists()

    def columns(self, table: str) -> list[str]:
        return list(self.utils[table].columns_dict)

    def close(self) -> None:
        self.conn.close()


class ScratchDatabase(SqliteDatabase):
    """A temporary SQLite file of this process alone, for work on more rows than should be held in memory (an
    import's staging, a spool of turns): always SQLite, whatever the bot's database is (scratch rows never leave
    the process); no journal and no fsync (nothing in it must survive a crash); the file goes on `close`."""

    def __init__(self, prefix: str):
        self._dir = tempfile.TemporaryDirectory(prefix=prefix)
        super().__init__(sqlite3.connect(str(Path(self._dir.name) / "scratch.db"), isolation_level=None))
        self.conn.execute("pragma journal_mode=off")
        self.conn.execute("pragma synchronous=off")

    def close(self) -> None:
        super().close()
        self._dir.cleanup()


class StorageError(RuntimeError):
    """The database could not be used (full disk, read-only files, I/O error): the request is refused with a
    reason and may be retried; nothing half-written remains (every write is one transaction)."""

    def __init__(self, operation: str, cause: Exception):
        super().__init__(f"the database failed ({operation}): {cause}")
        self.operation, self.cause = operation, cause

    @property
    def reason(self) -> str:
        """What a client may be told: the kind of fault, never a path."""
        return f"storage unavailable: {self.cause}; nothing was saved, try again later"


def is_storage_fault(e: BaseException) -> bool:
    """A fault of the machine (disk full, read-only, I/O, locked too long), not of the program's SQL.

    On PostgreSQL (psycopg): an OperationalError (server gone or refusing, no connection within the timeout,
    disk full, statement cancelled); a constraint or SQL mistake is not.
    """
    if isinstance(e, sqlite3.Error):
        return not isinstance(e, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError))
    psycopg = sys.modules.get("psycopg")  # not loaded: no PostgreSQL database was opened
    return psycopg is not None and isinstance(e, psycopg.OperationalError)
