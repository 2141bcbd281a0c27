#!/usr/bin/env python3
"""The knowledge base's embedder through PyTorch and ONNX Runtime (fp32, int8), one run.

    python benchmarks/bench_embedder.py

On the demo store's base (examples/demo_store/knowledge) and benchmarks/data/demo_kb_questions.csv (144
labelled questions), each `knowledge.embedder_runtime` in a fresh state folder (onnx-int8: questions through
the int8 graph, passages fp32): seconds to make the embedder (the first ONNX one exports both graphs), sync
time, recall@1/@5,
MRR@10, confident coverage and precision at the default threshold, unanswerable questions answered; and the
alternative of embedding the passages with int8 too (the base re-embedded). Batch-1 question embedding
p50/p99 on one thread over the questions; load seconds (a warm export cache, imports included) and peak RSS of
each embedder, each in its own process. PyTorch is the baseline. Writes benchmarks/results/embedder.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RUNTIMES = ("torch", "onnx-fp32", "onnx-int8")
LOAD = """
import sys, time
sys.path.insert(0, {root!r})
start = time.perf_counter()
from knowledge.embedder import make_embedder
e = make_embedder("", {runtime!r}, __import__("pathlib").Path({cache!r}), threads=1)
getattr(e, "encode_queries", e.encode)(["where is my parcel"])
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))  # kB; reset by exec
print(round(time.perf_counter() - start, 2), peak // 1024, type(e).__name__)
"""


def measured(kb, questions, unanswerable) -> dict:
    from knowledge.evaluation import evaluate

    e = evaluate(kb, questions)
    off = kb.answer_many(list(unanswerable))
    return {"recall_at_1": e.recall_at_1, "recall_at_5": e.recall_at_5, "mrr": e.mrr, "coverage": e.coverage,
            "precision": e.precision, "threshold": e.threshold,
            "unanswerable_answered": sum(a.confident for a in off) / len(off)}


def main() -> None:
    import torch

    from bench_knowledge import UNANSWERABLE
    from bench_onnx import latency  # batch-1 p50/p99 after a warm-up, the same measure as the intent model's
    from knowledge.base import KnowledgeBase
    from knowledge.embedder import make_embedder
    from knowledge.evaluation import read_questions
    from knowledge.settings import KnowledgeSettings

    torch.set_num_threads(1)
    questions = read_questions(ROOT / "benchmarks" / "data" / "demo_kb_questions.csv")
    docs = ROOT / "examples" / "demo_store" / "knowledge"
    work = Path(tempfile.mkdtemp(prefix="bench-embedder-"))
    cache = work / "onnx-cache"
    result: dict = {"runtimes": {}, "load": [os.getloadavg()[0]]}
    for runtime in RUNTIMES:
        state = work / runtime
        started = time.perf_counter()
        embedder = make_embedder("", runtime, cache, threads=1)
        made = time.perf_counter() - started
        kb = KnowledgeBase.open(state / "kb.db", state / "index", KnowledgeSettings(embedder_runtime=runtime), embedder)
        started = time.perf_counter()
        kb.sync([docs])
        row = {"embedder_s": round(made, 1), "sync_s": round(time.perf_counter() - started, 1), **measured(kb, questions, UNANSWERABLE),
               **latency(getattr(embedder, "encode_queries", embedder.encode), [q for q, _ in questions])}
        result["runtimes"][runtime] = row
        kb.close()
        print(runtime, row, flush=True)
    # the alternative: passages through the int8 graph too (a base embedded by PyTorch re-embedded)
    int8 = make_embedder("", "onnx-int8", cache, threads=1)
    int8.encode = int8.encode_queries
    kb = KnowledgeBase.open(work / "int8-all" / "kb.db", work / "int8-all" / "index", KnowledgeSettings(), int8)
    kb.sync([docs])
    result["int8 passages too (re-embedded)"] = measured(kb, questions, UNANSWERABLE)
    kb.close()
    for runtime in RUNTIMES:
        out = subprocess.run([sys.executable, "-c", LOAD.format(root=str(ROOT), runtime=runtime, cache=str(cache))],
                             capture_output=True, text=True, check=True).stdout.split()
        result["runtimes"][runtime].update(load_s=float(out[0]), peak_rss_mb=int(out[1]), loaded=out[2])
    from bench_knowledge import cpu_name

    result.update(machine=f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}",
                  command="python benchmarks/bench_embedder.py", questions=len(questions))
    result["load"].append(os.getloadavg()[0])
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "embedder.json").write_text(json.dumps(result, indent=2))
    print("\n| embedder | recall@1 | recall@5 | MRR@10 | confident coverage | precision | unanswerable answered "
          "| question p50 | p99 | made in | sync | load | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in result["runtimes"].items():
        print(f"| {name} | {r['recall_at_1']:.3f} | {r['recall_at_5']:.3f} | {r['mrr']:.3f} | {r['coverage']:.1%} | "
              f"{r['precision']:.1%} | {r['unanswerable_answered']:.0%} | {r['p50_ms']} ms | {r['p99_ms']} ms | "
              f"{r['embedder_s']} s | {r['sync_s']} s | {r['load_s']} s | {r['peak_rss_mb']} MB |")
    r = result["int8 passages too (re-embedded)"]
    print(f"| onnx-int8, passages int8 too (re-embedded) | {r['recall_at_1']:.3f} | {r['recall_at_5']:.3f} | {r['mrr']:.3f} | "
          f"{r['coverage']:.1%} | {r['precision']:.1%} | {r['unanswerable_answered']:.0%} | | | | | | |")


if __name__ == "__main__":
    main()
