#!/usr/bin/env python3
"""Typos: BANKING77 test accuracy, clean and with one typo per message, with and without `knowledge.spelling`.

    python benchmarks/bench_typos.py [--data ../shared/data] [--per-intent 10] [--seed 0]

One model, fine-tuned with supportbot's pipeline and default `TrainSettings` on `--per-intent` examples of each
BANKING77 intent (drawn by `--seed` from `banking77/train.csv`). The test set is classified twice by that same
model: as it serves (the speller on, `train.correct_typos`) and with the speller off (the code before it). Typos:
`training.noise.typo` with one typo per message (seed 0). Shouted: the message in capitals, its closing
punctuation made "???!!!" and an emoji added ("WHERE IS MY CARD???!!! 😡"); the speller also drops emoji and
punctuation runs (`knowledge.spelling.tidy`). Accuracy is top-1 (the threshold ignored).
Writes benchmarks/results/typos.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--per-intent", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from training.classifier import IntentClassifier
    from training.noise import typo
    from training.pipeline import train
    from training.registry import ModelRegistry
    from training.settings import TrainSettings
    from training.store import Example

    def rows(name):
        with open(args.data / "banking77" / name, newline="") as f:
            return [(r["text"], r["category"]) for r in csv.DictReader(f)]

    by_intent: dict[str, list[str]] = {}
    for text, intent in rows("train.csv"):
        by_intent.setdefault(intent, []).append(text)
    rng = random.Random(args.seed)
    examples = [Example(t, i) for i, texts in sorted(by_intent.items()) for t in rng.sample(texts, args.per_intent)]
    test = rows("test.csv")
    noise = random.Random(0)
    noised = [(typo(t, noise, rate=0.0), i) for t, i in test]  # rate 0: exactly one typo a message
    shouted = [(t.upper().rstrip("?.! ") + "???!!! \U0001f621", i) for t, i in test]
    start = time.time()
    result = train(examples, replace(TrainSettings(), seed=args.seed), ModelRegistry(Path(tempfile.mkdtemp())),
                   progress=False)
    trained_s = time.time() - start
    model = IntentClassifier.load(result.path)
    speller = model.speller

    def accuracy(items):
        right = 0
        for i in range(0, len(items), 64):
            batch = items[i:i + 64]
            logits = model.logits([t for t, _ in batch])
            right += sum(model.labels[j] == g for j, (_, g) in zip(logits.argmax(-1).tolist(), batch))
        return right / len(items)

    figures = {}
    for label, on in (("speller off (before)", None), ("speller on (after)", speller)):
        model.speller = on
        clean, typos = accuracy(test), accuracy(noised)
        figures[label] = {"clean": clean, "one_typo": typos, "drop": clean - typos, "shouted": accuracy(shouted)}
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "command": " ".join(sys.argv),
           "examples": len(examples), "train_seconds": round(trained_s), "test": len(test), "figures": figures}
    results = ROOT / "benchmarks" / "results" / "typos.json"
    results.write_text(json.dumps(out, indent=2))
    print(f"machine: {out['machine']}; {len(examples)} training examples, {trained_s:.0f} s; {len(test)} test messages\n")
    print("| | clean accuracy | one typo a message | drop | shouted |\n|---|---|---|---|---|")
    for label, f in figures.items():
        print(f"| {label} | {100 * f['clean']:.2f} % | {100 * f['one_typo']:.2f} % | {100 * f['drop']:.2f} points | "
              f"{100 * f['shouted']:.2f} % |")
    before, after = figures["speller off (before)"], figures["speller on (after)"]
    print(f"\ndrop with the speller: {after['drop'] / before['drop']:.2f} of the drop without it "
          f"(target <= 0.5); clean accuracy {100 * (after['clean'] - before['clean']):+.2f} points (target >= 0)")


if __name__ == "__main__":
    main()
