"""The gate: a candidate model version serves only if it is not worse than the serving one on the same data.

Both classify the gate's examples (the golden set, `split = test`, never trained on, plus the newest reviewed
examples the serving model never saw) and the out-of-scope examples. The candidate is refused when its
accuracy is lower by more than `tolerance`, when an intent with enough support loses more than
`max_intent_drop` of its recall and the loss is unlikely to be chance (a sign test over its examples that changed,
`intent_drop_alpha`), or when it refuses fewer out-of-scope messages. Shadow scoring runs both
on recent real customer messages and lists every one they would decide differently.

Accuracy on a handful of examples cannot tell a better model from a worse one (one gate example of two is
50 points). Below `min_gate_examples` in-scope gate examples, `hold_unconfirmed` weighs the shadow instead:
every logged message the serving model answered with an intent and the candidate decides differently is a
regression unless a reviewer labelled that turn with the candidate's answer, and a candidate with any (or
with no gate example and no traffic at all) is held for a person's approval rather than promoted.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

from training.classifier import Classifier, Prediction
from training.settings import RetrainSettings
from training.store import Example

BATCH = 64


def predict(classifier: Classifier, texts: Sequence[str]) -> list[Prediction]:
    out: list[Prediction] = []
    for start in range(0, len(texts), BATCH):
        out += classifier.predict(list(texts[start : start + BATCH]))
    return out


def decided(p: Prediction) -> str:
    """What the bot would do with this prediction, as one word: the intent, 'clarify: a|b', or 'unknown'."""
    if p.unknown:
        return "unknown"
    if p.ambiguous and len(p.top) > 1:
        return f"clarify: {p.top[0][0]}|{p.top[1][0]}"
    return p.intent or "unknown"


def score(predictions: Sequence[Prediction], examples: Sequence[Example], oos_label: str) -> dict:
    """Accuracy at the serving decision (an unknown in-scope message is wrong), recall per intent, and the
    share of out-of-scope messages refused."""
    in_scope = [(e, p) for e, p in zip(examples, predictions) if e.intent != oos_label]
    oos = [p for e, p in zip(examples, predictions) if e.intent == oos_label]
    support = Counter(e.intent for e, _ in in_scope)
    right = Counter(e.intent for e, p in in_scope if not p.unknown and p.intent == e.intent)
    return {
        "examples": len(in_scope),
        "accuracy": sum(right.values()) / len(in_scope) if in_scope else None,
        "recall": {i: right[i] / n for i, n in sorted(support.items())},
        "support": dict(sorted(support.items())),
        "oos_examples": len(oos),
        "oos_refused": sum(p.unknown for p in oos) / len(oos) if oos else None,
    }


def compare(candidate: Classifier, serving: Classifier | None, examples: Sequence[Example], oos_label: str,
            settings: RetrainSettings) -> dict:
    """The full comparison and the decision, as stored with the candidate (gate.json)."""
    texts = [e.text for e in examples]
    cand_pred = predict(candidate, texts)
    cand = score(cand_pred, examples, oos_label)
    result = {"candidate": cand, "examples": len(examples), "promote": True, "reasons": [],
              "compared": f"compared on {cand['examples']} in-scope and {cand['oos_examples']} out-of-scope examples"}
    if serving is None:
        result["reasons"].append("no model is serving yet")
        return result
    serv_pred = predict(serving, texts)
    serv = score(serv_pred, examples, oos_label)
    result["serving"] = serv
    result["changed"] = changed(examples, serv_pred, cand_pred)
    reasons = result["reasons"]
    if cand["examples"] == 0:  # nothing to compare accuracy on: hold_unconfirmed decides from the traffic
        reasons.append("no in-scope gate examples the serving model was not trained on")
        return result
    drop = (serv["accuracy"] or 0) - (cand["accuracy"] or 0)
    if drop > settings.tolerance:
        reasons.append(f"accuracy {100 * cand['accuracy']:.1f} % is {100 * drop:.1f} points below the serving "
                       f"model's {100 * serv['accuracy']:.1f} % (tolerance {100 * settings.tolerance:.1f})")
    per_intent = []
    flips = turned(examples, serv_pred, cand_pred, oos_label)
    for intent, n in cand["support"].items():
        before, after = serv["recall"].get(intent, 0.0), cand["recall"][intent]
        lost, won = flips.get(intent, (0, 0))
        p = sign_test(lost, won)
        per_intent.append({"intent": intent, "support": n, "serving": before, "candidate": after,
                           "turned_wrong": lost, "turned_right": won, "p": round(p, 4)})
        if n >= settings.min_intent_support and before - after > settings.max_intent_drop \
                and p < settings.intent_drop_alpha:
            reasons.append(f"intent {intent} recall falls {100 * before:.0f} % -> {100 * after:.0f} % "
                           f"({n} examples, {lost} turned wrong and {won} right: p {p:.3f} of chance; at most "
                           f"{100 * settings.max_intent_drop:.0f} points allowed)")
    result["per_intent"] = per_intent
    if serv["oos_refused"] is not None and cand["oos_refused"] < serv["oos_refused"]:
        reasons.append(f"refuses {100 * cand['oos_refused']:.0f} % of out-of-scope messages, the serving model "
                       f"{100 * serv['oos_refused']:.0f} %")
    result["promote"] = not reasons
    if not reasons:
        reasons.append(f"accuracy {100 * cand['accuracy']:.1f} % vs {100 * serv['accuracy']:.1f} % serving; "
                       "no intent and no out-of-scope refusal worse than allowed")
    return result


def turned(examples: Sequence[Example], before: Sequence[Prediction], after: Sequence[Prediction],
           oos_label: str) -> dict[str, tuple[int, int]]:
    """Per in-scope intent: (gate examples right before and wrong after, wrong before and right after)."""
    out: dict[str, list[int]] = {}
    for e, b, a in zip(examples, before, after):
        if e.intent == oos_label:
            continue
        was, now = (not b.unknown and b.intent == e.intent), (not a.unknown and a.intent == e.intent)
        if was != now:
            out.setdefault(e.intent, [0, 0])[0 if was else 1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def sign_test(lost: int, won: int) -> float:
    """One-sided exact sign test: the chance of at least `lost` of the `lost + won` changed examples turning wrong
    if each change were a coin toss (1.0 when nothing changed)."""
    n = lost + won
    return sum(math.comb(n, k) for k in range(lost, n + 1)) / 2 ** n if n else 1.0


def changed(examples: Sequence[Example], before: Sequence[Prediction], after: Sequence[Prediction]) -> list[dict]:
    return [
        {"text": e.text, "label": e.intent, "serving": decided(b), "candidate": decided(a)}
        for e, b, a in zip(examples, before, after) if decided(b) != decided(a)
    ]


def shadow(candidate: Classifier, serving: Classifier | None, messages: Sequence[tuple[int, str]]) -> list[dict]:
    """Recent customer messages (turn id, text) that the candidate would decide differently."""
    if serving is None or not messages:
        return []
    texts = [text for _, text in messages]
    out = []
    for (turn_id, text), b, a in zip(messages, predict(serving, texts), predict(candidate, texts)):
        if decided(b) != decided(a):
            out.append({"turn_id": turn_id, "text": text, "serving": decided(b), "candidate": decided(a)})
    return out


def hold_unconfirmed(comparison: dict, confirmed: dict[int, str], minimum: int) -> None:
    """Below `minimum` in-scope gate examples, hold a candidate the gate would promote for a person's approval
    when it changes a confident answer of the serving model on logged traffic (`comparison["shadow"]`) that no
    reviewer confirmed (`confirmed`: turn id -> the decision a reviewer gave it), or with nothing at all to judge
    it on (no gate example, no traffic). Updates `comparison` in place: promote, held, unconfirmed (the changes a
    person must look at)."""
    if not comparison["promote"] or "serving" not in comparison or comparison["candidate"]["examples"] >= minimum:
        return
    shadow = comparison.get("shadow", [])
    unconfirmed = [s for s in shadow if s["serving"] != "unknown"
                   and not s["serving"].startswith("clarify:") and confirmed.get(s["turn_id"]) != s["candidate"]]
    n = comparison["candidate"]["examples"]
    if unconfirmed:
        why = (f"the candidate changes {_count(len(unconfirmed), 'answer')} the serving model gave confidently to logged "
               "customer messages, which no reviewer confirmed")
    elif n == 0 and not comparison.get("shadow_messages"):
        why = "there is no logged traffic to judge it on either"
    else:
        return
    comparison.update(promote=False, held=True, unconfirmed=unconfirmed)
    comparison["reasons"].insert(0, f"held for approval: the gate had {_count(n, 'in-scope example')}, too few to tell "
                                    f"(retrain.min_gate_examples {minimum}), and {why}")


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"
