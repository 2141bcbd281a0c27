#!/usr/bin/env python3
"""Does a knowledge base's fitted answer threshold keep its promise on customers' questions? (issue 33)

    python benchmarks/bench_kb_transfer.py [--data ../shared/data] [--baseline-ref REV]

Each code version (this tree, and the `knowledge/` package of git REV as the baseline) syncs the E-Manual TV base
(`emanual_tv/articles.jsonl`, 261 manual sections) and the demo store, in its own process, with default settings:
the base tunes itself on questions it makes from itself and fits its answer threshold to the target precision
(0.95). Neither version sees a labelled question before it is measured. Reported per base: the precision the
tuning expects and how sure it is, then on the labelled questions recall@1/@5, MRR@10, the share answered
confidently and the share of those right (realised precision), the share of the others whose suggested
articles (knowledge.suggest_relevance, two at most) hold the right one, and the off-topic questions answered.

E-Manual's questions are split by article (crc32 of the article id, even: "dev", odd: "measure"); the dev half is
what changes were looked at on, the measure half was not. Its labels point at a parent section for 237 of the 652
questions (`label_method` level-1) or were picked among same-titled sections by answer overlap (157): the rows
"clean" keep the 344 whose label is the section the question's own path names (level-0, unambiguous).
"measure, one typo": the measure half with exactly one typo a question (`training.noise.typo`, seed 0).
Off-topic: every tenth BANKING77 test message (300) for E-Manual; the benchmark's 18 unanswerable questions for
the demo store. Plain cosine: MiniLM over each article's title and text, the ranking the issue compares with.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SECTION = "### Does the knowledge threshold keep its promise? (issue 33)"
RESULTS = ROOT / "benchmarks" / "results" / "kb_transfer.json"


def emanual_questions(data: Path) -> dict[str, list[tuple[str, str]]]:
    import random

    from training.noise import typo

    rows: dict[str, list[tuple[str, str]]] = {"dev": [], "measure": [], "dev clean": [], "measure clean": []}
    for line in (data / "emanual_tv" / "questions.jsonl").read_text().splitlines():
        q = json.loads(line)
        part = "dev" if zlib.crc32(q["article_id"].encode()) % 2 == 0 else "measure"
        row = (q["question"], "articles.jsonl#" + q["article_id"].replace("_", "-"))
        rows[part].append(row)
        if q["label_method"] == "title_match_level-0":
            rows[part + " clean"].append(row)
    rng = random.Random(0)  # exactly one typo a question (the project's noise function, rate 0)
    rows["measure, one typo"] = [(typo(q, rng, rate=0.0), label) for q, label in rows["measure"]]
    return rows


def child(data: Path, out: Path) -> None:
    """Measure the code on sys.path (this tree or a revision's) and write JSON to `out`."""
    import shutil

    import numpy as np
    from bench_knowledge import ANSWERED_BY_FAQ, UNANSWERABLE
    from knowledge.base import KnowledgeBase
    from knowledge.evaluation import evaluate, matches, read_questions
    from knowledge.settings import KnowledgeSettings

    work = Path(tempfile.mkdtemp(prefix="bench-kb-transfer-"))
    bank = [r[0] for r in csv.reader((data / "banking77" / "test.csv").open())][1:][::10][:300]
    articles = work / "emanual"
    articles.mkdir()
    shutil.copy(data / "emanual_tv" / "articles.jsonl", articles / "articles.jsonl")
    bases = {
        "E-Manual TV": (articles, emanual_questions(data), bank),
        "demo store": (ROOT / "examples" / "demo_store" / "knowledge",
                       {"labelled": read_questions(ROOT / "benchmarks" / "data" / "demo_kb_questions.csv")},
                       [q for q in UNANSWERABLE if q not in ANSWERED_BY_FAQ]),
    }
    settings = KnowledgeSettings()
    result = {}
    for name, (source, sets, off_topic) in bases.items():
        kb = KnowledgeBase.open(work / f"{len(result)}.db", work / f"index{len(result)}", settings)
        kb.sync([source])
        t = kb.calibration.tuning
        base = {"threshold": kb.threshold, "expected": t.precision, "expected_coverage": t.coverage,
                "expected_low": getattr(t, "precision_low", None), "fitted": t.fitted, "sets": {}}
        for set_name, questions in sets.items():
            ev = evaluate(kb, questions)
            answers = kb.answer_many([q for q, _ in questions])
            unsure = [(a, label) for a, (_, label) in zip(answers, questions) if not a.confident]
            helped = sum(any(matches(h.doc_id, h.title, label) for h in [a, *a.alternatives][:2]
                             if h.title and h.score >= settings.suggest_relevance) for a, label in unsure)
            base["sets"][set_name] = {
                "n": len(questions), "recall1": ev.recall_at_1, "recall5": ev.recall_at_5, "mrr": ev.mrr,
                "coverage": ev.coverage, "precision": ev.precision,
                "suggested_right": helped / len(unsure) if unsure else None}
        base["off_topic_answered"] = sum(a.confident for a in kb.answer_many(off_topic)) / len(off_topic)
        base["off_topic"] = len(off_topic)
        if name == "E-Manual TV":  # plain cosine over title + text, for the ranking comparison
            docs = [json.loads(line) for line in (articles / "articles.jsonl").read_text().splitlines()]
            vectors = kb._encode([f"{d['title']}\n{d['text']}" for d in docs])
            for set_name, questions in sets.items():
                q = kb._encode([text for text, _ in questions], queries=True)
                top = np.argmax(q @ vectors.T, axis=1)
                base["sets"][set_name]["plain_recall1"] = float(np.mean(
                    ["articles.jsonl#" + docs[i]["id"].replace("_", "-") == label for i, (_, label) in zip(top, questions)]))
        kb.close()
        result[name] = base
    out.write_text(json.dumps(result))


def measure(code: Path | None, data: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-kb-transfer-out-")) / "result.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(code or ROOT), str(ROOT / "benchmarks")])
    prelude = "" if code is None else "from revision import OLD_NAMES; exec(OLD_NAMES)\n"
    script = (f"{prelude}import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
              f"from pathlib import Path\nfrom bench_kb_transfer import child\nchild(Path({str(data)!r}), Path({str(out)!r}))\n")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=code or ROOT)
    return json.loads(out.read_text())


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def table(results: dict[str, dict]) -> list[str]:
    lines = ["| base, questions | code | threshold | expected precision (90 % low) | recall@1 | plain cosine recall@1 | "
             "recall@5 | MRR@10 | answered | right of those | suggestions hold the right one | off-topic answered |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for base in ("E-Manual TV", "demo store"):
        for set_name in results["this tree"][base]["sets"]:
            for code, r in results.items():
                b, s = r[base], r[base]["sets"][set_name]
                low = f" ({pct(b['expected_low'])})" if b.get("expected_low") is not None else ""
                plain = f"{s['plain_recall1']:.3f}" if "plain_recall1" in s else "-"
                lines.append(
                    f"| {base}, {set_name} ({s['n']}) | {code} | {b['threshold']:.3f} | {pct(b['expected'])}{low} | "
                    f"{s['recall1']:.3f} | {plain} | {s['recall5']:.3f} | {s['mrr']:.3f} | {pct(s['coverage'])} | "
                    f"{pct(s['precision'])} | {pct(s['suggested_right'])} | "
                    f"{pct(b['off_topic_answered'])} of {b['off_topic']} |")
    return lines


def main() -> None:
    from revision import code_of

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--baseline-ref", default="f8545c4")
    args = parser.parse_args()
    results = {f"today's ({args.baseline_ref})": measure(code_of(args.baseline_ref), args.data.resolve()),
               "this tree": measure(None, args.data.resolve())}
    RESULTS.write_text(json.dumps(results, indent=1))
    cpu = platform.processor() or platform.machine()
    text = "\n".join([SECTION, "", f"`python benchmarks/bench_kb_transfer.py` ({cpu}, {os.cpu_count()} cores; "
                      f"baseline: `knowledge/` of git `{args.baseline_ref}`, same run; default settings, target "
                      "precision 0.95; raw numbers in benchmarks/results/kb_transfer.json):", "", *table(results), ""])
    print(text)  # BENCHMARKS.md holds it with what it means


if __name__ == "__main__":
    main()
