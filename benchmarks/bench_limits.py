#!/usr/bin/env python3
"""The cost of one shared rate-limit check, same run: SQLite's `SharedBuckets` (the `--workers N` file, the
baseline) against `PostgresBuckets` (the bot's PostgreSQL database, one INSERT ... ON CONFLICT round trip).

    python benchmarks/bench_limits.py [--checks 5000] [--clients 200]

Starts its own throwaway PostgreSQL server on this machine (tests/support/postgres.py, as the tests do), so a
round trip is a local socket's: add the network's round trip for a database on another machine. The checks go
to --clients keys in turn (each burst big enough that every check is allowed and writes its row), the engines
alternating in 5 rounds; median and p99 in microseconds over all checks of each.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bot.serving.limits import PostgresBuckets, SharedBuckets  # noqa: E402
from tests.support.postgres import new_database, postgres_server  # noqa: E402


def timed(buckets, checks: int, clients: int) -> list[float]:
    times = []
    for n in range(checks):
        key = f"requests:a:10.0.{n % clients // 256}.{n % 256}"
        start = time.perf_counter()
        assert buckets.take(key, rate=100.0, burst=1_000_000)
        times.append((time.perf_counter() - start) * 1e6)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, postgres_server() as server:
        engines = {"SQLite file (SharedBuckets)": SharedBuckets(Path(folder) / "ratelimits.db"),
                   "PostgreSQL (PostgresBuckets)": PostgresBuckets(new_database(server, "bench_limits"))}
        times = {name: [] for name in engines}
        for name, buckets in engines.items():
            timed(buckets, 200, args.clients)  # warm up: connection, rows, caches
        for _ in range(5):
            for name, buckets in engines.items():
                times[name] += timed(buckets, args.checks // 5, args.clients)
        for buckets in engines.values():
            buckets.close()
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, Python {platform.python_version()}; "
          f"{args.checks} checks per engine over {args.clients} clients")
    print("| buckets | checks | median µs | p99 µs |\n|---|---|---|---|")
    for name, values in times.items():
        values.sort()
        print(f"| {name} | {len(values)} | {values[len(values) // 2]:.0f} | {values[int(len(values) * 0.99)]:.0f} |")


if __name__ == "__main__":
    main()
