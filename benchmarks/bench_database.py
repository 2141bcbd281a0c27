#!/usr/bin/env python3
"""The knowledge base on both engines, same run: SQLite (FTS5, BM25; the default and the baseline) against
PostgreSQL (tsvector, websearch_to_tsquery, ts_rank_cd, GIN) on the demo store and its labelled questions.

    python benchmarks/bench_database.py [--write]

Starts its own throwaway PostgreSQL server (knowledge/postgres_server.py, as the tests do). Each engine gets a
fresh base synced from examples/demo_store/knowledge/ with the packaged embedder; the passages are embedded once
beforehand (a memo), so the sync times compare the stores and the tuning, not the embedder. For each: the
fusion the base chose at sync, recall@1/@5 and MRR@10 of the chosen ranking, of keyword search alone and of
hybrid 0.5, confident coverage and precision at the base's own threshold, and the keyword query's latency.
Target: PostgreSQL's recall@1 within 0.02 of SQLite's. --write replaces its subsection of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_knowledge import KNOWLEDGE, QUESTIONS, ROOT, CachedEmbedder, cpu_name, judged, write_subsection  # noqa: E402

HEADING = "### Both engines: SQLite (FTS5) and PostgreSQL (tsvector)"
RANKINGS = (("chosen per base", "auto"), ("keyword only", "keyword"), ("hybrid", "hybrid"))


def measure(location: str, state: Path, embedder, questions: list[dict]) -> dict:
    from knowledge.base import KnowledgeBase
    from knowledge.relevance import terms
    from knowledge.settings import KnowledgeSettings

    kb = KnowledgeBase.open(location, state / "index", KnowledgeSettings(), embedder)
    try:
        t = time.perf_counter()
        kb.sync([KNOWLEDGE])
        out = {"sync": time.perf_counter() - t, "fusion": kb.fusion.describe(), "threshold": kb.threshold}
        texts, labels = [q["question"] for q in questions], [q["document"] for q in questions]
        answers = kb.answer_many(texts)
        for name, mode in RANKINGS:
            out[name] = judged([[h.doc_id for h in kb.search(q, k=10, mode=mode)] for q in texts],
                               [a.score for a in answers], labels)
        chosen = out["chosen per base"]["answers"]
        confident = [ok for score, ok in chosen if score >= kb.threshold]
        out["coverage"], out["precision"] = len(confident) / len(chosen), sum(confident) / max(1, len(confident))
        times = []
        for q in texts:
            started = time.perf_counter()
            kb.store.keyword(terms(q), kb.settings.candidates)
            times.append((time.perf_counter() - started) * 1000)
        out["keyword_p50"], out["keyword_p99"] = np.percentile(times, 50), np.percentile(times, 99)
        out["counts"] = kb.store.counts()
    finally:
        kb.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="replace this subsection of BENCHMARKS.md")
    args = parser.parse_args()
    from knowledge.base import KnowledgeBase
    from knowledge.embedder import SentenceEmbedder
    from knowledge.postgres_server import postgres_server
    from knowledge.settings import KnowledgeSettings

    started, load = time.perf_counter(), os.getloadavg()[0]
    questions = list(csv.DictReader(QUESTIONS.open(encoding="utf-8")))
    embedder = CachedEmbedder(SentenceEmbedder())
    warm = Path(tempfile.mkdtemp(prefix="bench-db-warm-"))
    memo = KnowledgeBase.open(warm / "kb.db", warm / "index", KnowledgeSettings(), embedder)
    memo.sync([KNOWLEDGE])  # fills the embedder's memo with every passage
    memo.close()
    results = {}
    sqlite_state = Path(tempfile.mkdtemp(prefix="bench-db-sqlite-"))
    results["SQLite (default, baseline)"] = measure(str(sqlite_state / "kb.db"), sqlite_state, embedder, questions)
    print("sqlite done", file=sys.stderr)
    with postgres_server() as url:
        results["PostgreSQL 15"] = measure(url, Path(tempfile.mkdtemp(prefix="bench-db-pg-")), embedder, questions)
    print("postgresql done", file=sys.stderr)

    base, pg = results["SQLite (default, baseline)"], results["PostgreSQL 15"]
    gap = base["chosen per base"]["r1"] - pg["chosen per base"]["r1"]
    docs, chunks = base["counts"]
    lines = [
        HEADING, "",
        f"`python benchmarks/bench_database.py` on {cpu_name()}, {os.cpu_count()} cores shared with other jobs "
        f"(load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end), {(time.perf_counter() - started) / 60:.1f} "
        f"min in all. The demo store ({docs} documents, {chunks} chunks) and its {len(questions)} labelled questions, "
        "one fresh base per engine in the same run, the same embedder and passage vectors; PostgreSQL 15 (Debian) "
        "started by the script in a temporary folder, on 127.0.0.1 (fsync off).",
        "",
        f"- target: PostgreSQL's recall@1 within 0.02 of SQLite's: {pg['chosen per base']['r1']:.3f} vs "
        f"{base['chosen per base']['r1']:.3f} (difference {gap:+.3f}): **{'met' if abs(gap) <= 0.02 else 'MISSED'}**.",
        "",
        "| engine | fusion chosen at sync | chosen: recall@1 | recall@5 | MRR | keyword only: recall@1 | recall@5 | MRR "
        "| hybrid: recall@1 | threshold | confident coverage | precision | keyword query p50 / p99 | sync |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        c, k, h = r["chosen per base"], r["keyword only"], r["hybrid"]
        lines.append(f"| {name} | {r['fusion']} | {c['r1']:.3f} | {c['r5']:.3f} | {c['mrr']:.3f} | {k['r1']:.3f} | "
                     f"{k['r5']:.3f} | {k['mrr']:.3f} | {h['r1']:.3f} | {r['threshold']:.3f} | {r['coverage']:.1%} | "
                     f"{r['precision']:.1%} | {r['keyword_p50']:.2f} / {r['keyword_p99']:.2f} ms | {r['sync']:.1f} s |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_subsection(ROOT / "BENCHMARKS.md", text, HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
