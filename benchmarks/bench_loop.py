"""Does the improvement loop work? A simulated deployment on BANKING77, through the real `retrain` and gate.

    python benchmarks/bench_loop.py [--data ../shared/data/banking77] [--rounds 5] [--traffic 1800] [--budget 400]

Start: 10 labelled examples per intent, except 5 intents held out entirely (the bot has never seen them).
Each round, `--traffic` messages of the rest of the training set arrive as customer traffic; the bot (the
serving version) answers them; a reviewer (an oracle: the true label) labels up to `--budget` of them; then
`training.retrain.retrain` runs — replay of everything learned so far, new intents allowed, warm start from
the serving version with a cold fallback, the gate against the serving model on the golden set (10 % of the
starting examples) plus the newly reviewed examples. Three strategies, same traffic, same budget:

- queue: the review queue's selection — what the bot refused, asked back about, or was least sure of first;
- random: the same number of reviews on randomly chosen messages;
- none: no reviews; the bot's own confident answers are fed back as labels (self-training).

Measured after each round: accuracy on the BANKING77 test set (3,080), the share of that round's traffic
answered correctly with no person involved (answered, not asked back, right), the held-out intents' recall,
and the retrain's wall time. Writes benchmarks/results/loop.json and benchmarks/results/loop.png.
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
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HELD_OUT = ("card_swallowed", "lost_or_stolen_phone", "terminate_account", "virtual_card_not_working",
            "wrong_exchange_rate_for_cash_withdrawal")
STRATEGIES = ("queue", "random", "none")


def rows(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)]


def split_start(train: list[tuple[str, str]], shots: int, rng: random.Random):
    by_intent = defaultdict(list)
    for text, intent in train:
        by_intent[intent].append((text, intent))
    start, rest = [], []
    for intent, items in sorted(by_intent.items()):
        rng.shuffle(items)
        if intent in HELD_OUT:
            rest += items
        else:
            start += items[:shots]
            rest += items[shots:]
    rng.shuffle(rest)
    return start, rest


def select(strategy: str, traffic, predictions, budget: int, rng: random.Random) -> list[int]:
    """Indices of the messages a reviewer labels this round."""
    if strategy == "random":
        return rng.sample(range(len(traffic)), min(budget, len(traffic)))
    if strategy == "queue":  # flagged first (refused, asked back), then least confident
        order = sorted(range(len(traffic)), key=lambda i: (not (predictions[i].unknown or predictions[i].ambiguous),
                                                           predictions[i].confidence))
        return order[:budget]
    return []


def evaluate(classifier, test) -> dict:
    from training.gate import predict

    preds = predict(classifier, [t for t, _ in test])
    correct = [p.top[0][0] == label for p, (_, label) in zip(preds, test)]
    held = [c for c, (_, label) in zip(correct, test) if label in HELD_OUT]
    return {"accuracy": sum(correct) / len(test), "held_out_recall": sum(held) / len(held) if held else None}


def simulate(strategy: str, start, rest, test, args, settings) -> list[dict]:
    from knowledge.database import connect
    from training.classifier import IntentClassifier
    from training.gate import predict
    from training.pipeline import train
    from training.registry import ModelRegistry
    from training.retrain import retrain
    from training.runs import RunLog
    from training.store import Example, ExampleStore

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix=f"bench-loop-{strategy}-"))
    db = connect(work / "supportbot.db")
    store, registry = ExampleStore(db), ModelRegistry(work / "models")
    golden = set(rng.sample(range(len(start)), len(start) // 10))
    store.add(Example(t, i, source="seed", split="test" if n in golden else "") for n, (t, i) in enumerate(start))
    t0 = time.perf_counter()
    train(store.examples(), settings.train, registry, progress=False)
    history = [{"round": 0, "reviews": 0, "retrain_s": round(time.perf_counter() - t0, 1),
                **evaluate(IntentClassifier.load(registry.current_path()), test)}]
    print(f"[{strategy}] round 0: {history[-1]}", flush=True)
    reviewed = 0
    for round_ in range(1, args.rounds + 1):
        traffic = rest[(round_ - 1) * args.traffic: round_ * args.traffic]
        if not traffic:
            break
        serving = IntentClassifier.load(registry.current_path())
        preds = predict(serving, [t for t, _ in traffic])
        unattended = sum(not p.unknown and not p.ambiguous and p.intent == label
                         for p, (_, label) in zip(preds, traffic)) / len(traffic)
        picked = select(strategy, traffic, preds, args.budget, rng)
        reviewed += len(picked)
        if strategy == "none":  # self-training: the bot's confident answers become labels
            new = [Example(t, p.intent, source="conversation", label_method="self")
                   for (t, _), p in zip(traffic, preds) if not p.unknown and not p.ambiguous]
        else:
            new = [Example(traffic[i][0], traffic[i][1], source="review", label_method="oracle") for i in picked]
        store.add(new)
        t0 = time.perf_counter()
        outcome = retrain(store.examples(), settings.train, settings.retrain, registry, RunLog(db),
                          work / "retrain.lock", progress=False, trigger="bench")
        seconds = time.perf_counter() - t0
        history.append({"round": round_, "reviews": reviewed, "unattended_correct": unattended,
                        "promoted": outcome.promoted, "start": outcome.start, "retrain_s": round(seconds, 1),
                        "gate": "; ".join(outcome.comparison["reasons"])[:200],
                        **evaluate(IntentClassifier.load(registry.current_path()), test)})
        print(f"[{strategy}] round {round_}: {history[-1]}", flush=True)
    return history


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"queue": ("-o", "review queue's selection"), "random": ("--s", "random review, same budget"),
              "none": (":^", "no reviews (self-training)")}
    for strategy, history in results.items():
        style, label = styles[strategy]
        a.plot([h["round"] for h in history], [100 * h["accuracy"] for h in history], style, label=label)
        later = [h for h in history if "unattended_correct" in h]
        b.plot([h["round"] for h in later], [100 * h["unattended_correct"] for h in later], style, label=label)
    a.set(title="Test accuracy after each round's retrain", xlabel="round", ylabel="% of BANKING77 test")
    b.set(title="Traffic answered right with no person", xlabel="round", ylabel="% of the round's messages")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "banking77")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--traffic", type=int, default=1800, help="messages of customer traffic per round")
    parser.add_argument("--budget", type=int, default=400, help="reviews per round")
    parser.add_argument("--shots", type=int, default=10, help="starting labelled examples per intent")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--test-limit", type=int, default=0, help="evaluate on this many test messages (0 = all)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="settings for training and the gate, e.g. --set train.epochs=2")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from bot.settings import load_settings

    settings = load_settings(None, args.overrides)
    rng = random.Random(args.seed)
    start, rest = split_start(rows(args.data / "train.csv"), args.shots, rng)
    test = rows(args.data / "test.csv")
    if args.test_limit:
        test = random.Random(args.seed).sample(test, args.test_limit)
    results = {s: simulate(s, start, rest, test, args, settings) for s in args.strategies.split(",")}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "command": " ".join(sys.argv), "start_examples": len(start), "held_out_intents": list(HELD_OUT),
            "test_messages": len(test)}
    (out / "loop.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    plot(results, out / "loop.png")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
