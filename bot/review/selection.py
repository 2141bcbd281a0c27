"""What to review next: spend a reviewer's time where it changes the model most, not on the first messages that
happen to be flagged.

`choose` orders candidate messages (unit vectors, how unsure the bot was of each, how many messages each stands
for) for review:

1. Near-identical messages (cosine >= `SAME`) are one item: the most uncertain of them stands for the group.
2. Candidates for an intent the bot does not have come first: a tight cluster (at least `MIN_CLUSTER` messages as
   close to each other as three in four labelled examples are to their nearest same-intent example) whose
   messages are farther from every labelled example than half the labelled examples are from the nearest example
   of another intent. One message per cluster, at most a quarter of the budget, densest cluster first.
3. Then uncertainty with diversity (weighted k-centre): each next pick is the message with the highest
   uncertainty x (1 - its similarity to the closest message already picked) x (1 + log of how many it stands
   for), so a round's reviews do not all go to one confusing pair of intents.

The cut-offs of step 2 are quantiles of the labelled examples' own similarities, so they follow the embedder and
the bot; the two quantiles were chosen by looking at which BANKING77 *training* messages they flag in
benchmarks/bench_loop.py's first round (never its test set). `SAME` is the one fixed similarity. Uncertainty is
the caller's: 1 - (top probability - second) for a model's prediction (`uncertainty`); the review queue, which
keeps only the top probability of a logged turn, uses 1 - that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

SAME = 0.9  # cosine of near-identical messages ("card not arrived" / "my card has not arrived")
MIN_CLUSTER = 3  # messages that make an unseen-intent candidate
UNSEEN_SHARE = 0.25  # of the budget at most for unseen-intent candidates
TIGHT_QUANTILE = 0.25  # of labelled examples' similarity to their nearest same-intent example
FAR_QUANTILE = 0.5  # of labelled examples' similarity to their nearest example of another intent
CHUNK = 2048  # rows of the similarity matrix at a time
SUGGEST_FROM = 2000  # the review queue's suggested order ranks the newest this many groups of the selection
SUGGEST_PICKS = 300  # ranked by `choose`; the other candidates follow, newest first
KNOWN_PER_INTENT = 20  # labelled examples per intent that stand for what the bot knows


@dataclass(frozen=True)
class Pick:
    index: int  # into the candidates
    reason: str  # "unseen" (a tight cluster far from every intent) or "uncertain"
    group: tuple[int, ...]  # the near-identical candidates it stands for (itself included)


def uncertainty(top: Sequence[tuple[str, float]]) -> float:
    """1 - (top probability - second): 1 when the bot could not tell, 0 when it was sure."""
    p1 = top[0][1] if top else 0.0
    p2 = top[1][1] if len(top) > 1 else 0.0
    return float(min(1.0, max(0.0, 1.0 - (p1 - p2))))


def choose(vectors: np.ndarray, unsure: Sequence[float], budget: int, known: np.ndarray | None = None,
           known_labels: Sequence[str] | None = None, sizes: Sequence[int] | None = None) -> list[Pick]:
    """Up to `budget` candidates in review order. `vectors`: unit vectors of the candidates; `unsure`: their
    uncertainty in [0, 1]; `known`/`known_labels`: unit vectors and intents of labelled examples (the unseen
    step needs them); `sizes`: how many messages each candidate already stands for (1 each by default)."""
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    if n == 0 or budget <= 0:
        return []
    unsure = np.asarray(unsure, np.float64)
    sizes = np.ones(n) if sizes is None else np.asarray(sizes, np.float64)
    leaders, groups = _groups(vectors, unsure)
    weight = np.array([sizes[list(groups[i])].sum() for i in leaders])
    reps = vectors[leaders]
    picks: list[Pick] = []
    taken = np.zeros(len(leaders), bool)
    for r in _unseen(reps, weight, known, known_labels, int(np.ceil(budget * UNSEEN_SHARE))):
        picks.append(Pick(leaders[r], "unseen", groups[leaders[r]]))
        taken[r] = True
    closest = np.zeros(len(leaders))
    for r in np.flatnonzero(taken):
        np.maximum(closest, reps @ reps[r], out=closest)
    value = unsure[leaders] * (1.0 + np.log(weight))
    while len(picks) < min(budget, len(leaders)):
        score = np.where(taken, -np.inf, value * (1.0 - np.clip(closest, 0.0, 1.0)) + 1e-9 * value)
        r = int(np.argmax(score))
        picks.append(Pick(leaders[r], "uncertain", groups[leaders[r]]))
        taken[r] = True
        np.maximum(closest, reps @ reps[r], out=closest)
    return picks


@dataclass(frozen=True)
class Suggestion:
    order: list[int]  # group ids in review order
    unseen: frozenset[int]  # the groups picked as candidates for an intent the bot does not have


def suggest(candidates: Sequence[dict[str, Any]], embed: Callable[[list[str]], np.ndarray],
            known: Sequence[Any]) -> Suggestion:
    """The review queue's suggested order: the ids of `candidates` (ReviewStore.candidates: id, text, size, the
    last turn's confidence; newest first), `choose`'s picks first, each followed by the near-identical groups it
    stands for, then the rest newest first. `embed`: unit vectors of texts; `known`: labelled examples."""
    if not candidates:
        return Suggestion([], frozenset())
    vectors = embed([c["text"] for c in candidates] + [e.text for e in known])
    unsure = [1.0 if c["confidence"] is None else min(1.0, max(0.0, 1.0 - c["confidence"])) for c in candidates]
    picks = choose(vectors[:len(candidates)], unsure, SUGGEST_PICKS, vectors[len(candidates):],
                   [e.intent for e in known], [c["size"] for c in candidates])
    ranked = [i for p in picks for i in p.group]
    rest = sorted(set(range(len(candidates))) - set(ranked))
    return Suggestion([candidates[i]["id"] for i in ranked + rest],
                      frozenset(candidates[p.index]["id"] for p in picks if p.reason == "unseen"))


def _groups(vectors: np.ndarray, unsure: np.ndarray) -> tuple[list[int], dict[int, tuple[int, ...]]]:
    """Near-identical groups: each candidate joins the most uncertain candidate within SAME of it (ties: the
    earlier); the leaders stand for their groups, in order of uncertainty."""
    order = np.lexsort((np.arange(len(unsure)), -unsure))
    rank = np.empty(len(order), int)
    rank[order] = np.arange(len(order))
    leader = np.empty(len(vectors), int)
    for start in range(0, len(vectors), CHUNK):
        sims = vectors[start:start + CHUNK] @ vectors.T
        ranks = np.where(sims >= SAME, rank[None, :], len(vectors))
        leader[start:start + CHUNK] = order[ranks.min(axis=1)]
    for i in order:  # a chain (a's leader has its own leader) ends at the group's most uncertain message
        leader[i] = leader[leader[i]]
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(int(leader[i]), []).append(int(i))
    return list(groups), {k: tuple(v) for k, v in groups.items()}


def _unseen(reps: np.ndarray, weight: np.ndarray, known: np.ndarray | None, labels: Sequence[str] | None,
            limit: int) -> list[int]:
    """Leaders of tight clusters far from every labelled example, densest first, one per cluster."""
    if limit <= 0 or known is None or labels is None or len(known) < 2:
        return []
    known = np.asarray(known, np.float32)
    labels = np.asarray(labels, dtype=object)
    tight, far = _cutoffs(known, labels)
    nearest_known = np.concatenate([(reps[s:s + CHUNK] @ known.T).max(axis=1) for s in range(0, len(reps), CHUNK)])
    novel = np.flatnonzero(nearest_known < far)
    close = reps[novel] @ reps[novel].T >= tight
    density = close.astype(np.float64) @ weight[novel]
    out: list[int] = []
    covered = np.zeros(len(novel), bool)
    for k in np.lexsort((nearest_known[novel], -density)):
        if len(out) >= limit or density[k] < MIN_CLUSTER:
            break
        if covered[k]:
            continue
        out.append(int(novel[k]))
        covered |= close[k]
    return out


def _cutoffs(known: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(tight, far): quantiles of labelled examples' similarity to their nearest same-intent example
    (TIGHT_QUANTILE) and to their nearest example of another intent (FAR_QUANTILE)."""
    same, other = [], []
    for s in range(0, len(known), CHUNK):
        sims = known[s:s + CHUNK] @ known.T
        rows = np.arange(len(sims))
        sims[rows, s + rows] = -np.inf
        mine = labels[None, :] == labels[s:s + CHUNK, None]
        same.append(np.where(mine, sims, -np.inf).max(axis=1))
        other.append(np.where(mine, -np.inf, sims).max(axis=1))
    same_, other_ = np.concatenate(same), np.concatenate(other)
    same_ = same_[np.isfinite(same_)]
    other_ = other_[np.isfinite(other_)]
    tight = float(np.quantile(same_, TIGHT_QUANTILE)) if len(same_) else SAME
    far = float(np.quantile(other_, FAR_QUANTILE)) if len(other_) else -1.0
    return tight, far
