"""Ranking: dense (FAISS) and keyword (FTS5 BM25) candidates fused, one hit per document, each scored
by the base's relevance calibration; and trimming a passage to the sentences that answer the query.

Hybrid fusion is a convex combination of the two scores, each divided by its maximum over the query's
candidates; the dense score of a passage takes its document's title vector in as the `Fusion` says (the
better of the two, a mix, or not at all). Which fusion a base uses is chosen by the base itself at sync
(knowledge/tuning.py); reciprocal rank fusion is one of the candidates."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from knowledge.chunker import split_sentences
from knowledge.relevance import FEATURES, Calibration, coverage
from knowledge.store import StoredChunk

MODES = ("auto", "hybrid", "rrf", "dense", "keyword")  # auto: the base's own choice
CONTINUES = re.compile(r"^(it|this|that|these|those|they|then|also|so|otherwise|however)\b", re.I)


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    doc_id: str
    title: str
    url: str
    heading: str
    text: str
    score: float  # calibrated relevance in 0..1
    rank_score: float  # the ranking's own score, which orders hits (not relevance: a lower one may score higher)
    parts: dict[str, float] = field(default_factory=dict)  # the relevance features it was scored from (FEATURES)


@dataclass(frozen=True)
class Candidate:
    """A fused candidate with the features relevance is computed from (relevance.FEATURES)."""

    chunk: StoredChunk
    cosine: float  # dense score: the passage's cosine, with its title's as the fusion says
    cover: float
    fused: float  # the ranking's score: fused (hybrid, rrf), dense or BM25 as the fusion's mode says
    cosine_lead: float  # cosine minus the best other candidate document's (negative when one is closer)
    cover_lead: float  # the same for coverage

    @property
    def features(self) -> tuple[float, float, float, float]:
        return self.cosine, self.cover, self.cosine_lead, self.cover_lead


def fuse(rankings: Sequence[Sequence[int]], k0: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: sum over rankings of 1 / (k0 + rank), rank from 1; best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, 1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k0 + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class Fusion:
    """How one base ranks: the mode, the keyword weight (hybrid), and how title vectors join the dense score."""

    mode: str = "hybrid"  # hybrid | rrf | dense | keyword
    keyword_weight: float = 0.5
    titles: str = "mix"  # max | mix | off

    def describe(self) -> str:
        how = f"hybrid, keyword_weight {self.keyword_weight:g}" if self.mode == "hybrid" else self.mode
        return how if self.mode == "keyword" else f"{how}, titles {self.titles}"

    def to_dict(self) -> dict:
        return {"mode": self.mode, "keyword_weight": self.keyword_weight, "titles": self.titles}


def dense_score(cosine: float, title: float | None, titles: str) -> float:
    """A passage's dense score with its document's title cosine: the better of the two, the passage plus half
    the title, or the passage alone. A document without a title vector scores by its passage."""
    if title is None or titles == "off":
        return cosine
    if titles == "max":
        return max(cosine, title)
    return (cosine + 0.5 * title) / 1.5


def rank(fusion: Fusion, dense: Sequence[int], keyword: dict[int, float], rows: dict[int, StoredChunk],
         query_vector: np.ndarray, title_cos: dict[str, float], rrf_k: int) -> list[tuple[int, float]]:
    """Chunk ids with their fused score, best first. `dense` holds FAISS's candidates (and the chunks of
    documents found by title); `keyword` maps id -> BM25; `title_cos` maps document id -> title cosine."""
    mode = fusion.mode
    if mode == "keyword":
        return sorted(keyword.items(), key=lambda item: (-item[1], item[0]))
    ids = [i for i in dict.fromkeys([*dense, *keyword]) if i in rows] if mode == "hybrid" else \
        [i for i in dict.fromkeys(dense) if i in rows]
    if not ids:
        return []
    dense_scores = {i: dense_score(cosine_of(rows[i], query_vector), title_cos.get(rows[i].doc_id), fusion.titles)
                    for i in ids}
    if mode == "dense":
        return sorted(dense_scores.items(), key=lambda item: (-item[1], item[0]))
    if mode == "rrf":
        by_dense = sorted(dense_scores, key=lambda i: (-dense_scores[i], i))
        return fuse([r for r in (by_dense, sorted(keyword, key=lambda i: -keyword[i])) if r], rrf_k)
    cos = np.array([dense_scores[i] for i in ids])
    bm25 = np.array([keyword.get(i, 0.0) for i in ids])
    # Both over their maximum (floor 0): min-max would blow tiny cosine differences up to the full range,
    # and let near-identical passages outvote a decisive keyword match (a product code).
    cos_n = np.maximum(cos, 0.0) / cos.max() if cos.max() > 0 else np.zeros_like(cos)
    bm25_n = bm25 / bm25.max() if bm25.max() > 0 else bm25
    w = fusion.keyword_weight
    fused = (1 - w) * cos_n + w * bm25_n
    return sorted(zip(ids, fused.tolist()), key=lambda item: (-item[1], item[0]))


def cosine_of(chunk: StoredChunk, query_vector: np.ndarray) -> float:
    return float(chunk.vector @ query_vector) if len(chunk.vector) == len(query_vector) else 0.0


def candidates(order: Sequence[tuple[int, float]], rows: dict[int, StoredChunk], query_vector: np.ndarray,
               query_terms: Sequence[str], title_cos: dict[str, float], titles: str,
               untitled: frozenset[str] = frozenset()) -> list[Candidate]:
    """The best chunk of each document, in fused order, with its dense score and query-word coverage, and how
    far each is above the best other document's. Documents in `untitled` are covered as if they had no title
    (a title asked as a question, held out from its own words)."""
    best, docs = [], set()
    for chunk_id, fused in order:
        chunk = rows.get(chunk_id)
        if chunk is None or chunk.doc_id in docs:  # deleted since the index was loaded, or a second chunk
            continue
        docs.add(chunk.doc_id)
        best.append((chunk, fused))
    cosines = [dense_score(cosine_of(c, query_vector), title_cos.get(c.doc_id), titles) for c, _ in best]
    covers = [coverage(query_terms, f"{'' if c.doc_id in untitled else c.title}\n{c.heading}\n{c.text}")
              for c, _ in best]
    return [Candidate(chunk, cos, cover, fused, cos_lead, cover_lead)
            for (chunk, fused), cos, cover, cos_lead, cover_lead in zip(best, cosines, covers, leads(cosines), leads(covers))]


def leads(values: Sequence[float]) -> list[float]:
    """Each value minus the largest of the others (0 when there are none)."""
    if len(values) < 2:
        return [0.0] * len(values)
    top = int(np.argmax(values))
    first, second = values[top], max(v for i, v in enumerate(values) if i != top)
    return [v - (second if i == top else first) for i, v in enumerate(values)]


def to_hit(c: Candidate, calibration: Calibration, link: Callable[[str, str], str]) -> Hit:
    ch = c.chunk
    return Hit(ch.id, ch.doc_id, ch.title, link(ch.doc_id, ch.url), ch.heading, ch.text,
               calibration.score(c.features), c.fused, dict(zip(FEATURES, (round(x, 4) for x in c.features))))


def trim(text: str, query_vector: np.ndarray, query_terms: Sequence[str],
         encode: Callable[[list[str]], np.ndarray], max_sentences: int) -> str:
    """The run of sentences of `text` that best answers the query, at most `max_sentences` long.

    Starts at the sentence most similar to the query (cosine plus a quarter of its query-word coverage), takes
    the sentence before when this one leans on it, and follows on while sentences stay relevant.
    """
    sentences = split_sentences(text)
    if len(sentences) <= max_sentences:
        return text
    vectors = encode(sentences)
    scores = vectors @ query_vector + 0.25 * np.array([coverage(query_terms, s) for s in sentences])
    best = int(np.argmax(scores))
    start = best
    if best > 0 and (CONTINUES.match(sentences[best]) or sentences[best - 1].endswith(":")):
        start = best - 1
    end = best + 1
    while end < len(sentences) and end - start < max_sentences:
        introduced = sentences[end].startswith("- ") and any(s.endswith(":") for s in sentences[start:end])
        if not (introduced or scores[end] >= 0.6 * scores[best] or CONTINUES.match(sentences[end])):
            break
        end += 1
    out = sentences[start]
    for s in sentences[start + 1:end]:
        out += ("\n" if s.startswith("- ") else " ") + s
    if out.startswith("- ") and "\n- " not in out:  # one item of a list: a sentence, not a one-item list
        out = out[2:]
    return out
