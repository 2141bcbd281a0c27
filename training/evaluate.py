"""Evaluation of a model version: accuracy, macro-F1, per-intent scores, confusions, coverage vs precision.

Out-of-scope examples (the settings' `oos_label`) count as right only when the model says unknown.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Sequence

from training.classifier import Classifier, Prediction
from training.store import Example


def evaluate(classifier: Classifier, examples: Sequence[Example], oos_label: str, batch_size: int = 64) -> dict:
    """Predict every example and report on the predictions."""
    texts = [e.text for e in examples]
    predictions = []
    for start in range(0, len(texts), batch_size):
        predictions += classifier.predict(texts[start : start + batch_size])
    return report([e.intent for e in examples], predictions, getattr(classifier, "threshold", 0.0), oos_label)


def report(truth: Sequence[str], predictions: Sequence[Prediction], threshold: float, oos_label: str) -> dict:
    in_scope = [(t, p) for t, p in zip(truth, predictions) if t != oos_label]
    oos = [p for t, p in zip(truth, predictions) if t == oos_label]
    if not in_scope:
        raise ValueError("evaluation needs in-scope examples")
    top1 = [p.top[0][0] for _, p in in_scope]
    gold = [t for t, _ in in_scope]
    per_intent = _per_intent(gold, top1)
    answered = [(t, p) for t, p in in_scope if not p.unknown]
    result = {
        "examples": len(truth),
        "in_scope": len(in_scope),
        "accuracy": _mean(g == p for g, p in zip(gold, top1)),
        "macro_f1": _mean(s["f1"] for s in per_intent.values()),
        "threshold": threshold,
        "coverage": len(answered) / len(in_scope),
        "answered_precision": _mean(t == p.intent for t, p in answered) if answered else None,
        "per_intent": per_intent,
        "confused_pairs": [
            {"intent": g, "predicted": p, "count": n}
            for (g, p), n in Counter((g, p) for g, p in zip(gold, top1) if g != p).most_common(10)
        ],
        "coverage_precision": _curve(in_scope, oos, threshold),
    }
    if oos:
        result["out_of_scope"] = len(oos)
        result["oos_recall"] = _mean(p.unknown for p in oos)
    return result


def _per_intent(gold: list[str], predicted: list[str]) -> dict:
    scores = {}
    for intent in sorted(set(gold)):
        tp = sum(g == p == intent for g, p in zip(gold, predicted))
        fp = sum(p == intent and g != intent for g, p in zip(gold, predicted))
        fn = sum(g == intent and p != intent for g, p in zip(gold, predicted))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[intent] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return scores


def _curve(in_scope, oos, chosen: float) -> list[dict]:
    """Coverage and precision of answered messages as the threshold moves (out-of-scope answers are errors)."""
    rows = []
    for t in sorted({round(x * 0.05, 2) for x in range(20)} | {round(chosen, 3)}):
        answered = [(g, p) for g, p in in_scope if p.confidence >= t]
        wrong_oos = sum(p.confidence >= t for p in oos)
        right = sum(g == p.top[0][0] for g, p in answered)
        total = len(answered) + wrong_oos
        rows.append({
            "threshold": t,
            "coverage": len(answered) / len(in_scope),
            "precision": right / total if total else None,
            "oos_answered": wrong_oos / len(oos) if oos else None,
            "chosen": t == round(chosen, 3),
        })
    return rows


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def write_report(result: dict, folder: Path, name: str = "evaluation") -> tuple[Path, Path]:
    """Write `<name>.json` and a readable `<name>.md` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
    json_path.write_text(json.dumps(result, indent=2))
    md_path.write_text(markdown(result))
    return json_path, md_path


def markdown(r: dict) -> str:
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    lines = [
        "# Intent model evaluation", "",
        f"- examples: {r['examples']} ({r['in_scope']} in scope, {r.get('out_of_scope', 0)} out of scope)",
        f"- accuracy (top-1, in scope): {pct(r['accuracy'])}",
        f"- macro-F1: {pct(r['macro_f1'])}",
        f"- answer threshold {r['threshold']:.3f}: coverage {pct(r['coverage'])}, precision of answered {pct(r['answered_precision'])}",
    ]
    if "oos_recall" in r:
        lines.append(f"- out-of-scope recall (said unknown): {pct(r['oos_recall'])}")
    lines += ["", "## Coverage vs precision", "", "| threshold | coverage | precision | out-of-scope answered |", "|---|---|---|---|"]
    for row in r["coverage_precision"]:
        mark = " (chosen)" if row["chosen"] else ""
        lines.append(f"| {row['threshold']:.2f}{mark} | {pct(row['coverage'])} | {pct(row['precision'])} | {pct(row['oos_answered'])} |")
    lines += ["", "## Most confused intents", "", "| intent | predicted as | count |", "|---|---|---|"]
    lines += [f"| {c['intent']} | {c['predicted']} | {c['count']} |" for c in r["confused_pairs"]]
    lines += ["", "## Per intent", "", "| intent | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for intent, s in sorted(r["per_intent"].items(), key=lambda kv: kv[1]["f1"]):
        lines.append(f"| {intent} | {pct(s['precision'])} | {pct(s['recall'])} | {pct(s['f1'])} | {s['support']} |")
    return "\n".join(lines) + "\n"
