"""Ranking: dense (FAISS) and keyword (FTS5 BM25) candidates fused, one hit per document, each scored
by the base's relevance calibration; and trimming a passage to the sentences that answer the query.

Hybrid fusion is a convex combination of the two scores, each divided by its maximum over the query's
candidates; reciprocal rank fusion is kept as a mode for comparison: on the demo
store it did not beat keyword search alone on recall@1, the convex combination does (BENCHMARKS.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from knowledge.chunker import split_sentences
from knowledge.relevance import Calibration, coverage
from knowledge.store import StoredChunk

MODES = ("hybrid", "rrf", "dense", "keyword")
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


@dataclass(frozen=True)
class Candidate:
    """A fused candidate with the two features relevance is computed from."""

    chunk: StoredChunk
    cosine: float
    cover: float
    fused: float


def fuse(rankings: Sequence[Sequence[int]], k0: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: sum over rankings of 1 / (k0 + rank), rank from 1; best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, 1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k0 + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def rank(mode: str, dense: Sequence[int], keyword: dict[int, float], rows: dict[int, StoredChunk],
         query_vector: np.ndarray, keyword_weight: float, rrf_k: int) -> list[tuple[int, float]]:
    """Chunk ids with their fused score, best first. `dense` is FAISS's order; `keyword` maps id -> BM25."""
    if mode == "dense":
        return [(i, 0.0) for i in dense]
    if mode == "keyword":
        return sorted(keyword.items(), key=lambda item: (-item[1], item[0]))
    if mode == "rrf":
        return fuse([r for r in (dense, sorted(keyword, key=lambda i: -keyword[i])) if r], rrf_k)
    ids = [i for i in dict.fromkeys([*dense, *keyword]) if i in rows]
    if not ids:
        return []
    cos = np.array([float(rows[i].vector @ query_vector) if len(rows[i].vector) == len(query_vector) else 0.0
                    for i in ids])
    bm25 = np.array([keyword.get(i, 0.0) for i in ids])
    # Both over their maximum (floor 0): min-max would blow tiny cosine differences up to the full range,
    # and let near-identical passages outvote a decisive keyword match (a product code).
    cos_n = np.maximum(cos, 0.0) / cos.max() if cos.max() > 0 else np.zeros_like(cos)
    bm25_n = bm25 / bm25.max() if bm25.max() > 0 else bm25
    fused = (1 - keyword_weight) * cos_n + keyword_weight * bm25_n
    return sorted(zip(ids, fused.tolist()), key=lambda item: (-item[1], item[0]))


def candidates(order: Sequence[tuple[int, float]], rows: dict[int, StoredChunk], query_vector: np.ndarray,
               query_terms: Sequence[str]) -> list[Candidate]:
    """The best chunk of each document, in fused order, with its cosine and query-word coverage."""
    out, docs = [], set()
    for chunk_id, fused in order:
        chunk = rows.get(chunk_id)
        if chunk is None or chunk.doc_id in docs:  # deleted since the index was loaded, or a second chunk
            continue
        docs.add(chunk.doc_id)
        cosine = float(chunk.vector @ query_vector) if len(chunk.vector) == len(query_vector) else 0.0
        cover = coverage(query_terms, f"{chunk.title}\n{chunk.heading}\n{chunk.text}")
        out.append(Candidate(chunk, cosine, cover, fused))
    return out


def to_hit(c: Candidate, calibration: Calibration, link: Callable[[str, str], str]) -> Hit:
    ch = c.chunk
    return Hit(ch.id, ch.doc_id, ch.title, link(ch.doc_id, ch.url), ch.heading, ch.text,
               calibration.score(c.cosine, c.cover))


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
