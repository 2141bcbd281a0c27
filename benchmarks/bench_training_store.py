#!/usr/bin/env python3
"""A training run's example loading on SQLite: this tree's training store against git revision --baseline-ref's
(default main), same run, same database file.

    python benchmarks/bench_training_store.py [--examples 20000] [--runs 6]

The database is made once by the baseline's code (`ExampleStore.add`: --examples labelled examples over 50 intents,
one in ten unlabelled, as a bot's state looks after imports). Each run copies it and, in a fresh process with that
code's knowledge/ and training/ on PYTHONPATH, opens the store and loads its examples as `run_bot.py train` does
(`ExampleStore(connect(path)).examples()`), 20 times; the codes alternate. Printed: the median of the runs'
medians, in brackets the best and the worst run's median.
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

MAKE = r"""
import sys
from core.sqlite import connect
from training.store import Example, ExampleStore
n = int(sys.argv[2])
db = connect(sys.argv[1])
ExampleStore(db).add(Example(f"customer question number {i} about topic {i % 50}", None if i % 10 == 0 else f"intent_{i % 50}",
                             "transcript", provenance=f"export.csv:{i}") for i in range(n))
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
"""

LOAD = r"""
import json, sys, time
from core.sqlite import connect
from training.store import ExampleStore
times = []
for _ in range(20):
    start = time.perf_counter()
    db = connect(sys.argv[1])
    examples = ExampleStore(db).examples()
    times.append(time.perf_counter() - start)
    db.conn.close()
print(json.dumps({"median": sorted(times)[10], "loaded": len(examples)}))
"""


def run(script: str, root: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", OLD_NAMES + script, *args], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, cwd=root).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    base = code_of(args.baseline_ref)
    with tempfile.TemporaryDirectory() as tmp:
        made = Path(tmp) / "made.db"
        run(MAKE, base, str(made), str(args.examples))
        codes = {f"{args.baseline_ref} (baseline)": base, "this branch": ROOT}
        medians: dict[str, list[float]] = {name: [] for name in codes}
        for _ in range(args.runs):
            for name, root in codes.items():
                copy = Path(tmp) / "bot.db"
                shutil.copy(made, copy)
                out = json.loads(run(LOAD, root, str(copy)))
                assert out["loaded"] == args.examples - args.examples // 10, out
                medians[name].append(out["median"] * 1000)
    shutil.rmtree(base)
    print(f"| SQLite training store code | open the store and load {args.examples - args.examples // 10} labelled examples |")
    print("|---|---|")
    for name, values in medians.items():
        print(f"| {name} | {statistics.median(values):.1f} ms ({min(values):.1f} - {max(values):.1f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
