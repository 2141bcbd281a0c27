#!/usr/bin/env python3
"""BANKING77 intent benchmark: supportbot's fine-tuned classifier against two baselines, same run.

    python benchmarks/bench_intents.py [--data ../shared/data/banking77] [--quick]

Methods: TF-IDF (1-2 grams) + logistic regression; frozen all-MiniLM-L6-v2 embeddings + logistic
regression; supportbot fine-tuning (fp32 and dynamic int8). Settings: all training data, and 10
examples per intent (3 fixed draws, mean). Each method runs in its own process so peak memory is
its own. Writes benchmarks/results/intents.json and prints the Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

METHODS = ("tfidf_lr", "frozen_minilm_lr", "supportbot")


def load(data: Path, shots: int | None, seed: int, holdout_intents: int = 0):
    from training.dataset import read_examples

    train = read_examples(data / "train.csv").examples
    test = read_examples(data / "test.csv").examples
    rng = random.Random(seed)
    if shots:
        by_intent: dict[str, list] = {}
        for e in train:
            by_intent.setdefault(e.intent, []).append(e)
        train = [x for intent in sorted(by_intent) for x in rng.sample(by_intent[intent], shots)]
    if holdout_intents:
        from dataclasses import replace

        unseen = set(rng.sample(sorted({e.intent for e in train}), holdout_intents))
        train = [e for e in train if e.intent not in unseen]
        test = [replace(e, intent="out_of_scope") if e.intent in unseen else e for e in test]
    return train, test


def latency(predict, texts: list[str]) -> dict:
    """Batch-1 p50/p99 in ms over 300 messages, and batch-32 throughput in messages/s."""
    predict(texts[:32])  # warm-up
    times = []
    for t in texts[:300]:
        start = time.perf_counter()
        predict([t])
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    start = time.perf_counter()
    n = 0
    for i in range(0, 640, 32):
        predict(texts[i : i + 32])
        n += len(texts[i : i + 32])
    return {
        "p50_ms": statistics.median(times),
        "p99_ms": times[int(len(times) * 0.99) - 1],
        "batch32_per_s": n / (time.perf_counter() - start),
    }


def run_one(method: str, data: Path, shots: int | None, seed: int, holdout: int) -> dict:
    with_int8 = shots is None
    train, test = load(data, shots, seed, holdout)
    texts = [e.text for e in test]
    started = time.perf_counter()
    if method == "tfidf_lr":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=20, max_iter=2000))
        model.fit([e.text for e in train], [e.intent for e in train])
        train_s = time.perf_counter() - started
        predict = model.predict
        result = {"train_s": train_s}
    elif method == "frozen_minilm_lr":
        from sklearn.linear_model import LogisticRegression

        from knowledge.embedder import SentenceEmbedder

        embedder = SentenceEmbedder()
        model = LogisticRegression(C=20, max_iter=3000)
        model.fit(embedder.encode([e.text for e in train]), [e.intent for e in train])
        train_s = time.perf_counter() - started
        predict = lambda batch: model.predict(embedder.encode(batch))  # noqa: E731
        result = {"train_s": train_s}
    else:
        from training.classifier import IntentClassifier
        from training.pipeline import train as train_model
        from training.registry import ModelRegistry
        from training.settings import TrainSettings

        with tempfile.TemporaryDirectory() as tmp:
            trained = train_model(train, TrainSettings(), ModelRegistry(Path(tmp)), progress=False)
            train_s = time.perf_counter() - started
            classifier = IntentClassifier.load(trained.path)
            quantised = IntentClassifier.load(trained.path, quantize=True) if with_int8 else None
        result = {"train_s": train_s, **supportbot_scores(classifier, test)}
        predict = lambda batch: [p.top[0][0] for p in classifier.predict(batch)]  # noqa: E731
        if quantised is not None:
            int8 = {"train_s": train_s, **supportbot_scores(quantised, test)}
            int8.update(scores(test, lambda batch: [p.top[0][0] for p in quantised.predict(batch)], texts))
            result["int8"] = int8
    result.update(scores(test, predict, texts))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if "int8" in result:
        result["int8"]["peak_rss_mb"] = result["peak_rss_mb"]
    return result


def scores(test, predict, texts) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    pairs = [(e.intent, y) for e, y in zip(test, _batched(predict, texts)) if e.intent != "out_of_scope"]
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    return {"accuracy": accuracy_score(gold, pred), "macro_f1": f1_score(gold, pred, average="macro"), **latency(predict, texts)}


def supportbot_scores(classifier, test) -> dict:
    """Threshold behaviour: coverage and precision of answered messages, out-of-scope recall."""
    texts = [e.text for e in test]
    predictions = [p for i in range(0, len(texts), 64) for p in classifier.predict(texts[i : i + 64])]
    in_scope = [(e.intent, p) for e, p in zip(test, predictions) if e.intent != "out_of_scope"]
    oos = [p for e, p in zip(test, predictions) if e.intent == "out_of_scope"]
    answered = [(g, p) for g, p in in_scope if not p.unknown]
    result = {
        "score": classifier.score.name,  # the out-of-scope score the threshold applies to (train.oos_score)
        "threshold": classifier.score_threshold,
        "coverage": len(answered) / len(in_scope),
        "answered_precision": sum(g == p.intent for g, p in answered) / max(1, len(answered)),
    }
    if oos:
        wrong_oos = sum(not p.unknown for p in oos)
        result["oos_recall"] = 1 - wrong_oos / len(oos)
        result["answered_precision_with_oos"] = sum(g == p.intent for g, p in answered) / max(1, len(answered) + wrong_oos)
    return result


def _batched(predict, texts):
    for i in range(0, len(texts), 64):
        yield from predict(texts[i : i + 64])


def subprocess_run(method: str, data: Path, shots: int | None, seed: int, holdout: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--one", method, "--data", str(data), "--seed", str(seed), "--holdout", str(holdout)]
    if shots:
        cmd += ["--shots", str(shots)]
    print("running", " ".join(cmd[2:]), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch

    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, no GPU, Python {platform.python_version()}, torch {torch.__version__}"


def table(results: dict) -> str:
    rows = [
        "| setting | method | accuracy | macro-F1 | train time | batch-1 p50 / p99 | batch-32 throughput | peak memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting, by_method in results.items():
        if setting.startswith("leave"):
            continue
        for method, r in by_method.items():
            rows.append(
                f"| {setting} | {method} | {100 * r['accuracy']:.2f} % | {100 * r['macro_f1']:.2f} % | {r['train_s']:.0f} s "
                f"| {r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms | {r['batch32_per_s']:.0f} msg/s | {r['peak_rss_mb']:.0f} MB |"
            )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "banking77")
    parser.add_argument("--one", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--shots", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--holdout", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="one 10-shot draw only (a smoke run)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.data, args.shots, args.seed, args.holdout)))
        return

    started = time.time()
    results: dict[str, dict] = {}
    if not args.quick:
        full = {m: subprocess_run(m, args.data, None, 0) for m in METHODS}
        full["supportbot (int8)"] = full["supportbot"].pop("int8")
        results["all 10,003 examples"] = full
    seeds = [0] if args.quick else [0, 1, 2]
    few: dict[str, list[dict]] = {}
    for seed in seeds:
        for method in ("tfidf_lr", "frozen_minilm_lr", "supportbot"):
            few.setdefault(method, []).append(subprocess_run(method, args.data, 10, seed))
    results["10 per intent (mean of %d draws)" % len(seeds)] = {
        m: {k: statistics.mean(r[k] for r in rs) for k in rs[0] if not isinstance(rs[0][k], dict)} for m, rs in few.items()
    }
    results["leave 10 intents out (10 per intent, seed 0)"] = {"supportbot": subprocess_run("supportbot", args.data, 10, 0, holdout=10)}
    out = {"machine": machine(), "command": "python benchmarks/bench_intents.py", "minutes": (time.time() - started) / 60, "results": results}
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "intents.json").write_text(json.dumps(out, indent=2))
    print(f"machine: {out['machine']}\n")
    print(table(results))
    loio = results["leave 10 intents out (10 per intent, seed 0)"]["supportbot"]
    print(f"\nleave-10-intents-out: {loio['score']} threshold {loio['threshold']:.3f}, out-of-scope recall {100 * loio['oos_recall']:.1f} %, "
          f"in-scope coverage {100 * loio['coverage']:.1f} %, precision of answered incl. out-of-scope {100 * loio['answered_precision_with_oos']:.1f} %")


if __name__ == "__main__":
    main()
