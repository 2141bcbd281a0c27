"""What the bot could not answer: unanswered messages clustered by meaning, each cluster with a verdict.

Reuses training/clusters.py (names from class-based TF-IDF) with complete linkage at a fixed cut
(review.cluster_distance): every two messages of a cluster are that close, so a chain of loosely related
messages never becomes one cluster. Verdicts, in order: *out of scope* when most of its messages were marked so;
when the cluster's centroid is close to an intent's examples (review.intent_similarity), *an existing intent
missed these* if most of its messages are nearest that same intent, else *mixed*; *the knowledge base lacks an
article* when most of them are questions; else *a new intent is needed*, with the suggested name.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bot.analytics.figures import day_of, week_of
from bot.folder.bot_folder import BotFolder, load_intents
from training.clusters import cluster_texts

VERDICTS = {
    "existing_intent": "an existing intent missed these",
    "new_intent": "a new intent is needed",
    "kb_missing": "the knowledge base lacks an article",
    "out_of_scope": "out of scope",
    "mixed": "mixed: review one by one",
}
QUESTION = re.compile(r"^(how|what|when|where|which|who|why|can|could|do|does|is|are|will|would|should)\b|\?\s*$", re.I)
WEEK = 7 * 24 * 3600
GROWTH_WEEKS = 4  # weeks of cluster growth on the analytics page and in the report
GROWTH_SINCE = (GROWTH_WEEKS + 1) * WEEK  # the messages they need: those weeks and the one before

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass
class Finding:
    id: int
    name: str  # suggested intent name
    size: int  # messages (a group of near-identical ones counts each time it was sent)
    examples: list[str]
    members: list[dict[str, Any]]  # group_id, turn_id, text
    verdict: str
    intent: str = ""  # the nearest intent
    similarity: float = 0.0
    trend: dict[str, int] = field(default_factory=dict)  # messages this week and the week before
    cohesion: float = 0.0

    @property
    def verdict_text(self) -> str:
        return VERDICTS[self.verdict]


class HashingEmbedder:
    """Word counts hashed into a fixed vector: a model-free stand-in when no sentence
    embedder is loaded (and in tests)."""

    def __init__(self, dim: int = 512):
        self.dim = dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z']+", text.lower())
            for token in words:
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "big")
                out[i, h % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out


def find(messages: Sequence[Mapping[str, Any]], encode: Encode, intents: Mapping[str, Sequence[str]], *,
         min_size: int, similarity: float, distance: float, now: float | None = None) -> list[Finding]:
    """Cluster the messages (dicts with group_id, turn_id, text, size, decision, last_seen), every two members of a
    cluster within `distance` (cosine), and judge each cluster."""
    if len(messages) < max(2, min_size):
        return []
    now = now or time.time()
    texts = [m["text"] for m in messages]
    vectors = _unit(encode(texts))
    # each group counts once for the shape of clusters, but its size counts for the cluster's size
    clusters, _ = cluster_texts(texts, vectors, distance, min_size, method="complete")
    names, centroids = _intent_centroids(intents, encode)
    findings = []
    for n, c in enumerate(clusters, start=1):
        members = [messages[i] for i in c.members]
        centroid = _unit(vectors[list(c.members)].mean(axis=0, keepdims=True))[0]
        best, sim, backing = "", 0.0, 0.0
        if len(names):
            sims = centroids @ centroid
            k = int(np.argmax(sims))
            best, sim = names[k], float(sims[k])
            # the share of its messages whose own nearest intent is that one
            backing = float(np.mean(np.argmax(vectors[list(c.members)] @ centroids.T, axis=1) == k))
        oos = sum(m.get("decision") == "out_of_scope" for m in members) / len(members)
        questions = sum(bool(QUESTION.search(m["text"].strip())) for m in members) / len(members)
        if oos >= 0.5:
            verdict = "out_of_scope"
        elif sim >= similarity:
            verdict = "existing_intent" if backing > 0.5 else "mixed"
        elif questions >= 0.5:
            verdict = "kb_missing"
        else:
            verdict = "new_intent"
        trend = {"this_week": sum(m.get("size", 1) for m in members if m.get("last_seen", now) >= now - WEEK),
                 "week_before": sum(m.get("size", 1) for m in members if now - 2 * WEEK <= m.get("last_seen", now) < now - WEEK)}
        findings.append(Finding(
            id=n, name=c.name, size=sum(m.get("size", 1) for m in members), examples=list(c.examples),
            members=[{"group_id": m["group_id"], "turn_id": m["turn_id"], "text": m["text"], "size": m.get("size", 1),
                      "last_seen": m.get("last_seen", now)} for m in members],
            verdict=verdict, intent=best, similarity=round(sim, 3), trend=trend, cohesion=round(c.cohesion, 3)))
    return findings


_CENTROIDS: dict[tuple[int, str], tuple[list[str], np.ndarray]] = {}  # (encoder, hash of the examples) -> centroids


def _intent_centroids(intents: Mapping[str, Sequence[str]], encode: Encode) -> tuple[list[str], np.ndarray]:
    """Each intent's mean example vector; cached while intents.yaml's examples stay the same."""
    names = [n for n, ex in intents.items() if ex]
    if not names:
        return [], np.zeros((0, 1))
    key = (id(getattr(encode, "__self__", encode)),
           hashlib.sha256(repr([(n, list(intents[n])) for n in names]).encode()).hexdigest())
    if key in _CENTROIDS:
        return _CENTROIDS[key]
    if len(_CENTROIDS) > 8:
        _CENTROIDS.clear()
    _CENTROIDS[key] = _compute_centroids(names, intents, encode)
    return _CENTROIDS[key]


def _compute_centroids(names: list[str], intents: Mapping[str, Sequence[str]], encode: Encode):
    texts = [t for n in names for t in intents[n]]
    vectors = _unit(encode(texts))
    rows, start = [], 0
    for n in names:
        k = len(intents[n])
        rows.append(vectors[start:start + k].mean(axis=0))
        start += k
    return names, _unit(np.stack(rows))


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return v / norms


def growing(findings: Sequence[Finding], now: float, weeks: int = 4, limit: int = 5) -> list[dict[str, Any]]:
    """Per ISO week (the `weeks` up to `now`'s, newest first), the clusters that grew most against the week before:
    messages this week and the week before, growth = the difference; only clusters that grew, `limit` a week.
    A group of identical messages counts in the week it was last sent."""
    def week(t: float) -> str:
        return week_of(day_of(t))

    wanted = [week(now - i * WEEK) for i in range(weeks)]
    rows = []
    for w, before in zip(wanted, [week(now - (i + 1) * WEEK) for i in range(weeks)]):
        grew = []
        for f in findings:
            counts = {w: 0, before: 0}
            for m in f.members:
                if week(m["last_seen"]) in counts:
                    counts[week(m["last_seen"])] += m["size"]
            if counts[w] > counts[before]:
                grew.append({"week": w, "cluster": f.name, "verdict": f.verdict_text, "this_week": counts[w],
                             "week_before": counts[before], "growth": counts[w] - counts[before],
                             "group_id": f.members[0]["group_id"]})
        rows += sorted(grew, key=lambda r: (-r["growth"], -r["this_week"], r["cluster"]))[:limit]
    return rows


def growing_clusters(messages: Sequence[Mapping[str, Any]], encode: Encode, examples: Mapping[str, Sequence[str]],
                     settings, now: float | None = None) -> list[dict[str, Any]]:
    """`growing` over unanswered messages (`reviews.unanswered(now - GROWTH_SINCE, review.cluster_max)`), clustered
    as on the review workspace's 'could not answer' page (`settings`: the review section)."""
    now = time.time() if now is None else now
    findings = find(messages, encode, examples, min_size=settings.cluster_min_size,
                    similarity=settings.intent_similarity, distance=settings.cluster_distance, now=now)
    return growing(findings, now, GROWTH_WEEKS)


def intent_examples(intents: Mapping[str, Any], smalltalk: Sequence[str]) -> dict[str, list[str]]:
    """The examples a cluster is compared with: every intent's but small talk's."""
    return {n: list(i.examples) for n, i in intents.items() if n not in smalltalk}


def cluster_examples(folder: BotFolder, smalltalk: Sequence[str]) -> dict[str, list[str]]:
    """`intent_examples` of the bot folder's intents.yaml as it is now."""
    intents, _ = load_intents(folder.path / "intents.yaml")
    return intent_examples(intents, smalltalk)


def encoder(knowledge: Any) -> Encode:
    """The knowledge base's embedder when it has one (clusters by meaning), else the hashing stand-in."""
    embedder = getattr(knowledge, "embedder", None)
    if embedder is not None and hasattr(embedder, "encode"):
        return embedder.encode
    return HashingEmbedder().encode
