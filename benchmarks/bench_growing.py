#!/usr/bin/env python3
"""What the analytics page's "clusters growing fastest" table costs to compute: 1,000 and 5,000 distinct
unanswered messages (the demo bot's held-out messages with a few words and a number added, so that no two are
the same; last seen over four weeks), clustered as the page does (`bot.review.unanswered.growing_clusters`, the
demo's review settings), with the hashing embedder and with the knowledge base's default embedder (ONNX
Runtime, MiniLM, 1 thread, exported into a temporary folder first).

    python benchmarks/bench_growing.py
"""

from __future__ import annotations

import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from bot.folder.bot_folder import BotFolder, load_intents
    from bot.review.unanswered import HashingEmbedder, growing_clusters, intent_examples
    from knowledge.embedder import make_embedder

    folder = BotFolder.load(ROOT / "examples" / "demo_store", [])
    intents, _ = load_intents(folder.path / "intents.yaml")
    examples = intent_examples(intents, folder.settings.server.smalltalk_intents)
    with open(folder.path / "evaluation.csv", newline="") as f:
        base = [row["text"] for row in csv.DictReader(f)]
    rng, now = random.Random(0), time.time()
    words = "please today again now my the order parcel refund account help urgent still why".split()
    messages = [{"group_id": i, "text": f"{rng.choice(base)} {' '.join(rng.sample(words, 3))} {i}", "turn_id": i,
                 "size": 1, "decision": None, "first_seen": now - rng.random() * 28 * 86400,
                 "last_seen": now - rng.random() * 28 * 86400} for i in range(5000)]
    onnx = make_embedder(None, "onnx-int8", Path(tempfile.mkdtemp(prefix="bench-growing-")), 1)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print("| embedder | distinct messages | seconds | rows |\n|---|---|---|---|")
    for name, encode in (("hashing (`report`, no model)", HashingEmbedder().encode),
                         ("knowledge base's default (ONNX Runtime MiniLM, 1 thread)", onnx.encode)):
        for n in (1000, 5000):
            start = time.perf_counter()
            rows = growing_clusters(messages[:n], encode, examples, folder.settings.review, now)
            print(f"| {name} | {n} | {time.perf_counter() - start:.1f} | {len(rows)} |", flush=True)


if __name__ == "__main__":
    main()
