"""The one SQLite database: opened the same way by every store module (WAL, busy timeout)."""

from __future__ import annotations

import os
import sqlite3
import sys
from contextlib import contextmanager
from typing import Iterator

import sqlite_utils


def connect(path: str | os.PathLike | None = None) -> sqlite_utils.Database:
    """Open (creating) the database at `path`, or an in-memory one when `path` is None.

    The connection is in autocommit mode; group writes with `transaction(db)`.
    """
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    conn = sqlite3.connect(
        ":memory:" if path is None else str(path), timeout=30, check_same_thread=False, isolation_level=None
    )
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
