"""The one SQLite database: opened the same way by every store module (WAL, busy timeout), each connection owned
by one thread at a time (`OwnedConnection`)."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

import sqlite_utils


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
    """The owned SQLite connection of `db` (a sqlite_utils database or the connection itself); None on PostgreSQL,
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


def connect(path: str | os.PathLike | None = None) -> sqlite_utils.Database:
    """Open (creating) the database at `path`, or an in-memory one when `path` is None; the calling thread owns it
    (`OwnedConnection`).

    The connection is in autocommit mode; group writes with `transaction(db)`.
    """
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    conn = sqlite3.connect(":memory:" if path is None else str(path), timeout=30, check_same_thread=False,
                           isolation_level=None, factory=OwnedConnection)
    db = sqlite_utils.Database(conn)
    if path is not None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    # No memory-mapped reads: a mapped file that cannot be backed (full disk, file changed under us) kills the
    # process with SIGBUS instead of returning an error SQLite can report.
    db.execute("PRAGMA mmap_size=0")
    return db


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

    On PostgreSQL (SQLAlchemy over psycopg): an OperationalError (server gone or refusing, disk full, statement
    cancelled) or any error after which SQLAlchemy found the connection broken; a constraint or SQL mistake is not.
    """
    if isinstance(e, sqlite3.Error):
        return not isinstance(e, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError))
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")  # not loaded: no PostgreSQL database was opened
    if sqlalchemy_errors is not None and isinstance(e, sqlalchemy_errors.DBAPIError):
        return isinstance(e, sqlalchemy_errors.OperationalError) or e.connection_invalidated
    return False


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """All-or-nothing writes: commit on success, roll back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:  # SQLite rolls back by itself on some errors (a full disk): keep the cause
            db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except BaseException:  # a commit that failed (no space for the journal) must not leave the transaction open
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
