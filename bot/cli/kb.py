"""`run_bot.py kb ...`: ingest help articles into the knowledge base, search it, inspect and prune it."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.common import add_bot_args, command, open_bot

EXAMPLES = """  python run_bot.py kb sync                          re-ingest the bot folder's knowledge/ (incremental)
  python run_bot.py kb add ~/exports/helpcentre faq.csv   add more files or folders
  python run_bot.py kb search "how long does delivery take"
  python run_bot.py kb search "XR-220 battery" --json   machine-readable hits
  python run_bot.py kb stats                          documents, the base's chosen ranking and threshold
  python run_bot.py kb evaluate --questions labelled.csv   measure the base on your own labelled questions
  python run_bot.py kb remove faq.csv                  remove a document (or every row of a FAQ file)"""


def register(sub) -> None:
    kb = command(sub, "kb", lambda args: kb.print_help() or 2,
                 "knowledge base: ingest help articles, search them, inspect and prune", EXAMPLES)
    actions = kb.add_subparsers(dest="kb_command", metavar="ACTION")

    p = command(actions, "add", add, "ingest files or folders (Markdown, HTML, text, FAQ CSV/TSV, JSONL, PDF); "
                "unchanged documents are not re-embedded",
                "  python run_bot.py kb add docs/ faq.csv --bot mybot")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add_bot_args(p)

    p = command(actions, "sync", sync, "make the base match folders: new and changed documents embedded, "
                "deleted ones removed (default: the bot folder's knowledge/)",
                "  python run_bot.py kb sync\n  python run_bot.py kb sync ~/exports/helpcentre --bot mybot")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    add_bot_args(p)

    p = command(actions, "search", search, "search the base: the trimmed answer, then hits by rank score with "
                "their relevance and sources",
                '  python run_bot.py kb search "can I return a sofa"\n'
                '  python run_bot.py kb search "XR-220" --mode keyword -k 3 --tag products')
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5, help="number of hits (default 5)")
    p.add_argument("--tag", action="append", default=[], help="only documents with this tag/category (repeatable)")
    p.add_argument("--mode", choices=("auto", "hybrid", "rrf", "dense", "keyword"), default="auto",
                   help="ranking (default auto: the base's own choice, see `kb stats`)")
    p.add_argument("--json", action="store_true", help="print the answer and hits as one JSON object")
    add_bot_args(p)

    p = command(actions, "evaluate", evaluate, "measure the base on labelled questions: recall@1/@5, MRR, and how "
                "many are answered confidently and right; writes one row per question",
                "  python run_bot.py kb evaluate --questions labelled.csv --bot mybot\n"
                "  (CSV header: question,document; document = expected id, file or title)")
    p.add_argument("--questions", type=Path, required=True, metavar="FILE.csv",
                   help="labelled questions: a question column and an expected document (id, file or title)")
    p.add_argument("--out", type=Path, metavar="FILE.csv",
                   help="per-question results (default: kb_evaluation.csv in the bot's state folder)")
    add_bot_args(p)

    p = command(actions, "stats", stats, "documents, chunks, index kind, the base's chosen ranking and threshold",
                "  python run_bot.py kb stats --bot mybot")
    p.add_argument("--documents", action="store_true", help="also list every document id, chunks and title")
    add_bot_args(p)

    p = command(actions, "remove", remove, "remove documents by id (see `kb stats --documents`)",
                "  python run_bot.py kb remove returns.md faq.csv#do-you-ship-abroad")
    p.add_argument("ids", nargs="+", metavar="ID")
    add_bot_args(p)


def open_kb(args: argparse.Namespace):
    from knowledge.base import KnowledgeBase

    settings = open_bot(args).settings
    return KnowledgeBase.open(settings.database_location, settings.index_path, settings.knowledge)


def add(args) -> int:
    return _ingest(args, args.paths, remove_missing=False)


def sync(args) -> int:
    paths = args.paths or [open_bot(args).knowledge_dir]
    return _ingest(args, paths, remove_missing=True)


def _ingest(args, paths, remove_missing: bool) -> int:
    from bot.training_run import ingest_knowledge

    print(ingest_knowledge(open_bot(args), paths, remove_missing, progress=True).summary())
    return 0


def search(args) -> int:
    import json

    kb = open_kb(args)
    try:
        hits = kb.search(args.query, k=args.k, tags=args.tag, mode=args.mode)
        answer = kb.answer(args.query, tags=args.tag) if args.mode == "auto" else None
        threshold, fusion = kb.threshold, kb.fusion.describe()
    finally:
        kb.close()
    if args.json:
        print(json.dumps({
            "query": args.query, "ranking": fusion if args.mode == "auto" else args.mode, "threshold": threshold,
            "answer": None if answer is None or not answer.title else {
                "doc_id": answer.doc_id, "title": answer.title, "url": answer.url, "text": answer.text,
                "score": round(answer.score, 4), "confident": answer.confident},
            "hits": [{"doc_id": h.doc_id, "title": h.title, "url": h.url, "heading": h.heading, "text": h.text,
                      "score": round(h.score, 4), "rank_score": round(h.rank_score, 4)} for h in hits],
        }, ensure_ascii=False, indent=2))
        return 0 if hits else 1
    if not hits:
        print("no results (is the base empty? run `kb sync`)")
        return 1
    if answer is not None:
        verdict = "answer" if answer.confident else f"no good answer (relevance below {threshold:.3f})"
        print(f"{verdict} [{answer.score:.2f}] {answer.title}{f' <{answer.url}>' if answer.url else ''}")
        print("  " + answer.text.replace("\n", "\n  ") + "\n")
    # in the ranking's order, which picks the answer: relevance may rise further down, so both are labelled
    ranking = f"{fusion}; the first is the answer's" if args.mode == "auto" else args.mode
    print(f"hits by rank score ({ranking}); relevance: how sure the base is, 0..1, an answer needs {threshold:.3f}")
    print("    rank  relevance")
    for n, hit in enumerate(hits, 1):
        where = f" > {hit.heading}" if hit.heading else ""
        print(f"{n:>2}. {hit.rank_score:5.3f}  {hit.score:9.2f}  {hit.title}{where}  "
              f"({hit.doc_id}{f', {hit.url}' if hit.url else ''})")
        text = " ".join(hit.text.split())
        print(f"   {text[:200]}{'...' if len(text) > 200 else ''}")
    return 0


def evaluate(args) -> int:
    from knowledge.evaluation import evaluate as run_evaluation, read_questions

    questions = read_questions(args.questions)
    out = args.out or open_bot(args).settings.state_path / "kb_evaluation.csv"
    kb = open_kb(args)
    try:
        result = run_evaluation(kb, questions)
        tuned = kb.calibration.tuning if kb.calibration else None
    finally:
        kb.close()
    result.write_csv(out)
    print(result.summary())
    if tuned is not None and tuned.answers and not kb.settings.min_relevance:
        print(f"the threshold's {tuned.expected()}")
    print(f"per-question results: {out}")
    return 0


def stats(args) -> int:
    kb = open_kb(args)
    try:
        s = kb.stats()
        docs = kb.documents() if args.documents else []
    finally:
        kb.close()
    index = s.index_kind if s.index_kind != "ivf" else f"ivf (nprobe {s.nprobe}, recall@10 {s.index_recall:.3f} vs exact)"
    print(f"documents {s.documents}\nchunks {s.chunks}\nindex {index}\ngeneration {s.generation}\n"
          f"embedder {s.embedder}")
    t = s.tuning
    pinned = lambda name: " (pinned by knowledge." + name + ")" if name in s.pinned else ""  # noqa: E731
    print(f"ranking {s.fusion}{pinned('fusion') or pinned('title_signal')}")
    if t is not None:
        print(f"  chosen at sync: MRR@10 {t.mrr:.3f} on {t.questions} questions the base made from itself "
              f"(titles, headings, FAQ questions, confirmed answers; held out by document)")
        ranked = sorted(t.scores, key=lambda x: -x[2])
        for name, r1, mrr in ranked[:3]:
            print(f"    {name}: recall@1 {r1:.3f}, MRR@10 {mrr:.3f}")
    print(f"answer threshold {s.threshold:.3f}{pinned('min_relevance')}")
    if t is not None:
        how = (f"fitted to target precision {t.target:g}: {t.threshold:.3f}" if t.fitted else
               f"target precision {t.target:g} not surely reached on the base's own questions: {t.threshold:.3f}, "
               f"leaning to suggesting articles")
        used = "" if "min_relevance" not in s.pinned else " (used with knowledge.min_relevance=0)"
        print(f"  {how}{used}; it answers {t.coverage:.1%} of the base's own questions confidently, "
              f"{t.precision:.1%} of confident answers right ({t.negatives} off-topic questions among them)")
        if t.answers:
            print(f"  {t.expected()}")
    for d in docs:
        print(f"  {d.id}  ({d.chunks} chunks)  {d.title}")
    return 0


def remove(args) -> int:
    kb = open_kb(args)
    try:
        n = kb.remove(args.ids)
    finally:
        kb.close()
    print(f"removed {n} document{'s' if n != 1 else ''}")
    return 0
