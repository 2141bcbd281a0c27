"""The one SQLite database: opened the same way by every store module (WAL, busy timeout)."""

from __future__ import annotations

import os
import sqlite3
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
    return db


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """All-or-nothing writes: commit on success, roll back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
