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

The failed-login limit of the review workspace (`FailedLogins`) counts in the same storage: each attempt is a row
of `failed_logins` (hashed key, time, attempt id), counted in a sliding window exactly, in one transaction that
checks and reserves it, so that N workers, or machines, allow the limit and not N times it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, TypeVar, Union

from core.engine import Database, PostgresDatabase, migrate
from core.sqlite import OwnerLock, connect

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger("supportbot.limits")

PRUNE_EVERY = 10_000  # checks between removals of buckets that have refilled completely
# Attempts within the window, so the table holds only those (a refused attempt adds no row). Valid on both engines.
LOGINS_SCHEMA = ("CREATE TABLE IF NOT EXISTS failed_logins (key TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,"
                 " attempt TEXT NOT NULL); CREATE INDEX IF NOT EXISTS failed_logins_key ON failed_logins (key, at);"
                 " CREATE INDEX IF NOT EXISTS failed_logins_at ON failed_logins (at)")
T = TypeVar("T")


class SharedBuckets:
    """The buckets (and failed logins) in an SQLite file that the workers share; `path` None: in this process's
    memory alone (where `FailedLogins` counts when there is no shared storage, or it is unreachable)."""

    def __init__(self, path: Path | None):
        self._db = connect(path, busy_timeout=10)
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("create table if not exists buckets (key text primary key, tokens real not null,"
                         " updated real not null) without rowid")
        for statement in LOGINS_SCHEMA.split(";"):
            self._db.execute(statement)
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

    def run(self, work: Callable[[Database, float], T]) -> T:
        """`work(db, now)` in one transaction (`BEGIN IMMEDIATE`: one at a time across the workers)."""
        with self._lock, self._db.transaction() as db:
            return work(db, time.time())

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _hashed(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


MIGRATIONS = [{"postgresql": "CREATE TABLE rate_buckets (key TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL,"
                             " updated DOUBLE PRECISION NOT NULL, allowed BOOLEAN NOT NULL)"},
              {"postgresql": LOGINS_SCHEMA}]
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
        with self._reaching():
            allowed = self._db.execute(TAKE, _take_args(key, rate, burst, now)).fetchone()[0]
            self._checks += 1
            if self._checks % PRUNE_EVERY == 0:
                self._db.execute("DELETE FROM rate_buckets WHERE updated < extract(epoch FROM now()) - 3600")
        return allowed

    def run(self, work: Callable[[Database, float], T]) -> T:
        """`work(db, now)` in one transaction, `now` by the database's clock."""
        with self._reaching(), self._db.transaction() as db:
            return work(db, db.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0])

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """One call at a time; a failure to reach PostgreSQL becomes `BucketsUnavailable` (and no call tries again
        for RETRY_AFTER seconds), logged once per outage."""
        import psycopg

        with self._lock:
            if self._down_since is not None and time.monotonic() - self._down_since < RETRY_AFTER:
                raise BucketsUnavailable("PostgreSQL unreachable")
            try:
                yield
            except psycopg.Error as e:  # also no connection within the timeout (psycopg_pool.PoolTimeout)
                if self._down_since is None:
                    log.warning("rate limits: PostgreSQL failed a check (%s); counting in this process until it "
                                "answers again", type(e).__name__)
                self._down_since = time.monotonic()
                raise BucketsUnavailable(type(e).__name__) from e
            if self._down_since is not None:
                log.warning("rate limits: PostgreSQL answers again; counted there")
                self._down_since = None

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


class FailedLogins:
    """Failed review logins per account and per address in a sliding window; past either limit, refused until the
    oldest counted attempt ages out. Counted in `shared` (open_buckets: every worker and machine) when there is
    one, else, and while PostgreSQL is unreachable, in this process's memory (never a 500 for a login).

    An attempt is counted before its password is checked (`reserve`) and forgiven once it succeeded: counted only
    after the check, guesses sent at the same moment would all pass the limit while the first was being checked.
    Check and count are one transaction, so no other attempt, from any worker, comes in between."""

    def __init__(self, per_account: int, per_address: int, window_s: float, shared: Buckets | None = None):
        self.per_account, self.per_address, self.window = per_account, per_address, window_s
        self.shared = shared
        self._local = SharedBuckets(None)

    async def reserve(self, name: str, address: str) -> tuple[float, str | None]:
        """(seconds to wait, None) when the account or the address is locked; else (0, the attempt's id), the
        attempt counted as failed until `succeeded` forgives it."""
        limits = [(_account(name), self.per_account), (_address(address), self.per_address)]
        return await self._call(lambda db, now: _reserve(db, limits, self.window, now))

    async def succeeded(self, name: str, address: str, attempt: str) -> None:
        """The attempt was right: the account's failures are forgiven (here too: some may have been counted here
        while PostgreSQL was unreachable), and this attempt no longer counts against the address."""
        account, address = _account(name), _address(address)
        await self._call(lambda db, now: _forgive(db, account, address, attempt), everywhere=True)

    async def _call(self, work: Callable[[Database, float], T], everywhere: bool = False) -> T:
        """`work` on the shared storage (PostgreSQL from its thread, never on the event loop), else here."""
        if isinstance(self.shared, PostgresBuckets):
            return await asyncio.get_running_loop().run_in_executor(self.shared.thread, self._run, work, everywhere)
        return self._run(work, everywhere)

    def _run(self, work: Callable[[Database, float], T], everywhere: bool) -> T:
        if self.shared is not None:
            try:
                done = self.shared.run(work)
                if not everywhere:
                    return done
            except BucketsUnavailable:  # logged there, once per outage
                pass
        return self._local.run(work)

    def close(self) -> None:
        self._local.close()


def _account(name: str) -> str:
    return _hashed(f"login:a:{name.lower()}")


def _address(address: str) -> str:
    return _hashed(f"login:ip:{address}")


def _reserve(db: Database, limits: Sequence[tuple[str, int]], window: float, now: float) -> tuple[float, str | None]:
    """In a transaction: (seconds until the first locked key's oldest attempt ages out, None), or count an attempt
    against every key and return (0, its id)."""
    db.serialise("supportbot failed logins")  # PostgreSQL: one at a time, like SQLite's BEGIN IMMEDIATE
    db.execute("DELETE FROM failed_logins WHERE at <= ?", [now - window])
    keys = [key for key, _ in limits]
    counted = {key: (n, oldest) for key, n, oldest in db.execute(
        f"SELECT key, count(*), min(at) FROM failed_logins WHERE key IN ({', '.join('?' * len(keys))}) GROUP BY key",
        keys)}
    waits = [counted[key][1] + window - now for key, limit in limits if counted.get(key, (0,))[0] >= limit]
    if waits:
        return max(waits), None
    attempt = secrets.token_hex(8)
    db.executemany("INSERT INTO failed_logins (key, at, attempt) VALUES (?, ?, ?)", [(k, now, attempt) for k in keys])
    return 0.0, attempt


def _forgive(db: Database, account: str, address: str, attempt: str) -> None:
    db.serialise("supportbot failed logins")
    db.execute("DELETE FROM failed_logins WHERE key = ? OR (key = ? AND attempt = ?)", [account, address, attempt])
