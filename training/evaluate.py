"""Evaluation of a model version on any labelled file: the serving decision (answered right, refused,
answered wrong, asked back), top-1 accuracy, macro-F1, MCC with out of scope as its own class, out-of-scope
recall and AUROC, clarification figures, per-intent scores, confusions, coverage vs precision.

Out-of-scope examples (the settings' `oos_label`) count as right only when the model says unknown.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

from training.classifier import Classifier, Prediction
from training.store import Example


def evaluate(classifier: Classifier, examples: Sequence[Example], oos_label: str, batch_size: int = 64,
             predictions: list | None = None, floor: float = 0.0) -> dict:
    """Predict every example and report on the predictions (appended to `predictions` when given); `floor`: the
    least probability an intent offered in a question has (the bot's server.clarify_floor)."""
    texts = [e.text for e in examples]
    found = []
    for start in range(0, len(texts), batch_size):
        found += classifier.predict(texts[start : start + batch_size])
    if predictions is not None:
        predictions += found
    threshold = getattr(classifier, "score_threshold", getattr(classifier, "threshold", 0.0))
    return report([e.intent for e in examples], found, threshold, oos_label, margin=getattr(classifier, "margin", 0.0),
                  pair_floor=getattr(classifier, "threshold", 0.0), floor=floor)


def offered(p: Prediction, pair_floor: float, margin: float, floor: float = 0.0, most: int = 3,
            eligible: Callable[[str], bool] = lambda name: True) -> list[tuple[str, float]]:
    """The intents a clarifying question offers, best first, or none when no question is asked: the top two are
    within the model's margin (`p.ambiguous`) and together clear `pair_floor` (one of them is meant, but which?),
    with any others as close to the second; none below `floor` or not `eligible` (the router leaves out small
    talk and intents the bot lacks). A message the out-of-scope score refuses is never offered intents. The one
    rule the router (bot.dialogue.policy) and every evaluation apply."""
    if p.unknown:
        return []
    choices = [(name, c) for name, c in p.top if eligible(name) and c >= floor]
    top_two = [name for name, _ in p.top[:2]]
    if (not p.ambiguous or len(choices) < 2 or top_two != [name for name, _ in choices[:2]]
            or choices[0][1] + choices[1][1] < pair_floor):
        return []
    second = choices[1][1]
    return [(n, c) for n, c in choices if second - c < margin][:most]


def decision(p: Prediction, pair_floor: float = 0.0, floor: float = 0.0) -> str:
    """What the router does with a prediction: "refuse" (the out-of-scope score refused it: knowledge base
    or fallback, never a question between intents), "clarify" (asks which, see `offered`) or "answer" (the top
    intent)."""
    if p.unknown:
        return "refuse"
    return "clarify" if offered(p, pair_floor, float("inf"), floor) else "answer"


def choices(p: Prediction, margin: float, most: int = 3) -> list[str]:
    """The intents a clarifying question offers: the top two, and others as close to the second as the margin."""
    if len(p.top) < 2:
        return [name for name, _ in p.top]
    second = p.top[1][1]
    return [name for i, (name, c) in enumerate(p.top) if i < 2 or second - c < margin][:most]


def score_of(p: Prediction) -> float:
    return p.confidence if p.oos_score is None else p.oos_score


def report(truth: Sequence[str], predictions: Sequence[Prediction], threshold: float, oos_label: str,
           margin: float = 0.0, pair_floor: float | None = None, floor: float = 0.0) -> dict:
    """Everything measured on labelled messages; `threshold` is the one on the out-of-scope score, `pair_floor`
    the one the top two must clear together for a question (default: `threshold`)."""
    pair_floor = threshold if pair_floor is None else pair_floor
    in_scope = [(t, p) for t, p in zip(truth, predictions) if t != oos_label]
    oos = [p for t, p in zip(truth, predictions) if t == oos_label]
    if not in_scope:
        raise ValueError("evaluation needs in-scope examples")
    top1 = [p.top[0][0] for _, p in in_scope]
    gold = [t for t, _ in in_scope]
    per_intent = _per_intent(gold, top1)
    answered = [(t, p) for t, p in in_scope if not p.unknown]
    decided = [decision(p, pair_floor, floor) for _, p in in_scope]
    oos_decided = [decision(p, pair_floor, floor) for p in oos]
    n = len(in_scope)
    result = {
        "examples": len(truth),
        "in_scope": len(in_scope),
        "accuracy": _mean(g == p for g, p in zip(gold, top1)),
        "macro_f1": _mean(s["f1"] for s in per_intent.values()),
        "threshold": threshold,
        "coverage": len(answered) / len(in_scope),
        "answered_precision": _mean(t == p.intent for t, p in answered) if answered else None,
        "decision": {  # in-scope messages as the router would treat them
            "answered_right": sum(d == "answer" and g == t for d, g, t in zip(decided, gold, top1)) / n,
            "answered_wrong": sum(d == "answer" and g != t for d, g, t in zip(decided, gold, top1)) / n,
            "refused": decided.count("refuse") / n,
            "clarified": decided.count("clarify") / n,
        },
        "clarification": _clarification(in_scope, decided, margin),
        "mcc": _mcc(truth, predictions, oos_label, pair_floor, floor),
        "per_intent": per_intent,
        "confused_pairs": [
            {"intent": g, "predicted": p, "count": n}
            for (g, p), n in Counter((g, p) for g, p in zip(gold, top1) if g != p).most_common(10)
        ],
        "coverage_precision": _curve(in_scope, oos, threshold),
    }
    if oos:
        from training.oos import auroc

        answered_oos = sum(d == "answer" for d in oos_decided)
        right = result["decision"]["answered_right"] * n
        result["out_of_scope"] = len(oos)
        result["oos_recall"] = _mean(p.unknown for p in oos)
        result["oos_decision"] = {"refused": oos_decided.count("refuse") / len(oos), "answered": answered_oos / len(oos),
                                  "clarified": oos_decided.count("clarify") / len(oos)}
        result["auroc"] = auroc([score_of(p) for _, p in in_scope], [score_of(p) for p in oos])
        answered_all = right + result["decision"]["answered_wrong"] * n + answered_oos
        result["answered_precision_with_oos"] = right / answered_all if answered_all else None
        # the serving decision over the whole file: in scope answered right, out of scope refused
        result["decision_accuracy"] = (right + oos_decided.count("refuse")) / len(truth)
    return result


def _clarification(in_scope, decided: list[str], margin: float) -> dict:
    asked = [(g, p) for (g, p), d in zip(in_scope, decided) if d == "clarify"]
    direct = [(g, p) for (g, p), d in zip(in_scope, decided) if d == "answer"]
    return {
        "margin": margin,
        "share": len(asked) / len(in_scope),
        "right_among_choices": _mean(g in choices(p, margin) for g, p in asked) if asked else None,
        "top_wrong_right_among_choices": _mean(g != p.top[0][0] and g in choices(p, margin) for g, p in asked)
        if asked else None,
        "direct_accuracy": _mean(g == p.top[0][0] for g, p in direct) if direct else None,
    }


def _mcc(truth, predictions, oos_label: str, pair_floor: float, floor: float) -> float:
    """Matthews correlation over intents plus out of scope as its own class (a question counts as its first choice)."""
    from sklearn.metrics import matthews_corrcoef

    said = [oos_label if decision(p, pair_floor, floor) == "refuse" else p.top[0][0] for p in predictions]
    return float(matthews_corrcoef(list(truth), said))


def prediction_rows(examples: Sequence[Example], predictions: Sequence[Prediction], oos_label: str,
                    pair_floor: float = 0.0, floor: float = 0.0) -> list[dict]:
    """One row per message for `evaluate --predictions`: what it was, what the bot would do, and why."""
    rows = []
    for e, p in zip(examples, predictions):
        decided = decision(p, pair_floor, floor)
        rows.append({
            "text": e.text, "label": e.intent or "", "decision": decided,
            "intent": p.intent or "", "top_intent": p.top[0][0] if p.top else "",
            "right": (e.intent == oos_label and decided == "refuse")
            or (e.intent != oos_label and decided == "answer" and p.top[0][0] == e.intent),
            "confidence": round(p.confidence, 4), "oos_score": p.oos_score,
            "top_k": " | ".join(f"{name}:{c:.4f}" for name, c in p.top),
        })
    return rows


def write_predictions(rows: list[dict], path: Path) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["text"])
        writer.writeheader()
        writer.writerows(rows)


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
    """Coverage and precision of answered messages as the score threshold moves (out-of-scope answers are
    errors): thresholds at which 50, 55, ..., 100 % of the in-scope messages clear it, and the chosen one."""
    scores = sorted(score_of(p) for _, p in in_scope)
    cuts = {round(scores[min(len(scores) - 1, int(len(scores) * (1 - c / 100)))], 4) for c in range(50, 101, 5)}
    rows = []
    for t in sorted(cuts | {round(chosen, 4)}):
        answered = [(g, p) for g, p in in_scope if score_of(p) >= t]
        wrong_oos = sum(score_of(p) >= t for p in oos)
        right = sum(g == p.top[0][0] for g, p in answered)
        total = len(answered) + wrong_oos
        rows.append({
            "threshold": t,
            "coverage": len(answered) / len(in_scope),
            "precision": right / total if total else None,
            "oos_answered": wrong_oos / len(oos) if oos else None,
            "chosen": t == round(chosen, 4),
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
    d, c = r["decision"], r["clarification"]
    num = lambda x, f="{:.3f}": "n/a" if x is None else f.format(x)  # noqa: E731
    lines = [
        "# Intent model evaluation", "",
        f"- examples: {r['examples']} ({r['in_scope']} in scope, {r.get('out_of_scope', 0)} out of scope)",
        f"- at the serving decision, in scope: answered right {pct(d['answered_right'])}, answered wrong "
        f"{pct(d['answered_wrong'])}, refused {pct(d['refused'])}, asked back {pct(d['clarified'])}",
    ]
    if "oos_recall" in r:
        o = r["oos_decision"]
        lines += [
            f"- at the serving decision, out of scope: refused {pct(o['refused'])}, answered {pct(o['answered'])}, "
            f"asked back {pct(o['clarified'])}",
            f"- decision accuracy (in scope answered right + out of scope refused): {pct(r['decision_accuracy'])}",
            f"- out-of-scope AUROC of the score: {num(r['auroc'])}; out-of-scope recall at the threshold: "
            f"{pct(r['oos_recall'])}; precision of answered incl. out of scope: {pct(r['answered_precision_with_oos'])}",
        ]
    lines += [
        f"- accuracy (top-1, in scope, threshold ignored): {pct(r['accuracy'])}",
        f"- macro-F1: {pct(r['macro_f1'])}; MCC (out of scope as its own class): {num(r['mcc'])}",
        f"- answer threshold {r['threshold']:.3f} on the out-of-scope score: in-scope coverage {pct(r['coverage'])}, "
        f"precision of answered {pct(r['answered_precision'])}",
        f"- clarifying questions (margin {c['margin']:.2f}): {pct(c['share'])} of in-scope messages, right intent among "
        f"the choices in {pct(c['right_among_choices'])} of them (top one wrong and right one offered: "
        f"{pct(c['top_wrong_right_among_choices'])}); accuracy of those answered directly {pct(c['direct_accuracy'])}",
    ]
    lines += ["", "## Coverage vs precision", "", "| score threshold | in-scope coverage | precision of answered | out-of-scope answered |", "|---|---|---|---|"]
    for row in r["coverage_precision"]:
        mark = " (chosen)" if row["chosen"] else ""
        lines.append(f"| {row['threshold']:.4f}{mark} | {pct(row['coverage'])} | {pct(row['precision'])} | {pct(row['oos_answered'])} |")
    lines += ["", "## Most confused intents", "", "| intent | predicted as | count |", "|---|---|---|"]
    lines += [f"| {c['intent']} | {c['predicted']} | {c['count']} |" for c in r["confused_pairs"]]
    lines += ["", "## Per intent", "", "| intent | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for intent, s in sorted(r["per_intent"].items(), key=lambda kv: kv[1]["f1"]):
        lines.append(f"| {intent} | {pct(s['precision'])} | {pct(s['recall'])} | {pct(s['f1'])} | {s['support']} |")
    return "\n".join(lines) + "\n"
