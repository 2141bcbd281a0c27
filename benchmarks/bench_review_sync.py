#!/usr/bin/env python3
"""The review queue's sync on both engines, this tree's code against git revision --baseline-ref's, same run.

    python benchmarks/bench_review_sync.py [--turns 20000] [--runs 3] [--baseline-ref main]

A conversation log of --turns turns (conversations of 5; one turn in four flagged, one in ten of those with a second
kind; about 2,000 distinct messages, so flags group) is made once per engine: an SQLite file, and a throwaway
PostgreSQL 15 on this machine (tests/support/postgres.py, as the tests start it: fsync off, a local socket).
Each run empties the review tables and times `ReviewStore(db).sync()` from scratch (every flag filed, then the
audit pass over every turn at the default 2 % sample) in a fresh process with that code's bot/, knowledge/ and
training/ on PYTHONPATH; the codes alternate, each first in turn. Printed: the median run, in brackets the best
and the worst, and the time per flag.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_bot_stores import run  # noqa: E402
from revision import code_of  # noqa: E402
from bot.dialogue.conversations import ConversationLog  # noqa: E402
from core.engine import open_database  # noqa: E402
from tests.support.postgres import new_database, postgres_server  # noqa: E402
from training.redact import Redactor  # noqa: E402

SYNC = r"""
import json, sys, time
from bot.review.store import ReviewStore
from core.engine import open_database
db = open_database(sys.argv[1])
store = ReviewStore(db)
for table in ("review_entries", "review_groups", "review_state"):
    db.execute(f"delete from {table}")
start = time.perf_counter()
filed = store.sync()
print(json.dumps({"seconds": time.perf_counter() - start, "filed": filed}))
"""


def make_log(location: str, turns: int) -> int:
    """The log, written with plain inserts; returns the number of flag rows."""
    db = open_database(location)
    ConversationLog(db, Redactor())
    t0, flags = 1_764_547_200.0, []
    with db.transaction():
        db.executemany("insert into conversations (id, token_hash, created, updated) values (?, 'x', ?, ?)",
                       [(f"c{c}", t0 + c * 97.0, t0 + c * 97.0) for c in range(turns // 5)])
        db.executemany("insert into turns (id, conversation_id, created, message, answer, route, intent, confidence,"
                       " quick_replies, sources, decision, model_version, latency_ms)"
                       " values (?, ?, ?, ?, 'a', ?, 'track_order', 0.5, '[]', '[]', '{}', 'v1', 5.0)",
                       [(n + 1, f"c{n // 5}", t0 + n // 5 * 97.0 + n % 5 * 20,
                         f"where is my parcel {n * 7919 % 2000} number {n}", "fallback" if n % 4 == 0 else "template")
                        for n in range(turns)])
        for n in range(0, turns, 4):
            flags.append((n + 1, f"c{n // 5}", "fallback", t0 + n // 5 * 97.0 + n % 5 * 20))
            if n % 40 == 0:
                flags.append((n + 1, f"c{n // 5}", "low_confidence", t0 + n // 5 * 97.0 + n % 5 * 20))
        db.executemany("insert into flags (turn_id, conversation_id, kind, created) values (?, ?, ?, ?)", flags)
    db.close()
    return len(flags)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--turns", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = code_of(args.baseline_ref)
    codes = [(f"{args.baseline_ref} (baseline)", base), ("this branch", ROOT)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as server:
        for engine, location in (("SQLite", str(Path(tmp) / "bot.db")),
                                 ("PostgreSQL", new_database(server, "bench_review_sync"))):
            flags = make_log(location, args.turns)
            seconds: dict[str, list[float]] = {name: [] for name, _ in codes}
            for n in range(args.runs):
                for name, root in codes[::-1] if n % 2 else codes:
                    out = run(SYNC, root, location)
                    assert out["filed"]["flags"] == flags, out
                    seconds[name].append(out["seconds"])
            rows += [(engine, name, flags, values) for name, values in seconds.items()]
    shutil.rmtree(base)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; {args.turns} turns, "
          f"{args.runs} runs of each code per engine")
    print("| engine | code | flags | sync from scratch | per flag |\n|---|---|---|---|---|")
    for engine, name, flags, values in rows:
        median = statistics.median(values)
        print(f"| {engine} | {name} | {flags} | {median:.2f} s ({min(values):.2f} - {max(values):.2f}) | "
              f"{median / flags * 1000:.3f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
