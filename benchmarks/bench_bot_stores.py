#!/usr/bin/env python3
"""The bot's two hot database paths on SQLite, this tree's code against git revision --baseline-ref's (default
main), same run: a chat turn written to the conversation log, and the analytics fold of a log.

    python benchmarks/bench_bot_stores.py [--turns 50000] [--runs 6]

Turn writes: a fresh database file, `ConversationLog.record_turn` of 2,000 turns (400 conversations of 5 turns,
the first creating the conversation, one in five flagged), timed one by one. Fold: a log of --turns turns over
conversations of 5 turns, made once by this tree's code, copied for every run; `Analytics(db).refresh()` from
scratch. Each run is a fresh process with that code's bot/, knowledge/ and training/ on PYTHONPATH; the codes
alternate, each first in turn. Printed: the median of the runs' medians (turns) or times (fold), in brackets the
best and the worst run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from revision import OLD_NAMES, code_of  # noqa: E402

TURNS = r"""
import json, sys, time
from bot.dialogue.conversations import ConversationLog
from bot.dialogue.router import Decision, Reply
from core.sqlite import connect
from training.redact import Redactor
log = ConversationLog(connect(sys.argv[1]), Redactor())
times = []
for c in range(400):
    convo, token = log.new()
    for n in range(5):
        flags = ("fallback",) if n == 4 else ()
        d = Decision(route="fallback" if flags else "template", reason="bench", intent="track_order", confidence=0.9,
                     alternatives=(("track_order", 0.9),), model_version="v1", latency_ms=5.0, flags=flags)
        start = time.perf_counter()
        log.record_turn(convo, f"where is my parcel {c} {n}", Reply("On its way.", d), token if n == 0 else None)
        times.append(time.perf_counter() - start)
print(json.dumps({"median": sorted(times)[len(times) // 2]}))
"""

MAKE = r"""
import json, sys
from bot.dialogue.conversations import ConversationLog
from core.sqlite import connect
from training.redact import Redactor
db = connect(sys.argv[1])
ConversationLog(db, Redactor())
turns, t0 = int(sys.argv[2]), 1_764_547_200.0
routes = ("template", "knowledge", "smalltalk", "clarify", "fallback", "handoff")
with db.transaction():
    for c in range(turns // 5):
        at = t0 + c * 97.0
        db.execute("insert into conversations (id, token_hash, created, updated) values (?, 'x', ?, ?)", [f"c{c}", at, at])
        for n in range(5):
            route = routes[(c + n) % len(routes)] if n else "template"
            db.execute(
                "insert into turns (conversation_id, created, message, answer, route, intent, confidence, quick_replies,"
                " sources, decision, model_version, latency_ms) values (?, ?, 'm', 'a', ?, ?, 0.8, '[]', ?, '{}', ?, ?)",
                [f"c{c}", at + n * 20, route, f"intent_{c % 40}",
                 json.dumps([{"title": f"Article {c % 30}", "url": ""}] if route == "knowledge" else []),
                 "v1" if c < turns // 10 else "v2", 3.0 + (c * 7 + n) % 90])
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
"""

FOLD = r"""
import json, sys, time
from bot.analytics.figures import Analytics
from core.sqlite import connect
db = connect(sys.argv[1])
start = time.perf_counter()
folded = Analytics(db).refresh()
print(json.dumps({"seconds": time.perf_counter() - start, "folded": folded}))
"""


def run(script: str, root: Path, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", OLD_NAMES + script, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(root)}, cwd=root).stdout
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--turns", type=int, default=50000)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    base = code_of(args.baseline_ref)
    codes = [(f"{args.baseline_ref} (baseline)", base), ("this branch", ROOT)]
    turn_ms: dict[str, list[float]] = {name: [] for name, _ in codes}
    fold_s: dict[str, list[float]] = {name: [] for name, _ in codes}
    with tempfile.TemporaryDirectory() as tmp:
        made = Path(tmp) / "made.db"
        run(MAKE, ROOT, str(made), str(args.turns))
        for n in range(args.runs):
            for name, root in codes[::-1] if n % 2 else codes:
                fresh = Path(tmp) / f"turns-{n}-{len(turn_ms[name])}.db"
                turn_ms[name].append(run(TURNS, root, str(fresh))["median"] * 1000)
                copy = Path(tmp) / "fold.db"
                shutil.copy(made, copy)
                out = run(FOLD, root, str(copy))
                assert out["folded"] == args.turns // 5 * 5, out
                fold_s[name].append(out["seconds"])
                for leftover in Path(tmp).glob("fold.db*"):
                    leftover.unlink()
    shutil.rmtree(base)
    print(f"| SQLite bot store code | one chat turn written (median of 2000) | analytics fold of {args.turns} turns |")
    print("|---|---|---|")
    for name, _ in codes:
        t, f = turn_ms[name], fold_s[name]
        print(f"| {name} | {statistics.median(t):.3f} ms ({min(t):.3f} - {max(t):.3f}) | "
              f"{statistics.median(f):.2f} s ({min(f):.2f} - {max(f):.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
