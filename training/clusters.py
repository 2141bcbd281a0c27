"""Proposing new intents: unlabelled requests grouped by meaning, each group named by its distinctive words.

Sentence embeddings, average-linkage agglomerative clustering cut at a cosine distance (no cluster count
to guess; by default the cut with the best silhouette), groups smaller than `min_cluster_size` left alone. Names come from class-based
TF-IDF: words frequent in the group and rare in the others. A person accepts, renames, merges or drops
the proposals (`run_bot.py intents ...`); nothing is labelled until then.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from knowledge.embedder import Embedder
from training.store import ExampleStore, ProposalStore
from training.transcripts.settings import TranscriptSettings

STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
during each few for from further get got had hadn't has hasn't have haven't having he her here hers him his
how i i'd i'll i'm i've if in into is isn't it it's its just let's me more most mustn't my myself no nor not
now of off on once one only or other ought our ours out over own please same she should shouldn't so some
such than that that's the their theirs them then there there's these they they're this those through to too
under until up us very was wasn't we we're were weren't what what's when where where's which while who why
will with won't would wouldn't you you're your yours hi hello hey thanks thank thx pls plz im ive id dont cant
wont didnt doesnt isnt whats hasnt havent still yet want need like know tell help anyone someone really ok okay
""".split())
_TOKEN = re.compile(r"[a-z][a-z']+")
_PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")


@dataclass(frozen=True)
class Cluster:
    members: tuple[int, ...]  # indices into the clustered texts, most typical first
    name: str
    examples: tuple[str, ...]  # representative texts, most typical first
    cohesion: float  # mean cosine similarity of the members to their centroid


GRID = tuple(round(0.30 + 0.05 * i, 2) for i in range(10))  # cuts tried when the distance is chosen per run


def cluster_texts(texts: Sequence[str], vectors: np.ndarray, distance: float, min_size: int,
                  n_examples: int = 5, method: str = "average") -> tuple[list[Cluster], float]:
    """Groups of at least `min_size` similar texts, largest first, each with a suggested name; and the
    distance used. `distance` 0 picks, per run, the cut of the tree with the best silhouette in GRID.
    `method` is the linkage: "average" (groups whose mean distance is within the cut) or "complete" (every
    two members within it)."""
    if len(texts) < max(2, min_size):
        return [], distance
    from scipy.cluster.hierarchy import fcluster, linkage

    points = np.asarray(vectors, dtype=np.float64)
    points[np.linalg.norm(points, axis=1) == 0, 0] = 1.0  # a text with no features: cosine needs a direction
    tree = linkage(points, method=method, metric="cosine")
    if distance <= 0:
        distance = _best_cut(tree, points, min_size)
    labels = fcluster(tree, t=distance, criterion="distance") - 1
    groups = [np.flatnonzero(labels == k) for k in range(labels.max() + 1)]
    groups = sorted((g for g in groups if len(g) >= min_size), key=len, reverse=True)
    in_groups = {int(i) for g in groups for i in g}
    background = [t for i, t in enumerate(texts) if i not in in_groups]
    names = suggest_names([[texts[i] for i in g] for g in groups], background)
    clusters = []
    for group, name in zip(groups, names):
        centroid = vectors[group].mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        sims = vectors[group] @ centroid
        order = group[np.argsort(-sims, kind="stable")]
        examples = list(dict.fromkeys(texts[i] for i in order))[:n_examples]
        clusters.append(Cluster(tuple(int(i) for i in order), name, tuple(examples), float(sims.mean())))
    return clusters, distance


def _best_cut(tree: np.ndarray, vectors: np.ndarray, min_size: int) -> float:
    """The cut with the highest silhouette, texts outside groups of min_size counting as singletons.

    Scale-free: short, dense messages (BANKING77) get a tight cut, long and varied ones a looser one.
    """
    from scipy.cluster.hierarchy import fcluster
    from sklearn.metrics import silhouette_score

    best, best_score = GRID[0], -2.0
    for cut in GRID:
        labels = fcluster(tree, t=cut, criterion="distance")
        sizes = np.bincount(labels)
        small = sizes[labels] < min_size
        labels = np.where(small, labels.max() + 1 + np.arange(len(labels)), labels)
        if not (~small).any() or not 2 <= len(set(labels)) < len(labels):
            continue
        score = silhouette_score(vectors, labels, metric="cosine", sample_size=min(len(labels), 3000), random_state=0)
        if score > best_score:
            best, best_score = cut, score
    return best


def suggest_names(groups: Sequence[Sequence[str]], background: Sequence[str] = (), words: int = 2) -> list[str]:
    """A snake_case name per group from its most distinctive words (class-based TF-IDF), unique across groups."""
    docs = [_tokens(g) for g in groups] + [_tokens(background)]
    freq = Counter()
    for counts in docs:
        freq.update(counts)
    avg = sum(sum(c.values()) for c in docs) / max(1, len(docs))
    names, used = [], Counter()
    for counts in docs[:-1]:
        total = sum(counts.values()) or 1
        scored = sorted(counts, key=lambda w: (-(counts[w] / total) * math.log(1 + avg / freq[w]), w))
        chosen: list[str] = []
        for word in scored:  # "refund_refunded" says no more than "refund"
            if len(chosen) < words and not any(word[:5] == c[:5] for c in chosen):
                chosen.append(word)
        name = "_".join(chosen) or "new_intent"
        used[name] += 1
        names.append(name if used[name] == 1 else f"{name}_{used[name]}")
    return names


def _tokens(texts: Sequence[str]) -> Counter:
    """Word -> number of texts containing it (each text counts once, so one long message cannot name a group)."""
    counts = Counter()
    for text in texts:
        tokens = {t.removesuffix("'s").strip("'") for t in _TOKEN.findall(_PLACEHOLDER.sub(" ", text).lower())}
        counts.update(t for t in tokens if len(t) > 2 and t not in STOPWORDS)
    return counts


def propose(store: ExampleStore, embedder: Embedder, settings: TranscriptSettings) -> list[int]:
    """Cluster the store's unlabelled examples (not already dropped by a person) into open proposals,
    replacing the previous open ones; returns the new proposal ids."""
    proposals = ProposalStore(store.db)
    pool = store.unlabelled(exclude=proposals.dropped_members(), limit=settings.cluster_max)
    texts = [e.text for e in pool]
    clusters, _ = cluster_texts(texts, embedder.encode(texts), settings.cluster_distance, settings.min_cluster_size)
    with store.db.transaction():
        return proposals.replace_open(
            (c.name, [pool[i].id for i in c.members], c.examples) for c in clusters)
