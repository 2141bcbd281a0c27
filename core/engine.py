"""One database from a URL, on either engine, behind one interface (`Database`), and versioned schema migrations
for the stores.

- empty, None or a file path: the SQLite file (`core.sqlite.connect`: WAL, busy timeout);
- `postgresql://user@host/db`: PostgreSQL through psycopg 3, pooled by SQLAlchemy (`PostgresDatabase`).

Both take SQL with `?` placeholders; what the engines spell differently is written once in `core.dialect`.

Each store declares its migrations as a list, one step per schema version, each step SQL (or a function of the
database) per engine; `migrate` applies the steps a database has not had yet, in one transaction, and records
the version in `schema_version`. Running it again does nothing.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import AbstractContextManager, contextmanager
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
        statement commits by itself."""

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
PING_AFTER_IDLE = 5.0  # seconds: a pooled connection unused for longer is pinged before use (one round trip)


class PostgresDatabase:
    """PostgreSQL behind the `Database` interface. Outside `transaction()` every `execute` is its own transaction
    (autocommit: one round trip); rows come back buffered. Connections come from a pool, one per thread at a time:
    a caller may use it from several threads (the chat's turn threads)."""

    dialect = POSTGRESQL

    def __init__(self, url: str, **connect_args):
        """`connect_args`: psycopg's connection settings over CONNECT_ARGS (e.g. `options` for server settings)."""
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url

        self.engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"),
                                    connect_args={**CONNECT_ARGS, **connect_args})
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")  # same pool
        event.listen(self.engine, "checkin", _note_checkin)
        event.listen(self.engine, "checkout", _ping_if_idle)
        self._local = threading.local()  # the open transaction's connection, if any

    def execute(self, sql: str, args: Sequence = ()) -> PostgresRows:
        return self._run(_driver_sql(sql, args), tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        """psycopg sends the rows in one pipeline (a round trip per batch, not per row)."""
        if rows:
            self._run(_driver_sql(sql, rows[0]), [tuple(r) for r in rows])

    def insert(self, sql: str, args: Sequence = ()) -> int:
        return self.execute(f"{sql} RETURNING id", args).fetchone()[0]

    def _run(self, sql: str, args) -> PostgresRows:
        tx = getattr(self._local, "conn", None)
        if tx is not None:
            return PostgresRows(tx.exec_driver_sql(sql, args))
        with self._autocommit.connect() as conn:
            return PostgresRows(conn.exec_driver_sql(sql, args))

    @contextmanager
    def transaction(self) -> Iterator[PostgresDatabase]:
        """One transaction on this thread's connection; inside another one (a migration during `db copy`), part of
        that one."""
        if getattr(self._local, "conn", None) is not None:
            yield self
            return
        with self.engine.begin() as conn:
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
        self.engine.dispose()


def _note_checkin(dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, proxy) -> None:
    """A connection that sat in the pool for a while may have been dropped (a server restart, a proxy's idle
    timeout): ping it, and on failure let the pool open a new one. A busy pool skips the round trip that
    `pool_pre_ping` would make on every checkout; a connection that fails in use is discarded by SQLAlchemy."""
    from sqlalchemy import exc

    if time.monotonic() - record.info.get("idle_since", time.monotonic()) < PING_AFTER_IDLE:
        return
    try:
        dbapi_connection.execute("SELECT 1")  # psycopg; outside a transaction (autocommit or idle)
        if not dbapi_connection.autocommit:
            dbapi_connection.rollback()
    except Exception as e:
        raise exc.DisconnectionError(f"a pooled connection did not answer ({type(e).__name__})") from e


def _driver_sql(sql: str, args: Sequence) -> str:
    """psycopg's placeholders are %s, so with arguments a literal % (as in LIKE '/%') is written %%."""
    return sql.replace("%", "%%").replace("?", "%s") if args else sql


class PostgresRows(list):
    """A statement's rows, fetched: iterate, or fetchone/fetchall like a DB-API cursor; `rowcount` as well."""

    def __init__(self, result):
        super().__init__(result.fetchall() if result.returns_rows else [])
        self.rowcount = result.rowcount

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
