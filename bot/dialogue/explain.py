"""Why the bot answers a message as it does: the decision, the rule that made it, and every signal beside the
threshold it was compared with — for `run_bot.py explain "message"` and the review workspace's "try it" page.

`explain` runs the message through the bot's own router from a fresh conversation (nothing is logged), then
reads the same signals the router read: the intent model's probabilities, its out-of-scope score against the
answer threshold, the gap between the top two against the margin, and the knowledge base's candidates with the
parts of their scores (cosine, word coverage, and each one's lead over the next document) and their calibrated
relevance against the answer threshold.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from bot.dialogue import basics
from bot.dialogue.router import Conversation, Router


async def explain(router: Router, text: str, candidates: Callable[[str], Any] | None = None,
                  kb_threshold: float | None = None) -> dict[str, Any]:
    """The decision of `text` and its signals. `candidates(text)` (awaitable) gives the knowledge base's hits,
    best first; `kb_threshold` is the relevance an answer needs."""
    reply = await router.respond(text, Conversation("explain"))
    d = reply.decision
    p = await router.classify(basics.split(text).request or text)  # what the router classified
    model = router.model
    top = [(name, round(float(c), 4)) for name, c in p.top]
    gap = round(top[0][1] - top[1][1], 4) if len(top) > 1 else None
    hits = list(await candidates(text)) if candidates is not None else []
    return {
        "message": text,
        "reply": reply.answer,
        "route": d.route,
        "rule": d.reason,
        "intent": d.intent,
        "memory": d.memory,  # the reviewed message it matched (bot.review.memory), if any
        "flags": list(d.flags),
        "quick_replies": [q.label for q in reply.quick_replies],
        "model_version": d.model_version,
        "intent_model": {
            "top": top,
            "score": {"name": getattr(getattr(model, "score", None), "name", "max_prob"), "value": p.oos_score,
                      "threshold": getattr(model, "score_threshold", model.threshold), "answered": not p.unknown},
            "top_two_gap": {"value": gap, "margin": model.margin, "asks": bool(p.ambiguous) and not p.unknown},
            "pair_floor": model.threshold,
        },
        "knowledge": {
            "threshold": kb_threshold,
            "candidates": [{"title": h.title, "doc_id": h.doc_id, "heading": h.heading, "relevance": round(h.score, 4),
                            "rank_score": round(h.rank_score, 4), "parts": h.parts,
                            "confident": kb_threshold is not None and h.score >= kb_threshold} for h in hits],
        },
    }


def as_text(e: dict[str, Any]) -> str:
    """An explanation as lines a person reads in a terminal."""
    m, k = e["intent_model"], e["knowledge"]
    score, gap = m["score"], m["top_two_gap"]
    lines = [f"message: {e['message']}", f"decision: {e['route']}" + (f" ({e['intent']})" if e["intent"] else ""),
             f"rule: {e['rule']}", f"reply: {e['reply']}"]
    if e.get("memory"):
        lines.append(f"memory: reviewed message {e['memory']['text']!r} -> {e['memory']['outcome']} (similarity "
                     f"{e['memory']['similarity']:.3f} vs threshold {e['memory']['threshold']:.3f})")
    if e["quick_replies"]:
        lines.append(f"quick replies: {', '.join(e['quick_replies'])}")
    lines += ["", f"intent model {e['model_version']}: " + ", ".join(f"{n} {100 * c:.1f} %" for n, c in m["top"]),
              f"  out-of-scope score ({score['name']}) {_num(score['value'])} vs threshold {_num(score['threshold'])}: "
              + ("answered" if score["answered"] else "refused"),
              f"  top two gap {_num(gap['value'])} vs margin {_num(gap['margin'])}: "
              + ("asks which" if gap["asks"] else "no question")]
    lines += ["", "knowledge candidates" + (f" (answer at relevance >= {k['threshold']:.3f})" if k["threshold"]
                                            is not None else "") + ":"]
    lines += _candidate_lines(k["candidates"]) or ["  (none: no knowledge base, or it is empty)"]
    return "\n".join(lines)


def _candidate_lines(candidates: Sequence[dict]) -> list[str]:
    return [f"  {i}. {c['title'] or c['doc_id']}: relevance {c['relevance']:.3f}"
            + (" (confident)" if c["confident"] else "") + f", rank {c['rank_score']:.3f}; "
            + ", ".join(f"{name} {value:.3f}" for name, value in c["parts"].items())
            for i, c in enumerate(candidates, 1)]


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def explain_in_folder(folder, text: str) -> dict[str, Any]:
    """`explain` with the bot folder's serving model and knowledge base, loaded here (the command line's)."""
    import asyncio

    from bot.review.memory import memory_of
    from knowledge.base import KnowledgeBase
    from training.classifier import IntentClassifier
    from training.registry import ModelRegistry

    s = folder.settings
    path = ModelRegistry(s.models_path).current_path()
    if path is None:
        raise ValueError(f"no model serves bot {folder.path.name} yet: run_bot.py train --bot {folder.path}")
    model = IntentClassifier.load(path)
    kb = KnowledgeBase.open(s.database_location, s.index_path, s.knowledge)

    async def classify(message):
        return model.predict([message])[0]

    async def search(message):
        return kb.answer(message)

    async def candidates(message):
        return kb.search(message, 5)

    memory = memory_of(folder, kb) if s.review.memory else None  # the reviewed answers, as the server has them

    async def remember(message):
        return memory.match(kb.embed_queries([kb.correct(message)])[0]) if memory is not None else None

    router = Router(folder.intents, folder.entities, model, classify, search, s, remember=remember)
    try:
        return asyncio.run(explain(router, text, candidates, kb.threshold))
    finally:
        kb.close()
