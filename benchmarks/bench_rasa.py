#!/usr/bin/env python3
"""Rasa migration benchmark: each public Rasa project migrated, trained and replayed on its own test stories.

    python benchmarks/bench_rasa.py [--data ../shared/data/formats] [--tfidf-only]

For each project (the financial demo and the example bots in rasa_examples/): migration time; the share of
test-story turns that get Rasa's reply (turns needing a custom action or form are not scored), with the
migrated bot's fine-tuned model and, in the same run, with TF-IDF + logistic regression trained on the same
examples; intent accuracy of both on the held-out test messages (evaluation.csv). responseselectorbot runs
twice: retrieval intents as intents, and as knowledge articles. Writes benchmarks/results/rasa.json and
prints the Markdown table for BENCHMARKS.md. Run it under the shared lock: it fine-tunes one model per bot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECTS = ("rasa_financial_demo", "rasa_examples/moodbot", "rasa_examples/formbot",
            "rasa_examples/responseselectorbot", "rasa_examples/rules")


class TfidfClassifier:
    """TF-IDF (1-2 grams) + logistic regression behind the router's classifier protocol (no threshold: the
    baseline always names its best intent, as a plain Rasa-style classifier does)."""

    version, threshold, margin = "tfidf", 0.0, 0.0

    def __init__(self, examples):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        self.model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                                   LogisticRegression(max_iter=2000, C=10))
        self.model.fit([e.text for e in examples], [e.intent for e in examples])

    def predict(self, texts, k: int = 3):
        from training.classifier import Prediction

        out = []
        for probs in self.model.predict_proba(list(texts)):
            order = probs.argsort()[::-1][:k]
            top = [(str(self.model.classes_[i]), float(probs[i])) for i in order]
            out.append(Prediction(top[0][0], top[0][1], top, False, False))
        return out


def replay(folder, classifier):
    from bot.dialogue.replay import load_conversations, replay_folder
    from bot.folder.rasa_migration import CONVERSATIONS_FILE

    file = folder.path / CONVERSATIONS_FILE
    if not file.exists():
        return None
    kb = knowledge(folder)
    return replay_folder(folder, classifier, kb, load_conversations(file))


def knowledge(folder):
    from bot.dialogue.replay import folder_knowledge

    return folder_knowledge(folder)


def accuracy(classifier, folder) -> float | None:
    from training.dataset import read_examples

    file = folder.path / "evaluation.csv"
    if not file.exists():
        return None
    test = read_examples(file).examples
    predictions = classifier.predict([e.text for e in test])
    return sum((p.top[0][0] if p.top else None) == e.intent for p, e in zip(predictions, test)) / len(test)


def run_project(data: Path, name: str, retrieval_as: str, tfidf_only: bool, work: Path) -> dict:
    from bot.cli.import_ import migrate_rasa
    from bot.folder.bot_folder import BotFolder

    into = work / f"{name.replace('/', '_')}-{retrieval_as}"
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        migrate_rasa(data / name, into, retrieval_as=retrieval_as)
        seconds = time.perf_counter() - start
    folder = BotFolder.load(into)
    row = {"project": name, "retrieval_as": retrieval_as, "migration_s": round(seconds, 3),
           "intents": len(folder.intents), "answered": sum(i.route == "template" for i in folder.intents.values()),
           "examples": sum(len(i.examples) for i in folder.intents.values())}
    if not folder.intents:
        row["note"] = "no NLU data in the sample: nothing to train"
        return row
    seeds = folder.seed_examples()
    tfidf = TfidfClassifier(seeds)
    row["tfidf_accuracy"] = accuracy(tfidf, folder)
    result = replay(folder, tfidf)
    if result is not None:
        row.update(turns=len(result.turns), scored=len(result.scored), tfidf_ok=sum(t.ok for t in result.scored))
        row["tfidf_failing"] = [f"{t.conversation}: {t.user!r} -> {t.intent} ({t.route})"
                                for t in result.scored if not t.ok]
        row["not_scored"] = sorted({t.skip for t in result.turns if t.skip})
    if tfidf_only:
        return row
    from training.classifier import IntentClassifier
    from training.pipeline import train
    from training.registry import ModelRegistry

    start = time.perf_counter()
    trained = train(seeds, folder.settings.train, ModelRegistry(folder.settings.models_path), progress=False)
    row["train_s"] = round(time.perf_counter() - start, 1)
    model = IntentClassifier.load(trained.path)
    row["supportbot_accuracy"] = accuracy(model, folder)
    result = replay(folder, model)
    if result is not None:
        row["supportbot_ok"] = sum(t.ok for t in result.scored)
        row["supportbot_failing"] = [f"{t.conversation}: {t.user!r} -> {t.intent} ({t.route}): {t.got[:60]!r}"
                                     for t in result.scored if not t.ok]
    return row


def retrieval_folds(data: Path, name: str, work: Path, folds: int = 5) -> dict:
    """Retrieval intents as intents or as knowledge articles, cross-validated: every NLU example is held out
    once (all intents, stratified by position), the bot migrated from the rest, and each held-out example of a
    retrieval intent (`chitchat/ask_name`) sent as a one-turn conversation: right when the reply is one of that
    response's variants. TF-IDF + logistic regression is the classifier (fine-tuning 2 x 5 bots is too slow)."""
    import copy

    from bot.dialogue.replay import matches
    from bot.folder.bot_folder import BotFolder
    from bot.folder.rasa_migration import migrate_rasa
    from bot.dialogue.router import Conversation, Router
    from training.rasa.project import load_project

    project = load_project(data / name)
    scores = {}
    for mode in ("intents", "knowledge"):
        ok = n = 0
        for k in range(folds):
            part = copy.copy(project)
            part.examples = {i: [ex for j, ex in enumerate(v) if j % folds != k] for i, v in project.examples.items()}
            held = [(ex.text, i) for i, v in project.examples.items() if "/" in i
                    for j, ex in enumerate(v) if j % folds == k]
            into = work / f"folds-{mode}-{k}"
            with contextlib.redirect_stdout(io.StringIO()):
                migrate_rasa(data / name, into, retrieval_as=mode, project=part)
            folder = BotFolder.load(into)
            model = TfidfClassifier(folder.seed_examples())
            kb = knowledge(folder)

            async def classify(text, model=model):
                return model.predict([text])[0]

            async def search(text, kb=kb):
                return kb.answer(text) if kb is not None else None

            router = Router(folder.intents, folder.entities, model, classify, search, folder.settings)
            for text, intent in held:
                reply = asyncio.run(router.respond(text, Conversation("fold")))
                expected = tuple(str(v.get("text", "")) for v in project.responses[f"utter_{intent}"].variants)
                ok += matches(reply.answer, expected)
                n += 1
        scores[mode] = {"ok": ok, "n": n}
    return scores


def table(rows) -> str:
    def pct(ok, n):
        return f"{ok}/{n} ({100 * ok / n:.0f} %)" if n else "–"

    def acc(x):
        return "–" if x is None else f"{100 * x:.1f} %"

    lines = ["| project | retrieval as | migration | intents (answered) | turns scored / all | supportbot: expected reply | "
             "TF-IDF+LR: expected reply | intent accuracy supportbot | TF-IDF+LR |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n = r.get("scored", 0)
        lines.append(f"| {r['project']} | {r['retrieval_as']} | {r['migration_s']:.2f} s | {r['intents']} ({r['answered']}) | "
                     f"{n} / {r.get('turns', 0)} | {pct(r['supportbot_ok'], n) if 'supportbot_ok' in r else '–'} | "
                     f"{pct(r['tfidf_ok'], n) if 'tfidf_ok' in r else '–'} | {acc(r.get('supportbot_accuracy'))} | "
                     f"{acc(r.get('tfidf_accuracy'))} |")
    main = [r for r in rows if r["retrieval_as"] == "intents"]
    for key in ("supportbot_ok", "tfidf_ok"):
        if all(key in r or "scored" not in r for r in main):
            ok, n = sum(r.get(key, 0) for r in main), sum(r.get("scored", 0) for r in main)
            lines.append(f"\nAll projects ({key.split('_')[0]}): {pct(ok, n)} of the scored turns.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "formats")
    parser.add_argument("--tfidf-only", action="store_true", help="skip fine-tuning (a quick check of the migration)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rasa.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in PROJECTS:
            for mode in ("intents", "knowledge") if name.endswith("responseselectorbot") else ("intents",):
                row = run_project(args.data, name, mode, args.tfidf_only, Path(work))
                print(json.dumps(row), flush=True)
                rows.append(row)
        folds = retrieval_folds(args.data, "rasa_examples/responseselectorbot", Path(work))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "retrieval_folds": folds, "tfidf_only": args.tfidf_only},
                                   indent=1) + "\n")
    print(table(rows))
    print("\nRetrieval intents, 5-fold (TF-IDF + LR): " + ", ".join(
        f"as {mode} {v['ok']}/{v['n']} ({100 * v['ok'] / v['n']:.0f} %)" for mode, v in folds.items()))


if __name__ == "__main__":
    main()
