#!/usr/bin/env python3
"""Small bots: do they refuse off-topic messages? Today's calibration against the one of a baseline revision.

    python benchmarks/bench_small_bots.py [--data ../shared/data] [--seeds 1,2,3] [--fit-seeds 1,2]
                                          [--baseline a7a9d99] [--bots 5x5,5x10,8x5,10x8]

Each bot is K BANKING77 intents with N training examples each (drawn from `banking77/train.csv` by the seed),
fine-tuned once with supportbot's pipeline and default `TrainSettings`. It is measured on its intents' first 20
test messages each (in scope), 100 test messages of 20 other BANKING77 intents (in-domain out of scope) and
BANKING77-OOS's 200 CLINC150 out-of-domain messages (`ood-oos/valid`). Two decisions on the same model outputs:

- **after**: the version as trained by this tree (a bot this small gets `training.calibrate.fallback`);
- **before**: the baseline revision's `calibrate`, run on the same saved validation outputs (the fine-tuning
  is the same code in both; only the calibration changed).

Precision weighs the messages as 60 % in scope and 40 % out of scope (half in-domain, half off-topic), the
default `train.oos_share`. The threshold sweep of the fallback score (cosine to the nearest training example)
is printed over the `--fit-seeds` bots only: `FALLBACK_THRESHOLD` was chosen there (the lowest threshold
whose mean precision reaches 90 %); the other seeds are held out. Results: benchmarks/results/small_bots.json.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import random
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = ROOT / "benchmarks" / "results" / "small_bots.json"
OOS_SHARE = 0.4
SWEEP = [round(0.3 + 0.05 * i, 2) for i in range(9)]


def old_calibrate(ref: str):
    """The baseline revision's `training.calibrate.calibrate` (it imports today's training.oos: unchanged)."""
    from benchmarks.revision import code_of

    path = code_of(ref) / "training" / "calibrate.py"
    spec = importlib.util.spec_from_file_location("baseline_calibrate", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.calibrate


def rows(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["category"], []).append(r["text"])
    return out


def measure(k: int, n: int, seed: int, data: Path, baseline) -> dict:
    from training.classifier import IntentClassifier
    from training.oos import OOSScore
    from training.pipeline import saved_outputs, train
    from training.registry import ModelRegistry
    from training.settings import TrainSettings
    from training.store import Example

    train_rows, test_rows = rows(data / "banking77" / "train.csv"), rows(data / "banking77" / "test.csv")
    rng = random.Random(seed)
    intents = rng.sample(sorted(train_rows), k)
    examples = [Example(t, i) for i in intents for t in rng.sample(train_rows[i], n)]
    others = [i for i in sorted(train_rows) if i not in intents]
    sets = {"in": [(t, i) for i in intents for t in test_rows[i][:20]],
            "in_domain_oos": [(t, None) for i in rng.sample(others, 20) for t in rng.sample(test_rows[i], 5)],
            "off_topic": [(t, None) for t in (data / "banking77_oos" / "ood-oos" / "valid" / "seq.in").read_text().splitlines()]}
    settings = replace(TrainSettings(), seed=seed)
    result = train(examples, settings, ModelRegistry(Path(tempfile.mkdtemp(prefix="small-bot-"))), progress=False)
    model = IntentClassifier.load(result.path)
    tensors, stats = saved_outputs(result.path)
    before = baseline(tensors["val_logits"], tensors["val_targets"], settings.target_precision, settings.oos_share,
                      score=settings.oos_score, features=tensors["val_features"], stats=stats["fit"],
                      oos_stats=stats["serving"], max_clarify_share=settings.max_clarify_share)
    before_score = OOSScore.from_dict(before.score)
    out = {"bot": f"{k}x{n}", "seed": seed, "validation": result.metrics["examples"]["validation"],
           "before": {"score": before.score["name"], "threshold": before.score_threshold,
                      "expected_precision": before.expected_precision},
           "after": {"score": model.score.name, "threshold": model.score_threshold,
                     "expected_precision": result.metrics["calibration"]["expected_precision"]}}
    for name, items in sets.items():
        features, logits = model.outputs([t for t, _ in items])
        right = [model.labels[j] == i for j, (_, i) in zip(logits.argmax(-1).tolist(), items)]
        after = [not p.unknown for p in model.decide(logits, features=features)]
        old = (before_score(features, logits, before.temperature, model.stats) >= before.score_threshold).tolist()
        near = [round(x, 4) for x in (features.float() @ model.stats.bank.T).max(-1).values.tolist()]
        out[name] = {"right": right, "before": old, "after": after, "nearest": near}
    return out


def rates(bot: dict, decision: str, threshold: float | None = None) -> dict:
    """Answered shares and precision of one decision ('before', 'after', or the fallback at `threshold`)."""
    def answered(name):
        if threshold is not None:
            return [x >= threshold for x in bot[name]["nearest"]]
        return bot[name][decision]

    def mean(xs):
        return sum(xs) / len(xs)

    a_in = answered("in")
    right = mean([a and r for a, r in zip(a_in, bot["in"]["right"])])
    wrong = mean([a and not r for a, r in zip(a_in, bot["in"]["right"])])
    in_domain, off_topic = mean(answered("in_domain_oos")), mean(answered("off_topic"))
    oos = (in_domain + off_topic) / 2
    precision = (1 - OOS_SHARE) * right / max(1e-9, (1 - OOS_SHARE) * (right + wrong) + OOS_SHARE * oos)
    return {"in_answered_right": right, "in_answered": mean(a_in), "in_domain_oos_answered": in_domain,
            "off_topic_answered": off_topic, "precision": precision}


def report(results: list[dict], fit_seeds: set[int]) -> str:
    lines = ["| bot (intents x examples) | seed | validation | before: threshold | before: in scope answered right | "
             "before: off-topic answered | before: in-domain OOS answered | before: precision | after: in scope "
             "answered right | after: off-topic answered | after: in-domain OOS answered | after: precision |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for b in results:
        x, y = rates(b, "before"), rates(b, "after")
        lines.append(f"| {b['bot']} | {b['seed']}{' (fit)' if b['seed'] in fit_seeds else ''} | {b['validation']} | "
                     f"{b['before']['threshold']:.4g} | {100 * x['in_answered_right']:.1f} % | "
                     f"{100 * x['off_topic_answered']:.1f} % | {100 * x['in_domain_oos_answered']:.1f} % | "
                     f"{100 * x['precision']:.1f} % | {100 * y['in_answered_right']:.1f} % | "
                     f"{100 * y['off_topic_answered']:.1f} % | {100 * y['in_domain_oos_answered']:.1f} % | "
                     f"{100 * y['precision']:.1f} % |")
    for label, group in (("fit seeds", [b for b in results if b["seed"] in fit_seeds]),
                         ("held-out seeds", [b for b in results if b["seed"] not in fit_seeds])):
        if group:
            for decision in ("before", "after"):
                r = [rates(b, decision) for b in group]
                lines.append(f"| **mean, {label}** | | | {decision} | "
                             + " | ".join(f"{100 * sum(x[key] for x in r) / len(r):.1f} %" for key in
                                          ("in_answered_right", "off_topic_answered", "in_domain_oos_answered",
                                           "precision")) + " | | | | |")
    lines += ["", "Fallback threshold sweep (cosine to the nearest training example), mean over the fit seeds' bots:", "",
              "| threshold | in scope answered right | off-topic answered | in-domain OOS answered | precision |",
              "|---|---|---|---|---|"]
    fit = [b for b in results if b["seed"] in fit_seeds]
    for t in SWEEP if fit else []:
        r = [rates(b, "", t) for b in fit]
        lines.append(f"| {t:.2f} | " + " | ".join(f"{100 * sum(x[key] for x in r) / len(r):.1f} %" for key in
                                                  ("in_answered_right", "off_topic_answered", "in_domain_oos_answered",
                                                   "precision")) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--fit-seeds", default="1,2")
    parser.add_argument("--bots", default="5x5,5x10,8x5,10x8")
    parser.add_argument("--baseline", default="a7a9d99", help="git revision whose calibration is 'before'")
    parser.add_argument("--report-only", action="store_true", help="print the tables from the saved results")
    args = parser.parse_args()
    fit_seeds = {int(s) for s in args.fit_seeds.split(",")}
    if not args.report_only:
        baseline = old_calibrate(args.baseline)
        results = []
        for seed in (int(s) for s in args.seeds.split(",")):
            for bot in args.bots.split(","):
                k, n = (int(x) for x in bot.split("x"))
                results.append(measure(k, n, seed, args.data, baseline))
                print(f"{bot} seed {seed}: before {rates(results[-1], 'before')}, after {rates(results[-1], 'after')}",
                      flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                                       "command": " ".join(sys.argv), "baseline": args.baseline, "bots": results},
                                      separators=(",", ":")))
    saved = json.loads(RESULTS.read_text())
    print(f"machine: {saved['machine']}; command: {saved['command']}; baseline {saved['baseline']}\n")
    print(report(saved["bots"], fit_seeds))


if __name__ == "__main__":
    main()
