#!/usr/bin/env python3
"""The memory of reviewed answers (issue 34): paraphrases of reviewed messages answered before any retrain, and
the lookup's cost at 1k / 10k / 100k entries.

    python benchmarks/bench_memory.py [--data ../shared/data] [--reviewed 200,400,1000] [--seed 0]

Paraphrases: BANKING77-OOS (50 banking intents in scope; 27 more held out as in-domain out of scope). A review
budget of N messages is drawn from its `train/` (seed) and kept as the memory (bot.review.memory.Memory, the
packaged MiniLM as the knowledge base embeds questions, threshold fitted to 0.95 by its own leave-one-out); the
paraphrases are its `test/` messages of the intents those reviews covered (other customers asking the same
things). Reported: share answered by the memory, share of those
right (precision), share of all paraphrases answered right. Out of scope: BANKING77-OOS's out-of-scope test
messages (`id-oos/test`, in-domain banking questions no intent covers, and `ood-oos/valid`, off-topic) asked of
the same memory: share answered (every answer is wrong). Nothing is fitted on these messages.

Lookup: random unit vectors (384-d) as entries, batch-1 `Memory.match` p50 over 200 queries; the embedding of the
message is not included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--reviewed", default="200,400,1000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from bot.review.memory import Fit, Memory
    from knowledge.embedder import SentenceEmbedder
    from knowledge.relevance import OFF_TOPIC
    from training.store import Example

    oos_dir = args.data / "banking77_oos"

    def rows(part):
        return list(zip(lines(oos_dir / part / "seq.in"), lines(oos_dir / part / "label")))

    train, test = rows("train"), rows("test")
    oos = {"in-domain (id-oos/test)": lines(oos_dir / "id-oos" / "test" / "seq.in"),
           "off-topic (ood-oos/valid)": lines(oos_dir / "ood-oos" / "valid" / "seq.in")}
    embedder = SentenceEmbedder()
    encode = getattr(embedder, "encode_queries", embedder.encode)
    test_vectors = encode([t for t, _ in test])
    off_topic = encode(list(OFF_TOPIC))
    oos_vectors = {name: encode(texts) for name, texts in oos.items()}
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "command": " ".join(sys.argv),
               "paraphrases": {}, "lookup_ms": {}}
    for n in (int(x) for x in args.reviewed.split(",")):
        picked = random.Random(args.seed).sample(train, n)
        examples = [Example(t, i, "review", id=k) for k, (t, i) in enumerate(picked)]
        memory = Memory.build(examples, encode([t for t, _ in picked]), off_topic, 0.95)
        covered = {i for _, i in picked}
        asked = [(v, i) for v, (_, i) in zip(test_vectors, test) if i in covered]
        answers = [(memory.match(v), i) for v, i in asked]
        answered = [(m, i) for m, i in answers if m is not None]
        right = sum(m.example.intent == i for m, i in answered)
        out = {"intents": len(covered), "paraphrases": len(asked), "threshold": memory.fit.threshold,
               "fitted": memory.fit.fitted, "expected_precision": memory.fit.precision,
               "answered": len(answered) / len(asked), "precision": right / len(answered) if answered else None,
               "answered_right": right / len(asked),
               "oos_answered": {name: float(np.mean([memory.match(v) is not None for v in vs]))
                                for name, vs in oos_vectors.items()}}
        results["paraphrases"][n] = out
        print(json.dumps({n: out}), flush=True)
    rng = np.random.default_rng(0)
    for size in (1_000, 10_000, 100_000):  # clustered unit vectors; queries: stored ones with noise (cosine ~0.93)
        centres = rng.normal(size=(max(1, size // 20), 384)).astype(np.float32)
        vectors = centres[rng.integers(0, len(centres), size)] + 0.6 * rng.normal(size=(size, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        examples = [Example(f"m{i}", "x", "review", id=i) for i in range(size)]
        start = time.perf_counter()
        memory = Memory(examples, vectors, Fit(0.9, 1.0, 0, size, True))
        built = time.perf_counter() - start
        queries = vectors[rng.choice(size, 200)] + 0.4 * rng.normal(size=(200, 384)).astype(np.float32) / np.sqrt(384)
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)  # as embedders give
        times, scans, same = [], [], 0
        for q in queries:
            start = time.perf_counter()
            found = memory.match(q)
            times.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            exact = int(np.argmax(vectors @ q))  # the baseline: what match did before, at every size
            scans.append((time.perf_counter() - start) * 1000)
            same += (found.example.id if found else -1) == exact or (found is None and float(vectors[exact] @ q) < 0.9)
        index = memory.index
        results["lookup_ms"][size] = {"p50": float(np.median(times)), "p99": float(np.percentile(times, 99)),
                                      "search": f"IVF, nprobe {index.nprobe}" if index else "exact (numpy)",
                                      "build_s": built, "same_as_exact": same / len(queries),
                                      "exact_scan_p50": float(np.median(scans))}
        print(size, results["lookup_ms"][size], flush=True)
    (ROOT / "benchmarks" / "results" / "memory.json").write_text(json.dumps(results, indent=1))
    pct = lambda x: "-" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    print("\n| reviewed messages | intents | paraphrases | threshold | answered by the memory | right of those | "
          "answered right | in-domain OOS answered | off-topic answered |\n|---|---|---|---|---|---|---|---|---|")
    for n, r in results["paraphrases"].items():
        o = list(r["oos_answered"].values())
        print(f"| {n} | {r['intents']} | {r['paraphrases']} | {r['threshold']:.3f}{'' if r['fitted'] else ' (not fitted)'}"
              f" | {pct(r['answered'])} | {pct(r['precision'])} | {pct(r['answered_right'])} | {pct(o[0])} | "
              f"{pct(o[1])} |")
    print("\n| entries | search | index build | lookup p50 | p99 | same answer as exact search | baseline: exact scan p50 |"
          "\n|---|---|---|---|---|---|---|")
    for size, t in results["lookup_ms"].items():
        print(f"| {size:,} | {t['search']} | {t['build_s']:.1f} s | {t['p50']:.3f} ms | {t['p99']:.3f} ms "
              f"| {100 * t['same_as_exact']:.1f} % | {t['exact_scan_p50']:.3f} ms |")


if __name__ == "__main__":
    main()
