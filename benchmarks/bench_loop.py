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
and the retrain's wall time. Writes benchmarks/results/loop.json and benchmarks/results/loop.png, prints the
Markdown section for BENCHMARKS.md; --write replaces its `## Improvement loop` section there (--report
rebuilds section and plot from an existing loop.json without running anything).
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

from bench_knowledge import cpu_name, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HELD_OUT = ("card_swallowed", "lost_or_stolen_phone", "terminate_account", "virtual_card_not_working",
            "wrong_exchange_rate_for_cash_withdrawal")
STRATEGIES = ("queue", "random", "none")
SECTION = "## Improvement loop"
LABELS = {"queue": "review queue's selection", "random": "random review, same budget",
          "none": "no reviews (self-training)"}


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
    from core.sqlite import connect
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
    styles = {"queue": "-o", "random": "--s", "none": ":^"}
    for strategy, history in results.items():
        style, label = styles[strategy], LABELS[strategy]
        a.plot([h["round"] for h in history], [100 * h["accuracy"] for h in history], style, label=label)
        later = [h for h in history if "unattended_correct" in h]
        b.plot([h["round"] for h in later], [100 * h["unattended_correct"] for h in later], style, label=label)
    a.set(title="Test accuracy after each round's retrain", xlabel="round", ylabel="% of BANKING77 test")
    b.set(title="Traffic answered right with no person", xlabel="round", ylabel="% of the round's messages")
    for ax in (a, b):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def report(meta: dict, results: dict) -> str:
    """The BENCHMARKS.md section: per-round table for each strategy, then the targets, met or missed."""
    lines = [SECTION, "", f"`python {meta['command']}` on {meta['machine']}; {meta['load']}. Total wall time "
             f"{meta['wall_min']:.0f} min. Simulated deployment on BANKING77 (benchmarks/bench_loop.py's docstring "
             f"says how): {meta['start_examples']} labelled examples to start (10 per intent; the 5 intents "
             f"{', '.join(meta['held_out_intents'])} held out entirely, so they first arrive as traffic in round 1), "
             f"{meta['traffic']} customer messages a round, {meta['budget']} reviews a round, every retrain through "
             f"the real `training.retrain.retrain` (replay, gate, warm start with cold fallback). Test: "
             f"{meta['test_messages']} BANKING77 test messages. Results: `benchmarks/results/loop.json`.", "",
             "![Test accuracy and unattended-correct share per round](benchmarks/results/loop.png)", "",
             *([meta["note"], ""] if meta.get("note") else [])]
    for strategy, history in results.items():
        lines += [f"**{LABELS[strategy]}**", "",
                  "| round | reviews so far | traffic answered right, no person | test accuracy | held-out intents' recall "
                  "| retrain | start | promoted |", "|---|---|---|---|---|---|---|---|"]
        for h in history:
            lines.append(f"| {h['round']} | {h['reviews']} | {pct(h.get('unattended_correct'))} | {pct(h['accuracy'])} "
                         f"| {pct(h['held_out_recall'])} | {h['retrain_s'] / 60:.1f} min | {h.get('start', 'first train')} "
                         f"| {'' if h['round'] == 0 else ('yes' if h['promoted'] else 'no: ' + h['gate'])} |")
        lines.append("")
    lines += ["Targets (benchmark, not test asserts):", ""] + [f"- {t}" for t in targets(results)] + [""]
    return "\n".join(lines)


def targets(results: dict) -> list[str]:
    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    out = []
    queue, random_ = results.get("queue"), results.get("random")
    if queue:
        acc = [h["accuracy"] for h in queue]
        rises = all(b > a for a, b in zip(acc, acc[1:]))
        out.append(f"accuracy rises every round (queue): {' → '.join(pct(a) for a in acc)} {verdict(rises)}")
        within = [h for h in queue[1:6] if h["reviews"] <= 2000]
        best = max((h["accuracy"] for h in within), default=0.0)
        out.append(f"≥ 92 % within 5 rounds with ≤ 2,000 reviews: best {pct(best)} with "
                   f"{max((h['reviews'] for h in within), default=0)} reviews {verdict(best >= 0.92)}"
                   + ("" if best >= 0.92 else f" (by {100 * (0.92 - best):.1f} points)"))
        held = queue[1]["held_out_recall"] if len(queue) > 1 else None
        out.append(f"held-out intents ≥ 80 % recall after the first retrain that had their reviews (round 1): "
                   f"{pct(held)} {verdict(held is not None and held >= 0.8)}")
        worst = max(h["retrain_s"] for h in queue[1:]) / 60 if len(queue) > 1 else 0
        slowest = max(h["retrain_s"] for history in results.values() for h in history[1:]) / 60
        out.append(f"a round's retrain ≤ 10 min on this CPU: slowest {worst:.1f} min with the queue's data, "
                   f"{slowest:.1f} min of all strategies {verdict(slowest <= 10)}")
    if queue and random_:
        beats = [(q["round"], q["accuracy"] - r["accuracy"]) for q, r in zip(queue[1:], random_[1:])]
        out.append("the queue's selection beats random review in every round: "
                   + ", ".join(f"round {n} {100 * d:+.1f} points" for n, d in beats)
                   + f" {verdict(all(d > 0 for _, d in beats))}")
    return out


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
    parser.add_argument("--write", action="store_true", help="replace the Improvement loop section of BENCHMARKS.md")
    parser.add_argument("--report", action="store_true", help="only rebuild the section and plot from loop.json")
    parser.add_argument("--merge", action="store_true",
                        help="add these strategies' results to loop.json's (run the strategies one at a time)")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results"
    if args.report:
        saved = json.loads((out / "loop.json").read_text())
        return publish(saved["meta"], saved["results"], out, args.write)

    from bot.settings import load_settings

    settings = load_settings(None, args.overrides)
    rng = random.Random(args.seed)
    start, rest = split_start(rows(args.data / "train.csv"), args.shots, rng)
    test = rows(args.data / "test.csv")
    if args.test_limit:
        test = random.Random(args.seed).sample(test, args.test_limit)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    results = {s: simulate(s, start, rest, test, args, settings) for s in args.strategies.split(",")}
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, no GPU, Python {platform.python_version()}", "command": " ".join(["benchmarks/bench_loop.py", *sys.argv[1:]]),
            "load": f"1-minute load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
            "wall_min": (time.perf_counter() - started) / 60, "start_examples": len(start),
            "held_out_intents": list(HELD_OUT), "test_messages": len(test), "traffic": args.traffic,
            "budget": args.budget}
    if args.merge and (out / "loop.json").exists():
        saved = json.loads((out / "loop.json").read_text())
        results = {**saved["results"], **results}
        meta = {**meta, "command": f"{saved['meta']['command']}` then `python {meta['command']}",
                "load": f"{saved['meta']['load']}; then {meta['load']}",
                "wall_min": saved["meta"]["wall_min"] + meta["wall_min"]}
    (out / "loop.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    publish(meta, results, out, args.write)


def publish(meta: dict, results: dict, out: Path, write: bool) -> None:
    plot(results, out / "loop.png")
    text = report(meta, results)
    print(text)
    if write:
        write_section(ROOT / "BENCHMARKS.md", text)


if __name__ == "__main__":
    main()
