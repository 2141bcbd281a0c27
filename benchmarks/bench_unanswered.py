"""How tight must a 'could not answer' cluster be? BANKING77 test messages embedded with the packaged MiniLM,
clustered with average and complete linkage at fixed cuts and at the cut with the best silhouette (the page's way
until issue 32, item 13): share of messages clustered (groups of 3 or more), purity (share of clustered messages in
their cluster's most common intent) and clusters with no majority intent.

    python benchmarks/bench_unanswered.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CUTS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)
SETS = (("77 intents x 3 messages", 77, 3), ("20 intents x 8", 20, 8), ("10 intents x 3 (a small page)", 10, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder with banking77/test.csv (default: ../shared/data)")
    args = parser.parse_args()
    from scipy.cluster.hierarchy import fcluster, linkage

    from knowledge.embedder import SentenceEmbedder
    from training.clusters import _best_cut

    rows = list(csv.DictReader((args.data / "banking77" / "test.csv").open(encoding="utf-8")))
    embedder, rng = SentenceEmbedder(), random.Random(0)
    intents = sorted({r["category"] for r in rows})
    for name, n_intents, per in SETS:
        chosen = [r for label in rng.sample(intents, n_intents)
                  for r in rng.sample([r for r in rows if r["category"] == label], per)]
        texts, truth = [r["text"] for r in chosen], [r["category"] for r in chosen]
        vectors = embedder.encode(texts).astype(np.float64)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        print(f"\n{name}: {len(texts)} messages\n\n| linkage, cut | clustered | purity | clusters | no majority |\n"
              "|---|---|---|---|---|")
        for method in ("average", "complete"):
            tree = linkage(vectors, method=method, metric="cosine")
            best = _best_cut(tree, vectors, 3)
            for cut in sorted({*CUTS, best}):
                labels = fcluster(tree, t=cut, criterion="distance")
                groups = [g for g in (np.flatnonzero(labels == k) for k in set(labels)) if len(g) >= 3]
                clustered = sum(len(g) for g in groups)
                top = [Counter(truth[i] for i in g).most_common(1)[0][1] for g in groups]
                mark = " (silhouette)" if cut == best else ""
                print(f"| {method} {cut:.2f}{mark} | {clustered / len(texts):.1%} | {sum(top) / max(1, clustered):.1%} "
                      f"| {len(groups)} | {sum(t * 2 <= len(g) for t, g in zip(top, groups))} |")


if __name__ == "__main__":
    main()
