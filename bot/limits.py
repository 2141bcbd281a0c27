"""Rate-limit buckets shared by the server's worker processes (`serve --workers N`), in their own SQLite file.

A token bucket per (limit, client) is read, refilled, charged and written back in one `BEGIN IMMEDIATE`
transaction, so every worker sees the others' requests. The file holds counters only (no addresses in clear:
keys are hashed), is not the bot's database (a long analytics fold never holds a request up), and is written
without fsync: after a crash the buckets start full, which only forgives a few requests. A check runs on the
event loop, like the in-memory limiter it replaces: about 40 µs here (one small transaction), well below
what a worker waiting on it would notice.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

PRUNE_EVERY = 10_000  # checks between removals of buckets that have refilled completely


class SharedBuckets:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute("create table if not exists buckets (key text primary key, tokens real not null,"
                           " updated real not null) without rowid")
        self._lock = threading.Lock()  # one connection: one transaction at a time within this process
        self._checks = 0

    def take(self, key: str, rate: float, burst: int) -> bool:
        """Charge one request to `key`'s bucket (refilled at `rate` per second up to `burst`); False when empty."""
        hashed = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
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
        self._conn.close()
