"""A base tunes its own search: questions it makes from itself, and the fusion that answers them best.

The questions are each document's title (an FAQ row's question), each section's heading path, and any
(question, document) pairs the caller knows are right, such as knowledge answers reviewers confirmed. Each
is held out from what it was made of, so a passage never answers its own title: a title is searched with
no document's title (neither title vectors nor the FTS title column), a heading with its own section's
passages removed. The fusion with the best MRR@10 on them is kept, but it replaces the default (hybrid,
keyword weight 0.5, titles mixed in) only when it beats the default by more than `PRIOR`: such questions are
harder than customers' and lean differently (on the demo store dense won them by 0.04 MRR while the default
wins its labelled customer questions by 0.03, BENCHMARKS.md). Near-ties go to the fusion closest to the default.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from knowledge.search import Candidate, Fusion, candidates, rank
from knowledge.store import StoredChunk, StoredDocument

WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TITLE_MODES = ("mix", "max", "off")
DEFAULT = Fusion("hybrid", 0.5, "mix")
TIE = 0.002  # MRR differences below this are noise: the fusion nearer the default wins
PRIOR = 0.05  # MRR@10 by which a fusion must beat the default on the base's own questions to replace it
HEADING_SHARE = 0.5  # at most this share of the questions are headings (long manuals have many)


@dataclass(frozen=True)
class Question:
    text: str
    doc_id: str  # the document that answers it
    kind: str  # title | heading | confirmed
    exclude: frozenset[int] = frozenset()  # chunks held out (a heading's own section)


@dataclass
class Pool:
    """One query's candidates, rankable under any fusion without searching again."""

    rows: dict[int, StoredChunk]
    dense: list[int]
    keyword: dict[int, float]
    title_cos: dict[str, float]
    terms: list[str]
    query_vector: np.ndarray
    untitled: frozenset[str] = frozenset()  # documents searched as if they had no title (a title asked)

    def rank(self, fusion: Fusion, rrf_k: int) -> list[Candidate]:
        order = rank(fusion, self.dense, self.keyword, self.rows, self.query_vector, self.title_cos, rrf_k)
        return candidates(order, self.rows, self.query_vector, self.terms, self.title_cos, fusion.titles,
                          self.untitled)

    def best(self, fusion: Fusion, rrf_k: int) -> Candidate | None:
        """The top candidate under this fusion, or None when nothing was found."""
        return next(iter(self.rank(fusion, rrf_k)), None)


def own_questions(docs: Sequence[StoredDocument], sections: Sequence[tuple[str, str, list[int]]],
                  confirmed: Sequence[tuple[str, str]], limit: int) -> list[Question]:
    """Titles, headings and confirmed questions, sampled evenly to at most `limit` (confirmed ones kept first)."""
    out = [Question(q, d, "confirmed") for q, d in dict.fromkeys((" ".join(q.split()), d) for q, d in confirmed) if q]
    titles = [Question(d.title, d.id, "title") for d in docs if d.title.strip()]
    chunks_of = {d.id: d.chunks for d in docs}
    headings = []
    for doc_id, heading, ids in sections:
        last = heading.split(" > ")[-1].strip()
        # a heading is a question only where something else of its document is left to answer it
        if last and len(ids) < chunks_of.get(doc_id, 0) and len(last.split()) >= 2:
            headings.append(Question(last, doc_id, "heading", frozenset(ids)))
    room = max(0, limit - len(out))
    headings = sample(headings, min(len(headings), int(room * HEADING_SHARE), max(0, room - len(titles))))
    titles = sample(titles, room - len(headings))
    return (out + titles + headings)[:limit]


def sample(items: list, n: int) -> list:
    if n <= 0:
        return []
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def copies(docs: Sequence[StoredDocument]) -> dict[str, frozenset[str]]:
    """Each document with the others of the same content (the same article synced from two places)."""
    same: dict[str, set[str]] = defaultdict(set)
    for d in docs:
        same[d.hash].add(d.id)
    return {d.id: frozenset(same[d.hash]) for d in docs}


def fusions(settings) -> list[Fusion]:
    """The fusions worth trying, within what the settings pin (knowledge.fusion, knowledge.title_signal)."""
    modes = ["dense", "keyword", "rrf", "hybrid"] if settings.fusion == "auto" else [settings.fusion]
    titles = TITLE_MODES if settings.title_signal == "auto" else (settings.title_signal,)
    out = []
    for mode in modes:
        weights = (WEIGHTS if settings.fusion == "auto" else (settings.keyword_weight,)) if mode == "hybrid" else (0.5,)
        for w in weights:
            for t in (titles if mode != "keyword" else titles[:1]):
                out.append(Fusion(mode, w, t))
    return out


def distance(f: Fusion) -> float:
    """How far a fusion is from the default, for breaking near-ties."""
    weight = {"hybrid": abs(f.keyword_weight - DEFAULT.keyword_weight), "rrf": 0.45, "dense": 0.5,
              "keyword": 0.5}[f.mode]
    return weight + (0 if f.titles == DEFAULT.titles else 0.01)


def choose(tried: Sequence[Fusion], pools: Sequence[Pool], expected: Sequence[frozenset[str]],
           rrf_k: int) -> tuple[Fusion, list[tuple[str, float, float]]]:
    """The fusion with the best MRR@10 on the pools, and (described, recall@1, MRR@10) of each tried."""
    scores = []
    for fusion in tried:
        ranks = [rank_of(p.rank(fusion, rrf_k), e) for p, e in zip(pools, expected)]
        n = max(1, len(ranks))
        scores.append((fusion, sum(r == 1 for r in ranks) / n, sum(1 / r for r in ranks if r) / n))
    best = max(mrr for _, _, mrr in scores) if scores else 0.0
    default = next((mrr for f, _, mrr in scores if f == DEFAULT), None)
    if default is not None and best - default <= PRIOR:
        return DEFAULT, [(f.describe(), round(r1, 4), round(mrr, 4)) for f, r1, mrr in scores]
    choice = min((f for f, _, mrr in scores if mrr >= best - TIE), key=distance, default=tried[0])
    return choice, [(f.describe(), round(r1, 4), round(mrr, 4)) for f, r1, mrr in scores]


def rank_of(found: Sequence[Candidate], expected: frozenset[str], k: int = 10) -> int | None:
    """1-based rank of the first hit from an expected document within the top k, or None."""
    return next((n for n, c in enumerate(found[:k], 1) if c.chunk.doc_id in expected), None)

