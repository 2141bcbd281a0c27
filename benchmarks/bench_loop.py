"""Does the improvement loop work? A simulated deployment on BANKING77, through the real `retrain` and gate.

    python benchmarks/bench_loop.py [--data ../shared/data/banking77] [--rounds 5] [--traffic 1800] [--budget 400]

Start: 10 labelled examples per intent, except 5 intents held out entirely (the bot has never seen them).
Each round, `--traffic` messages of the rest of the training set arrive as customer traffic; the bot (the
serving version) answers them; a reviewer (an oracle: the true label) labels up to `--budget` of them; then
`training.retrain.retrain` runs — replay of everything learned so far, new intents allowed, warm start from
the serving version with a cold fallback, the gate against the serving model on the golden set (10 % of the
starting examples) plus the newly reviewed examples. Strategies, same traffic, same budget:

- queue: the review queue's selection (bot.review.selection.choose: unseen-intent clusters first, then
  uncertainty with diversity, one message per near-identical group), on the knowledge base's sentence embedder;
- queue + memory: the same reviews and retrains as queue (so it is measured inside the queue run, not trained
  again), with the memory of reviewed answers (bot.review.memory, fitted to 95 % precision) consulted before the
  model, as the server does;
- random: the same number of reviews on randomly chosen messages;
- none: no reviews; the bot's own confident answers are fed back as labels (self-training).

For queue + memory, each round is also asked *before* its retrain: the test messages of the intents reviewed
that round stand in for paraphrases of the reviewed messages — how many the memory answers right, the precision
of its answers, how many it leaves to the model — and the held-out intents' recall with the serving (old) model
plus the memory.

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
STRATEGIES = ("queue", "random", "none")  # "queue + memory" is measured inside "queue"
SECTION = "## Improvement loop"
LABELS = {"queue": "review queue's selection", "memory": "review queue's selection + memory of reviewed answers",
          "random": "random review, same budget", "none": "no reviews (self-training)"}


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


class Vectors:
    """The knowledge base's default sentence embedder, each text embedded once."""

    def __init__(self):
        from knowledge.embedder import SentenceEmbedder

        self.embedder, self.cache = SentenceEmbedder(), {}

    def __call__(self, texts):
        import numpy as np

        new = list(dict.fromkeys(t for t in texts if t not in self.cache))
        self.cache.update(zip(new, self.embedder.encode(new)))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.embedder.dim), np.float32)


def select(strategy: str, traffic, predictions, budget: int, rng: random.Random, vectors=None, known=()) -> list[int]:
    """Indices of the messages a reviewer labels this round (`known`: the labelled examples so far)."""
    from bot.review.selection import choose, uncertainty

    if strategy == "random":
        return rng.sample(range(len(traffic)), min(budget, len(traffic)))
    if strategy == "queue":
        picks = choose(vectors([t for t, _ in traffic]), [uncertainty(p.top) for p in predictions], budget,
                       vectors([e.text for e in known]), [e.intent for e in known])
        return [p.index for p in picks]
    return []


def evaluate(classifier, test, memory=None, vectors=None) -> dict:
    """Accuracy and held-out recall of the model; with a memory, also of memory-then-model (as served)."""
    from training.gate import predict

    preds = predict(classifier, [t for t, _ in test])
    out = scores([p.top[0][0] for p in preds], test)
    if memory is not None:
        served = [m.example.intent if m else p.top[0][0]
                  for p, m in zip(preds, map(memory.match, vectors([t for t, _ in test])))]
        out.update({f"{k}_with_memory": v for k, v in scores(served, test).items()})
    return out


def scores(answers, test) -> dict:
    correct = [a == label for a, (_, label) in zip(answers, test)]
    held = [c for c, (_, label) in zip(correct, test) if label in HELD_OUT]
    return {"accuracy": sum(correct) / len(test), "held_out_recall": sum(held) / len(held) if held else None}


def reviewed_memory(store, vectors):
    """The memory of reviewed answers as the server builds it: reviewed examples, fitted to 95 % precision."""
    from bot.review.memory import Memory, settled
    from knowledge.relevance import OFF_TOPIC

    reviewed = settled(store)
    return Memory.build(reviewed, vectors([e.text for e in reviewed]), vectors(list(OFF_TOPIC)), 0.95)


def paraphrases(memory, picked_intents, test, vectors) -> dict:
    """Test messages of the intents reviewed this round, asked of the memory before the retrain."""
    asked = [(t, label) for t, label in test if label in picked_intents]
    matches = [memory.match(v) for v in vectors([t for t, _ in asked])]
    answered = [(m.example.intent == label) for m, (_, label) in zip(matches, asked) if m]
    return {"asked": len(asked), "answered_right": sum(answered) / len(asked) if asked else 0.0,
            "precision": sum(answered) / len(answered) if answered else None,
            "left_to_model": 1 - len(answered) / len(asked) if asked else 1.0,
            "threshold": memory.fit.threshold, "fitted": memory.fit.fitted, "entries": len(memory)}


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
    vectors = Vectors() if strategy == "queue" else None
    work = Path(tempfile.mkdtemp(prefix=f"bench-loop-{strategy}-"))
    db = connect(work / "supportbot.db")
    store, registry = ExampleStore(db), ModelRegistry(work / "models")
    golden = set(rng.sample(range(len(start)), len(start) // 10))
    store.add(Example(t, i, source="seed", split="test" if n in golden else "") for n, (t, i) in enumerate(start))
    t0 = time.perf_counter()
    train(store.examples(), settings.train, registry, progress=False)
    history = [{"round": 0, "reviews": 0, "retrain_s": round(time.perf_counter() - t0, 1),
                **evaluate(IntentClassifier.load(registry.current_path()), test,
                           vectors and reviewed_memory(store, vectors), vectors)}]
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
        picked = select(strategy, traffic, preds, args.budget, rng, vectors, store.examples())
        reviewed += len(picked)
        if strategy == "none":  # self-training: the bot's confident answers become labels
            new = [Example(t, p.intent, source="conversation", label_method="self")
                   for (t, _), p in zip(traffic, preds) if not p.unknown and not p.ambiguous]
        else:
            new = [Example(traffic[i][0], traffic[i][1], source="review", label_method="oracle") for i in picked]
        store.add(new)
        before, memory = {}, None
        if vectors is not None:  # queue + memory: asked before the retrain, with the serving model
            memory = reviewed_memory(store, vectors)
            served = evaluate(serving, test, memory, vectors)
            before = {"paraphrases": paraphrases(memory, {traffic[i][1] for i in picked}, test, vectors),
                      "held_out_recall_before_retrain": served["held_out_recall_with_memory"],
                      "accuracy_before_retrain": served["accuracy_with_memory"]}
        t0 = time.perf_counter()
        outcome = retrain(store.examples(), settings.train, settings.retrain, registry, RunLog(db),
                          work / "retrain.lock", progress=False, trigger="bench")
        seconds = time.perf_counter() - t0
        history.append({"round": round_, "reviews": reviewed, "unattended_correct": unattended,
                        "promoted": outcome.promoted, "start": outcome.start, "retrain_s": round(seconds, 1),
                        "gate": "; ".join(outcome.comparison["reasons"])[:200], **before,
                        **evaluate(IntentClassifier.load(registry.current_path()), test, memory, vectors)})
        print(f"[{strategy}] round {round_}: {history[-1]}", flush=True)
    return history


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.2))
    styles = {"queue": "-o", "random": "--s", "none": ":^", "memory": "-D"}
    for strategy, history in results.items():
        style, label = styles[strategy], LABELS[strategy]
        a.plot([h["round"] for h in history], [100 * h["accuracy"] for h in history], style, label=label)
        if "accuracy_with_memory" in history[0]:
            a.plot([h["round"] for h in history], [100 * h["accuracy_with_memory"] for h in history],
                   styles["memory"], label=LABELS["memory"])
        later = [h for h in history if "unattended_correct" in h]
        b.plot([h["round"] for h in later], [100 * h["unattended_correct"] for h in later], style, label=label)
        asked = [h for h in history if "paraphrases" in h]
        if asked:
            rounds = [h["round"] for h in asked]
            c.plot(rounds, [100 * h["paraphrases"]["answered_right"] for h in asked], "-D",
                   label="answered right by the memory")
            c.plot(rounds, [100 * (h["paraphrases"]["precision"] or 0) for h in asked], "-.x",
                   label="precision of the memory's answers")
            c.plot(rounds, [100 * h["held_out_recall_before_retrain"] for h in asked], ":v",
                   label="held-out intents' recall, old model + memory")
            c.axhline(95, color="grey", lw=0.8, ls="--")
            c.axhline(80, color="grey", lw=0.8, ls=":")
    a.set(title="Test accuracy after each round's retrain", xlabel="round", ylabel="% of BANKING77 test")
    b.set(title="Traffic answered right with no person", xlabel="round", ylabel="% of the round's messages")
    c.set(title="Before the retrain: test messages of the round's\nreviewed intents (paraphrases)",
          xlabel="round", ylabel="%", ylim=(0, 102))
    for ax in (a, b, c):
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
        if "accuracy_with_memory" in history[0]:
            lines += memory_table(history)
    lines += ["Targets (benchmark, not test asserts):", ""] + [f"- {t}" for t in targets(results)] + [""]
    return "\n".join(lines)


def memory_table(history: list[dict]) -> list[str]:
    lines = [f"**{LABELS['memory']}** (the same reviews and retrains; the memory consulted before the model)", "",
             "| round | memory entries (threshold) | paraphrases asked | answered right by the memory | precision of "
             "its answers | left to the model | held-out recall, old model + memory | test accuracy, new model + "
             "memory | held-out recall, new model + memory |", "|---|---|---|---|---|---|---|---|---|"]
    for h in history:
        p = h.get("paraphrases")
        where = (f"{p['entries']} ({p['threshold']:.3f}{'' if p['fitted'] else ', near-exact only'})" if p else "0")
        lines.append(f"| {h['round']} | {where} | {p['asked'] if p else '–'} | {pct(p and p['answered_right'])} "
                     f"| {pct(p and p['precision'])} | {pct(p and p['left_to_model'])} "
                     f"| {pct(h.get('held_out_recall_before_retrain'))} | {pct(h['accuracy_with_memory'])} "
                     f"| {pct(h['held_out_recall_with_memory'])} |")
    return lines + [""]


def targets(results: dict) -> list[str]:
    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    out = []
    queue, random_ = results.get("queue"), results.get("random")
    if queue:
        acc = [h["accuracy"] for h in queue]
        rises = all(b > a for a, b in zip(acc, acc[1:]))
        out.append(f"accuracy rises every round (queue): {' → '.join(pct(a) for a in acc)} {verdict(rises)}")
        within = [h for h in queue[1:6] if h["reviews"] <= 1000]
        key = "accuracy_with_memory" if "accuracy_with_memory" in queue[0] else "accuracy"
        best = max((h[key] for h in within), default=0.0)
        out.append(f"≥ 92 % test accuracy within 5 rounds with ≤ 1,000 reviews ({'queue + memory' if key != 'accuracy' else 'queue'}): best {pct(best)} with "
                   f"{max((h['reviews'] for h in within), default=0)} reviews {verdict(best >= 0.92)}"
                   + ("" if best >= 0.92 else f" (by {100 * (0.92 - best):.1f} points)"))
        asked = [h for h in queue if "paraphrases" in h]
        if asked:
            ok = all(h["paraphrases"]["answered_right"] >= 0.8 and (h["paraphrases"]["precision"] or 0) >= 0.95
                     for h in asked)
            out.append("paraphrases of reviewed messages answered right by the memory before the retrain ≥ 80 % at "
                       "≥ 95 % precision: " + ", ".join(
                           f"round {h['round']} {pct(h['paraphrases']['answered_right'])} at "
                           f"{pct(h['paraphrases']['precision'])}" for h in asked) + f" {verdict(ok)}")
            held = asked[0]["held_out_recall_before_retrain"]
            out.append(f"unseen intents ≥ 80 % recall in the round their first reviews arrive (round 1, old model + "
                       f"memory, before the retrain): {pct(held)} {verdict(held is not None and held >= 0.8)}; "
                       f"after that round's retrain, new model + memory: {pct(asked[0]['held_out_recall_with_memory'])}")
        else:
            held = queue[1]["held_out_recall"] if len(queue) > 1 else None
            out.append(f"held-out intents ≥ 80 % recall after the first retrain that had their reviews (round 1): "
                       f"{pct(held)} {verdict(held is not None and held >= 0.8)}")
        worst = max(h["retrain_s"] for h in queue[1:]) / 60 if len(queue) > 1 else 0
        slowest = max(h["retrain_s"] for history in results.values() for h in history[1:]) / 60
        out.append(f"a round's retrain ≤ 10 min on this CPU: slowest {worst:.1f} min with the queue's data, "
                   f"{slowest:.1f} min of all strategies {verdict(slowest <= 10)}")
    if queue and random_:
        beats = [(q["round"], q["accuracy"] - r["accuracy"]) for q, r in zip(queue[1:], random_[1:])]
        mean = sum(d for _, d in beats) / len(beats) if beats else 0.0
        out.append("the queue's selection ahead of random review in every round and by ≥ 1 point on average "
                   "(test accuracy of the model alone): "
                   + ", ".join(f"round {n} {100 * d:+.1f} points" for n, d in beats)
                   + f", mean {100 * mean:+.1f} {verdict(all(d > 0 for _, d in beats) and mean >= 0.01)}")
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
