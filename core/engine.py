"""One database from a URL, on either engine, behind one interface (`Database`), and versioned schema migrations
for the stores.

- empty, None or a file path: the SQLite file (`core.sqlite.connect`: WAL, busy timeout);
- `postgresql://user@host/db`: PostgreSQL through psycopg 3 and its pool, psycopg_pool (`PostgresDatabase`).

Both take SQL with `?` placeholders; what the engines spell differently is written once in `core.dialect`.

Why psycopg_pool and not SQLAlchemy: the stores write SQL text (one text per statement, with `core.dialect`
fragments), so SQLAlchemy Core's compiled statements and types were never used; all it did was pool connections
(and parse URLs, wrap errors). psycopg_pool is psycopg's own pool, and does that job: broken connections are
discarded and replaced, new ones opened in the background, and a `check` callback vets a connection before it
is handed out. Measured here: importing it costs 4-6 ms against SQLAlchemy's 127-193 ms (every process that
opens PostgreSQL pays it); a statement costs the same either way within this shared machine's spread (insert or
select by id 89-168 µs after, 139-174 µs before, 4 alternating runs of 2,000). Its `check_connection`, like
SQLAlchemy's `pool_pre_ping`, pings on every checkout, and here every statement outside a transaction is a
checkout, so the check is our own: it pings only a connection unused for PING_AFTER_IDLE seconds, which neither
library offers. After a connection breaks, the pooled ones are checked at once (SQLAlchemy invalidated its pool
on a disconnect). Unlike SQLAlchemy's, the pool does not fail a call at once when the server refuses
connections: the call waits for one up to the connect timeout (5 s), then fails with `PoolTimeout` (a storage
fault, as before).

Each store declares its migrations as a list, one step per schema version, each step SQL (or a function of the
database) per engine; `migrate` applies the steps a database has not had yet, in one transaction, and records
the version in `schema_version`. Running it again does nothing.
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Callable, Iterator, Protocol, Sequence, Union

from core.dialect import POSTGRESQL, TYPES, Dialect
from core.sqlite import connect

Step = Union[str, Callable[["Database"], None]]  # SQL (statements separated by ";") or a function of the database
Migration = dict[str, Step]  # engine ("sqlite", "postgresql") -> step


class Rows(Protocol):
    """A statement's result: iterate its rows (tuples), or fetchone/fetchall; `rowcount` for a write."""

    rowcount: int

    def __iter__(self) -> Iterator[Any]: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list: ...


class Database(Protocol):
    """What every store uses of its database, the same on both engines (`core.sqlite.SqliteDatabase`,
    `PostgresDatabase`). SQL uses `?` placeholders; `dialect` spells what the engines write differently."""

    dialect: Dialect

    def execute(self, sql: str, args: Sequence = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        """One statement for many rows (a bulk write), without a round trip per row."""

    def insert(self, sql: str, args: Sequence = ()) -> int:
        """An INSERT of one row into a table with an `id` column; returns the new row's id."""

    def transaction(self) -> AbstractContextManager[Database]:
        """All-or-nothing writes: committed when the block ends, rolled back when it raises. Outside one, every
        statement commits by itself. On PostgreSQL one opened inside another (same thread) is part of it; SQLite
        refuses that (a connection there has one owner thread, and one transaction at a time)."""

    def serialise(self, name: str) -> None:
        """Inside `transaction()`: wait for any other process's transaction under the same name, so that
        read-then-write work (a watermark and what it covers) is done by one at a time."""

    def has_table(self, name: str) -> bool: ...

    def close(self) -> None: ...


def on_both(schema: str) -> Migration:
    """One migration step from a schema written with the placeholders of TYPES."""
    return {engine: schema.format(**types) for engine, types in TYPES.items()}


def is_postgres_url(location: str | os.PathLike | None) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgresql+psycopg://", "postgres://"))


def open_database(location: str | os.PathLike | None) -> Database:
    """A PostgreSQL URL opens PostgreSQL; anything else is an SQLite path (None: in memory)."""
    if is_postgres_url(location):
        return PostgresDatabase(location)
    return connect(location or None)


# Every connection: give up connecting after 5 s, and notice a peer that went away (keepalives after 30 s idle;
# unacknowledged data for 30 s) instead of waiting on the kernel's minutes-long defaults.
CONNECT_ARGS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                "keepalives_count": 3, "tcp_user_timeout": 30_000}
POOL_SIZE = 15  # connections at most: as many threads use the database at once (SQLAlchemy's 5 + 10 overflow before)
PING_AFTER_IDLE = 5.0  # seconds: a pooled connection unused for longer is pinged before use (one round trip)


class PostgresDatabase:
    """PostgreSQL behind the `Database` interface. Outside `transaction()` every `execute` is its own transaction
    (autocommit: one round trip); rows come back buffered. Connections come from a pool (psycopg_pool), one per
    thread at a time: a caller may use it from several threads (the chat's turn threads). A connection is opened
    in the background at once; a call waits for one at most the connect timeout, then fails (`PoolTimeout`, an
    `OperationalError`: a storage fault)."""

    dialect = POSTGRESQL

    def __init__(self, url: str, **connect_args):
        """`connect_args`: psycopg's connection settings over CONNECT_ARGS (e.g. `options` for server settings)."""
        from psycopg_pool import ConnectionPool

        settings = {**CONNECT_ARGS, **connect_args}
        self._idle_since: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> monotonic time
        self.pool = ConnectionPool(_conninfo(url), kwargs={**settings, "autocommit": True}, min_size=1,
                                   max_size=POOL_SIZE, timeout=settings["connect_timeout"], check=self._ping_if_idle,
                                   name="supportbot", open=True)
        self._local = threading.local()  # the open transaction's connection, if any

    def execute(self, sql: str, args: Sequence = ()) -> PostgresRows:
        sql = _driver_sql(sql, args)
        tx = getattr(self._local, "conn", None)
        if tx is not None:
            return PostgresRows(tx.execute(sql, args))
        with self._connection() as conn:
            return PostgresRows(conn.execute(sql, args))

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        """psycopg sends the rows in one pipeline (a round trip per batch, not per row)."""
        if not rows:
            return
        sql = _driver_sql(sql, rows[0])
        tx = getattr(self._local, "conn", None)
        with (nullcontext(tx) if tx is not None else self._connection()) as conn:
            conn.cursor().executemany(sql, rows)

    def insert(self, sql: str, args: Sequence = ()) -> int:
        return self.execute(f"{sql} RETURNING id", args).fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[PostgresDatabase]:
        """One transaction on this thread's connection; inside another one (a migration during `db copy`), part of
        that one."""
        if getattr(self._local, "conn", None) is not None:
            yield self
            return
        with self._connection() as conn, conn.transaction():
            self._local.conn = conn
            try:
                yield self
            finally:
                self._local.conn = None

    def serialise(self, name: str) -> None:
        """A transaction-scoped advisory lock on the name (SQLite's writer lock does the same there)."""
        self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", [name])

    def has_table(self, name: str) -> bool:
        return self.execute("select to_regclass(?) is not null", [name]).fetchone()[0]

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        conn = self.pool.getconn()
        try:
            yield conn
        finally:
            self._idle_since[conn] = time.monotonic()
            broken = conn.broken
            self.pool.putconn(conn)  # a broken one is discarded (and replaced) by the pool
            if broken:  # the server went away or ended connections: the pooled ones are likely gone too, so they
                self.pool.check()  # are pinged now, not each found dead by a request (SQLAlchemy's pool did that)

    def _ping_if_idle(self, conn) -> None:
        """The pool's check before it hands out a connection. One that sat unused for a while may have been dropped
        (a server restart, a proxy's idle timeout): ping it, and on failure the pool takes or opens another. Not
        psycopg_pool's own `check_connection`, which pings on every checkout: here every statement outside a
        transaction is a checkout, so that would double the chat's round trips."""
        idle_since = self._idle_since.get(conn)  # None: new, never used
        if idle_since is not None and time.monotonic() - idle_since >= PING_AFTER_IDLE:
            conn.execute("SELECT 1")


def _conninfo(url: str) -> str:
    """libpq's URL: SQLAlchemy's driver-qualified spelling (postgresql+psycopg://), still accepted, made plain."""
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", url)


def _driver_sql(sql: str, args: Sequence) -> str:
    """psycopg's placeholders are %s, so with arguments a literal % (as in LIKE '/%') is written %%."""
    return sql.replace("%", "%%").replace("?", "%s") if args else sql


class PostgresRows(list):
    """A statement's rows, fetched: iterate, or fetchone/fetchall like a DB-API cursor; `rowcount` and
    `description` (the columns) as well."""

    def __init__(self, cursor):
        super().__init__(cursor.fetchall() if cursor.description is not None else [])
        self.rowcount, self.description = cursor.rowcount, cursor.description

    def fetchone(self):
        return self[0] if self else None

    def fetchall(self) -> list:
        return list(self)


def migrate(db: Database, component: str, migrations: Sequence[Migration]) -> int:
    """Bring `component`'s tables up to version len(migrations); returns the version it found."""
    engine = db.dialect.name
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    if _version(db, component) >= len(migrations):  # the usual case, without taking the write lock
        return len(migrations)
    with db.transaction():
        db.serialise("supportbot schema_version")  # two workers starting at once: one migrates, one finds it done
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
