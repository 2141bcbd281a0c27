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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Union

from core.engine import PostgresDatabase, migrate
from core.sqlite import OwnerLock, connect

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("supportbot.limits")

PRUNE_EVERY = 10_000  # checks between removals of buckets that have refilled completely


class SharedBuckets:
    def __init__(self, path: Path):
        self._db = connect(path, busy_timeout=10)
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("create table if not exists buckets (key text primary key, tokens real not null,"
                         " updated real not null) without rowid")
        # One connection: one transaction at a time within this process. Opened on a start-up thread, then used on
        # the event loop: the lock's holder owns the connection.
        self._lock = OwnerLock(self._db)
        self._checks = 0

    def take(self, key: str, rate: float, burst: int) -> bool:
        """Charge one request to `key`'s bucket (refilled at `rate` per second up to `burst`); False when empty."""
        hashed = _hashed(key)
        with self._lock, self._db.transaction() as db:
            now = time.time()
            row = db.execute("select tokens, updated from buckets where key = ?", [hashed]).fetchone()
            tokens = float(burst) if row is None else min(float(burst), row[0] + max(0.0, now - row[1]) * rate)
            allowed = tokens >= 1.0
            db.execute("insert or replace into buckets (key, tokens, updated) values (?, ?, ?)",
                       [hashed, tokens - 1.0 if allowed else tokens, now])
            self._checks += 1
            if self._checks % PRUNE_EVERY == 0:  # a bucket untouched for this long is full again anyway
                db.execute("delete from buckets where updated < ?", [now - 3600])
        return allowed

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _hashed(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


MIGRATIONS = [{"postgresql": "CREATE TABLE rate_buckets (key TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL,"
                             " updated DOUBLE PRECISION NOT NULL, allowed BOOLEAN NOT NULL)"}]
# One statement, one round trip: the row lock of ON CONFLICT makes concurrent checks of a key (from any process
# or machine) apply one after the other; SET reads the old row throughout, and `allowed` keeps the decision.
# Its ? are (key, burst, now) and then (burst, rate) for each REFILLED (`_take_args`).
REFILLED = "least(?::float8, b.tokens + greatest(0, excluded.updated - b.updated) * ?::float8)"  # excluded: now
TAKE = f"""
INSERT INTO rate_buckets AS b (key, tokens, updated, allowed)
VALUES (?, ?::float8 - 1, coalesce(?::float8, extract(epoch FROM clock_timestamp())), true)
ON CONFLICT (key) DO UPDATE SET
    tokens = CASE WHEN {REFILLED} >= 1 THEN {REFILLED} - 1 ELSE {REFILLED} END,
    updated = greatest(b.updated, excluded.updated), allowed = {REFILLED} >= 1
RETURNING allowed"""
RETRY_AFTER = 5.0  # seconds without trying PostgreSQL again after a failed check


def _take_args(key: str, rate: float, burst: int, now: float | None) -> list:
    return [_hashed(key), float(burst), now, *[float(burst), float(rate)] * TAKE.count(REFILLED)]


class BucketsUnavailable(Exception):
    """A check could not reach the shared buckets; the limiter counts it in its own process instead."""


class PostgresBuckets:
    """The same buckets in the bot's PostgreSQL database (`rate_buckets`), shared by every process of every
    machine on it. The database's clock times them (`now` only for tests), so machines' clocks need not agree.
    A check is one round trip (two after 5 s unused: the pool's ping) on an autocommit connection of its own
    database handle (a short statement timeout, commits without waiting for the disk), from `thread` (the limiter
    sends checks there)."""

    def __init__(self, url: str):
        self._db = PostgresDatabase(url, connect_timeout=2,
                                    options="-c statement_timeout=2000 -c synchronous_commit=off")
        migrate(self._db, "limits", MIGRATIONS)
        self._down_since: float | None = None
        self._lock = threading.Lock()
        self._checks = 0
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="rate-limits")

    def take(self, key: str, rate: float, burst: int, now: float | None = None) -> bool:
        import psycopg

        with self._lock:
            if self._down_since is not None and time.monotonic() - self._down_since < RETRY_AFTER:
                raise BucketsUnavailable("PostgreSQL unreachable")
            try:
                allowed = self._db.execute(TAKE, _take_args(key, rate, burst, now)).fetchone()[0]
                self._checks += 1
                if self._checks % PRUNE_EVERY == 0:
                    self._db.execute("DELETE FROM rate_buckets WHERE updated < extract(epoch FROM now()) - 3600")
            except psycopg.Error as e:  # also no connection within the timeout (psycopg_pool.PoolTimeout)
                if self._down_since is None:
                    log.warning("rate limits: PostgreSQL failed a check (%s); counting in this process until it "
                                "answers again", type(e).__name__)
                self._down_since = time.monotonic()
                raise BucketsUnavailable(type(e).__name__) from e
            if self._down_since is not None:
                log.warning("rate limits: PostgreSQL answers again; counted there")
                self._down_since = None
        return allowed

    def close(self) -> None:
        self._db.close()
        self.thread.shutdown(wait=True)


Buckets = Union[SharedBuckets, PostgresBuckets]


def open_buckets(settings: Settings, worker: int | None) -> Buckets | None:
    """Where the server counts its rate limits: PostgreSQL when it is the bot's database (every server, so that
    machines share them); else the SQLite file under `serve --workers N`; else (None) each process's memory."""
    if settings.on_postgres:
        return PostgresBuckets(settings.database_location)
    return SharedBuckets(settings.state_path / "ratelimits.db") if worker is not None else None
