"""One database from a URL, on either engine, and versioned schema migrations for the stores.

- empty, None or a file path: today's SQLite file (`knowledge.database.connect`: WAL, busy timeout), through
  sqlite_utils exactly as before;
- `postgresql://user@host/db`: PostgreSQL through SQLAlchemy Core and psycopg 3, behind the same small interface
  the stores use (`execute` with `?` placeholders, `transaction`, `dialect`).

Each store declares its migrations as a list, one step per schema version, each step SQL (or a function of the
database) per engine; `migrate` applies the steps a database has not had yet, in one transaction, and records
the version in `schema_version`. Running it again does nothing.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, Union

import sqlite_utils

from knowledge.database import connect, transaction

Step = Union[str, Callable[["Database"], None]]  # SQL (statements separated by ";") or a function of the database
Migration = dict[str, Step]  # engine ("sqlite", "postgresql") -> step


def is_postgres_url(location: str | os.PathLike | None) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgresql+psycopg://", "postgres://"))


def open_database(location: str | os.PathLike | None) -> Database:
    """A PostgreSQL URL opens PostgreSQL; anything else is an SQLite path (None: in memory)."""
    if is_postgres_url(location):
        return PostgresDatabase(location)
    return connect(location or None)


def dialect(db: Database) -> str:
    return db.dialect if isinstance(db, PostgresDatabase) else "sqlite"


class PostgresDatabase:
    """PostgreSQL with the part of sqlite_utils.Database the stores use. Outside `transaction()` every
    `execute` is its own transaction; rows come back buffered. Callers serialise access, as with SQLite."""

    dialect = "postgresql"

    def __init__(self, url: str):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"), pool_pre_ping=True)
        self._local = threading.local()  # the open transaction's connection, if any

    def execute(self, sql: str, args: Sequence = ()) -> Rows:
        tx = getattr(self._local, "conn", None)
        if tx is not None:
            return Rows(tx.exec_driver_sql(sql.replace("?", "%s"), tuple(args)))
        with self.engine.begin() as conn:
            return Rows(conn.exec_driver_sql(sql.replace("?", "%s"), tuple(args)))

    @contextmanager
    def transaction(self) -> Iterator[PostgresDatabase]:
        with self.engine.begin() as conn:
            self._local.conn = conn
            try:
                yield self
            finally:
                self._local.conn = None

    def close(self) -> None:
        self.engine.dispose()


class Rows(list):
    """A statement's rows, fetched: iterate, or fetchone/fetchall like a DB-API cursor; `rowcount` as well."""

    def __init__(self, result):
        super().__init__(result.fetchall() if result.returns_rows else [])
        self.rowcount = result.rowcount

    def fetchone(self):
        return self[0] if self else None

    def fetchall(self) -> list:
        return list(self)


Database = Union[sqlite_utils.Database, PostgresDatabase]


@contextmanager
def writing(db: Database) -> Iterator[Database]:
    """All-or-nothing writes on either engine."""
    with (db.transaction() if isinstance(db, PostgresDatabase) else transaction(db)):
        yield db


def close(db: Database) -> None:
    db.close() if isinstance(db, PostgresDatabase) else db.conn.close()


def migrate(db: Database, component: str, migrations: Sequence[Migration]) -> int:
    """Bring `component`'s tables up to version len(migrations); returns the version it found."""
    engine = dialect(db)
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    if _version(db, component) >= len(migrations):  # the usual case, without taking the write lock
        return len(migrations)
    with writing(db):
        if engine == "postgresql":  # two workers starting at once: one migrates, the other then finds it done
            db.execute("SELECT pg_advisory_xact_lock(hashtext('supportbot schema_version'))")
        found = _version(db, component)
        for step in migrations[found:]:
            step = step[engine]
            if callable(step):
                step(db)
            else:
                for statement in filter(str.strip, step.split(";")):
                    db.execute(statement)
        db.execute("INSERT INTO schema_version (component, version) VALUES (?, ?) "
                   "ON CONFLICT (component) DO UPDATE SET version = excluded.version", [component, len(migrations)])
    return found


def _version(db: Database, component: str) -> int:
    row = db.execute("SELECT version FROM schema_version WHERE component = ?", [component]).fetchone()
    return row[0] if row else 0
