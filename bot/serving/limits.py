"""Rate-limit buckets shared by the server's processes: in their own SQLite file under `serve --workers N`, or,
when the bot's database is PostgreSQL, in a table there, shared by every machine (`open_buckets` picks).

A token bucket per (limit, client) is read, refilled, charged and written back in one `BEGIN IMMEDIATE`
transaction, so every worker sees the others' requests. The file holds counters only (no addresses in clear:
keys are hashed), is not the bot's database (a long analytics fold never holds a request up), and is written
without fsync: after a crash the buckets start full, which only forgives a few requests. A check runs on the
event loop, like the in-memory limiter it replaces: about 40 µs here (one small transaction), well below
what a worker waiting on it would notice. On PostgreSQL a check is one round trip instead (~0.2 ms on a local
server, plus the network's), made from the buckets' own thread, and committed without waiting for the disk
(`synchronous_commit=off`: a crash of the database server forgets the last moment's counts, which again only
forgives a few requests); when it fails, `BucketsUnavailable` tells the limiter to count that check in its
own process (bot/web/security.py), so an unreachable database never turns a request into a 500.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Union

from core.engine import CONNECT_ARGS
from core.sqlite import OwnedConnection, OwnerLock

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("supportbot.limits")

PRUNE_EVERY = 10_000  # checks between removals of buckets that have refilled completely


class SharedBuckets:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False, isolation_level=None,
                                     factory=OwnedConnection)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute("create table if not exists buckets (key text primary key, tokens real not null,"
                           " updated real not null) without rowid")
        # One connection: one transaction at a time within this process. Opened on a start-up thread, then used on
        # the event loop: the lock's holder owns the connection.
        self._lock = OwnerLock(self._conn)
        self._checks = 0

    def take(self, key: str, rate: float, burst: int) -> bool:
        """Charge one request to `key`'s bucket (refilled at `rate` per second up to `burst`); False when empty."""
        hashed = _hashed(key)
        with self._lock:
            now = time.time()
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                row = c.execute("select tokens, updated from buckets where key = ?", [hashed]).fetchone()
                tokens = float(burst) if row is None else min(float(burst), row[0] + max(0.0, now - row[1]) * rate)
                allowed = tokens >= 1.0
                c.execute("insert or replace into buckets (key, tokens, updated) values (?, ?, ?)",
                          [hashed, tokens - 1.0 if allowed else tokens, now])
                self._checks += 1
                if self._checks % PRUNE_EVERY == 0:  # a bucket untouched for this long is full again anyway
                    c.execute("delete from buckets where updated < ?", [now - 3600])
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
        return allowed

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _hashed(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


MIGRATIONS = [{"postgresql": "CREATE TABLE rate_buckets (key TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL,"
                             " updated DOUBLE PRECISION NOT NULL, allowed BOOLEAN NOT NULL)"}]
# One statement, one round trip: the row lock of ON CONFLICT makes concurrent checks of a key (from any process
# or machine) apply one after the other; SET reads the old row throughout, and `allowed` keeps the decision.
REFILLED = "least(%(burst)s, b.tokens + greatest(0, excluded.updated - b.updated) * %(rate)s)"  # excluded: now
TAKE = f"""
INSERT INTO rate_buckets AS b (key, tokens, updated, allowed)
VALUES (%(key)s, %(burst)s - 1, coalesce(%(now)s::float8, extract(epoch FROM clock_timestamp())), true)
ON CONFLICT (key) DO UPDATE SET
    tokens = CASE WHEN {REFILLED} >= 1 THEN {REFILLED} - 1 ELSE {REFILLED} END,
    updated = greatest(b.updated, excluded.updated), allowed = {REFILLED} >= 1
RETURNING allowed"""
RETRY_AFTER = 5.0  # seconds without trying PostgreSQL again after a failed check


class BucketsUnavailable(Exception):
    """A check could not reach the shared buckets; the limiter counts it in its own process instead."""


class PostgresBuckets:
    """The same buckets in the bot's PostgreSQL database (`rate_buckets`), shared by every process of every
    machine on it. The database's clock times them (`now` only for tests), so machines' clocks need not agree.
    A check is one round trip on its own autocommit connection, from `thread` (the limiter sends checks there)."""

    def __init__(self, url: str):
        from sqlalchemy.engine import make_url

        from core.engine import close, migrate, open_database

        db = open_database(url)
        try:
            migrate(db, "limits", MIGRATIONS)
        finally:
            close(db)
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn = None
        self._down_since: float | None = None
        self._lock = threading.Lock()
        self._checks = 0
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="rate-limits")

    def take(self, key: str, rate: float, burst: int, now: float | None = None) -> bool:
        import psycopg

        args = {"key": _hashed(key), "rate": float(rate), "burst": float(burst), "now": now}
        with self._lock:
            if self._down_since is not None and time.monotonic() - self._down_since < RETRY_AFTER:
                raise BucketsUnavailable("PostgreSQL unreachable")
            try:
                if self._conn is None:
                    self._conn = psycopg.connect(
                        self._conninfo, autocommit=True, **{**CONNECT_ARGS, "connect_timeout": 2},
                        options="-c statement_timeout=2000 -c synchronous_commit=off")
                allowed = self._conn.execute(TAKE, args).fetchone()[0]
                self._checks += 1
                if self._checks % PRUNE_EVERY == 0:
                    self._conn.execute("DELETE FROM rate_buckets WHERE updated < extract(epoch FROM now()) - 3600")
            except psycopg.Error as e:
                if self._down_since is None:
                    log.warning("rate limits: PostgreSQL failed a check (%s); counting in this process until it "
                                "answers again", type(e).__name__)
                self._down_since = time.monotonic()
                self._disconnect()
                raise BucketsUnavailable(type(e).__name__) from e
            if self._down_since is not None:
                log.warning("rate limits: PostgreSQL answers again; counted there")
                self._down_since = None
        return allowed

    def close(self) -> None:
        self._disconnect()
        self.thread.shutdown(wait=True)

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


Buckets = Union[SharedBuckets, PostgresBuckets]


def open_buckets(settings: Settings, worker: int | None) -> Buckets | None:
    """Where the server counts its rate limits: PostgreSQL when it is the bot's database (every server, so that
    machines share them); else the SQLite file under `serve --workers N`; else (None) each process's memory."""
    if settings.on_postgres:
        return PostgresBuckets(settings.database_location)
    return SharedBuckets(settings.state_path / "ratelimits.db") if worker is not None else None
