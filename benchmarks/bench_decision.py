#!/usr/bin/env python3
"""The serving decision on the demo bot, this tree against a baseline revision, on one trained model.

    python benchmarks/bench_decision.py [--data ../shared/data] [--baseline REF] [--state DIR]

Trains the demo bot once with this tree (or reuses the model serving in `--state`), then:

- **after**: `run_bot.py evaluate` of that version by this tree;
- **before**: the baseline revision's `run_bot.py calibrate` refits the version's thresholds and margin from its
  saved validation outputs (same weights, written as a new version, not promoted) and its `evaluate` measures
  that version: the baseline's calibration and decision rule on the same model.

Both on the demo's `evaluation.csv` (in scope and out of scope) and on it plus the 200 CLINC150 off-topic
messages of BANKING77-OOS (`ood-oos/valid`) as out of scope. Prints the `evaluate` lines that say what the bot
does with the messages (answered right / wrong, refused, asked back).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "examples" / "demo_store"
SHOWN = ("at the serving decision", "decision accuracy", "clarifying questions")


def run(args: list[str], code: Path, env: dict) -> str:
    done = subprocess.run([sys.executable, str(code / "run_bot.py"), *args], cwd=code, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(code)})
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--baseline", default="16d2545", help="git revision whose calibration and decision is 'before'")
    parser.add_argument("--state", type=Path, help="state folder (default: a new one, trained here)")
    args = parser.parse_args()
    from benchmarks.revision import code_of

    state = args.state or Path(tempfile.mkdtemp(prefix="bench-decision-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    common = ["--bot", str(DEMO), "--set", f'state_dir="{state}"']
    if not (state / "models" / "CURRENT").is_file():
        run(["train", *common, "--quiet"], ROOT, env)
    version = (state / "models" / "CURRENT").read_text().strip()
    combined = state / "evaluation_and_offtopic.csv"
    with open(combined, "w", newline="") as f:
        out = csv.writer(f)
        out.writerows(csv.reader(open(DEMO / "evaluation.csv", newline="")))
        out.writerows([text, "out_of_scope"] for text in
                      (args.data / "banking77_oos" / "ood-oos" / "valid" / "seq.in").read_text().splitlines())
    baseline = code_of(args.baseline)
    (baseline / "run_bot.py").write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{args.baseline}:run_bot.py"],
                                                         check=True, capture_output=True).stdout)
    refit = run(["calibrate", *common, "--model", version, "--no-promote"], baseline, env)
    old = refit.split(" -> ")[1].split()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; model {version} (before: {old}, refit by "
          f"{args.baseline})\n")
    for label, code, model in (("before", baseline, old), ("after", ROOT, version)):
        for data in (DEMO / "evaluation.csv", combined):
            report = run(["evaluate", *common, "--model", model, "--data", str(data), "--out",
                          str(state / f"{label}-{data.stem}")], code, env)
            print(f"## {label}: {data.name}")
            print("\n".join(line for line in report.splitlines() if line.lstrip("- ").startswith(SHOWN)), "\n")


if __name__ == "__main__":
    main()
