"""The knowledge base: sync help articles in, search them (dense + keyword, fused), answer with a
short sourced passage. Thread-safe: database and index access share one lock; embedding runs outside it.

The FAISS index is derived state: the database holds every chunk's vector and a generation counter,
the index file records the generation it was built from, and any mismatch (a crash mid-ingest, a sync
by another process) is repaired from the stored vectors without re-embedding.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from knowledge.chunker import approximate_tokens
from knowledge.database import connect
from knowledge.documents import PARSER_VERSION
from knowledge.embedder import Embedder, SentenceEmbedder, resolve_model_path
from knowledge.index import FILE_NAME, VectorIndex
from knowledge.ingest import Ingester, IngestReport
from knowledge.relevance import OFF_TOPIC, Calibration, fit, terms
from knowledge.search import MODES, Candidate, Hit, candidates, rank, to_hit, trim
from knowledge.settings import KnowledgeSettings
from knowledge.store import KnowledgeStore, StoredDocument

__all__ = ["Answer", "Hit", "IngestReport", "KnowledgeBase", "KnowledgeStats"]

ALTERNATIVES = 4
CALIBRATION_QUERIES = 300
SENTENCE_CACHE = 20_000  # sentence vectors kept for trimming answers (~30 MB at 384 dimensions)


@dataclass(frozen=True)
class Answer:
    text: str  # best passage trimmed to the sentences answering the query (untrimmed if not confident); "" if none
    title: str
    url: str
    score: float
    confident: bool  # score above the relevance threshold
    alternatives: list[Hit]


@dataclass(frozen=True)
class KnowledgeStats:
    documents: int
    chunks: int
    generation: int
    index_kind: str  # "flat" (exact), "ivf" (approximate) or "empty"
    nprobe: int
    index_recall: float  # recall@10 against exact search measured when the index was built
    embedder: str
    threshold: float  # knowledge.min_relevance


class KnowledgeBase:
    def __init__(self, store: KnowledgeStore, index_dir: Path, settings: KnowledgeSettings,
                 embedder: Embedder | None = None):
        self.store, self.index_dir, self.settings = store, Path(index_dir), settings
        self._embedder = embedder
        self._lock = threading.RLock()
        self._embedder_lock = threading.Lock()
        self._encode_lock = threading.Lock()  # HF fast tokenizers fail ("Already borrowed") when shared by threads
        self._sentence_vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # LRU, under _encode_lock
        self._saved_generation = -1
        self.index: VectorIndex | None = None
        self.calibration: Calibration | None = None
        self._generation = -1

    @classmethod
    def open(cls, db_path: Path | None, index_path: Path, settings: KnowledgeSettings,
             embedder: Embedder | None = None) -> "KnowledgeBase":
        """Open (creating) the base; the index file is used when it matches the database, else rebuilt."""
        kb = cls(KnowledgeStore(connect(db_path)), index_path, settings, embedder)
        with kb._lock:
            index = VectorIndex.load(kb.index_dir)
            generation = kb.store.generation()
            if index is not None and index.generation == generation and np.array_equal(index.ids, kb.store.chunk_ids()):
                kb.index, kb._generation, kb._saved_generation = index, generation, generation
                kb._load_calibration()
            else:
                kb.index = index
                kb._update_index(save=True)
        return kb

    # -- ingest --

    def sync(self, paths: Sequence[Path], progress: bool = False) -> IngestReport:
        """Make the base match these files and folders: new and changed documents embedded, documents
        deleted from a synced folder (or rows deleted from a synced file) removed; others untouched."""
        return self._ingest(paths, remove_missing=True, progress=progress)

    def add(self, paths: Sequence[Path], progress: bool = False) -> IngestReport:
        """Like sync, but documents missing from the given folders are kept."""
        return self._ingest(paths, remove_missing=False, progress=progress)

    def _ingest(self, paths: Sequence[Path], remove_missing: bool, progress: bool) -> IngestReport:
        ingester = Ingester(
            self.store, self._lock, self._encode,
            count_tokens=lambda: self._count_tokens,
            max_tokens=lambda: min(self.settings.chunk_tokens, getattr(self.embedder, "max_tokens", 1 << 30)),
            build_key=self._build_key(), max_bytes=int(self.settings.max_file_mb * 1e6), progress=progress,
        )
        report = ingester.run(paths, remove_missing)
        self._after_write(report.changed)
        return report

    def remove(self, ids: Sequence[str]) -> int:
        """Remove documents by id; an id naming a FAQ/JSONL file removes all of its rows. Returns the count."""
        with self._lock:
            docs = self.store.documents()
            gone = []
            for doc_id in ids:
                found = [d for d in docs if d == doc_id or d.startswith(doc_id + "#")]
                if not found:
                    raise ValueError(f"no document with id {doc_id!r} (see `run_bot.py kb stats`)")
                gone += found
            if gone:
                self.store.write(remove=sorted(set(gone)))
        self._after_write(bool(gone))
        return len(set(gone))

    def _after_write(self, changed: bool) -> None:
        with self._lock:
            self._update_index(save=True)
            uncalibrated = self.calibration is None and self.store.counts()[0] > 0
        if changed or uncalibrated:
            self.calibrate()

    # -- search --

    def search(self, query: str, k: int = 5, tags: Sequence[str] = (), mode: str = "hybrid") -> list[Hit]:
        """Best chunk of each of the top-k documents, best first; `mode` is hybrid, rrf, dense or keyword."""
        return self._search(query, k, tags, mode)[0]

    def answer(self, query: str, tags: Sequence[str] = ()) -> Answer:
        """The best passage trimmed to the sentences answering the query, with its source and alternatives."""
        return self.answer_many([query], tags)[0]

    def answer_many(self, queries: Sequence[str], tags: Sequence[str] = ()) -> list[Answer]:
        """answer() for each query, the queries embedded in one batch (the server batches concurrent questions)."""
        queries = [" ".join(q.split()) for q in queries]
        distinct = [q for q in dict.fromkeys(queries) if q]
        vectors = dict(zip(distinct, self._encode(distinct))) if distinct else {}
        return [self._answer(q, tags, vectors.get(q)) for q in queries]

    def _answer(self, query: str, tags: Sequence[str], query_vector: np.ndarray | None) -> Answer:
        hits, query_vector = self._search(query, 1 + ALTERNATIVES, tags, "hybrid", query_vector)
        if not hits:
            return Answer("", "", "", 0.0, False, [])
        best = hits[0]
        confident = best.score >= self.settings.min_relevance
        text = best.text
        if confident:  # trimming embeds every sentence: not worth it for a passage that will not be shown
            text = trim(best.text, query_vector, terms(query), self._encode_sentences,
                        self.settings.answer_sentences)
        return Answer(text, best.title, best.url, best.score, confident, hits[1:])

    def _search(self, query: str, k: int, tags: Sequence[str], mode: str,
                query_vector: np.ndarray | None = None) -> tuple[list[Hit], np.ndarray]:
        if mode not in MODES:
            raise ValueError(f"search mode must be one of {MODES}, not {mode!r}")
        query = " ".join(query.split())
        with self._lock:
            empty = not self.store.counts()[1]
        if not query or k <= 0 or empty:
            return [], np.zeros(0, np.float32)
        if query_vector is None:
            query_vector = self._encode([query])[0]
        found = self._candidates(query, query_vector, max(k, self.settings.candidates), tags, mode)
        calibration = self.calibration or self.calibrate()
        return [to_hit(c, calibration, self._link) for c in found[:k]], query_vector

    def _candidates(self, query: str, query_vector: np.ndarray, n: int, tags: Sequence[str], mode: str) -> list[Candidate]:
        query_terms = terms(query)
        with self._lock:
            self._update_index(save=False)
            allowed = self.store.chunk_ids(tags) if tags else None
            if allowed is not None and not len(allowed):
                return []
            dense: list[int] = []
            if mode != "keyword" and self.index is not None and len(query_vector) == self.index.dim:
                _, ids = self.index.search(query_vector[None, :], n, allowed)
                dense = [int(i) for i in ids[0] if i >= 0]
            keyword = {} if mode == "dense" else dict(self.store.keyword(query_terms, n, tags))
            rows = self.store.chunks(list(dict.fromkeys([*dense, *keyword])))
        order = rank(mode, dense, keyword, rows, query_vector, self.settings.keyword_weight, self.settings.rrf_k)
        return candidates(order, rows, query_vector, query_terms)

    def calibrate(self) -> Calibration | None:
        """Fit relevance from the base itself: each (sampled) document's title against its own best chunk
        (positive) and the best chunk of any other document (negative), plus off-topic questions (negative)."""
        docs = self.documents()
        if not docs:
            self.calibration = None
            return None
        content = {d.id: d.hash for d in docs}
        sample = docs[:: max(1, len(docs) // CALIBRATION_QUERIES)][:CALIBRATION_QUERIES]
        vectors = self._encode([d.title for d in sample] + list(OFF_TOPIC))
        positives, negatives = [], []
        for doc, vector in zip(sample, vectors):
            found = self._candidates(doc.title, vector, 10, (), "hybrid")
            own = next((c for c in found if c.chunk.doc_id == doc.id), None)
            # another document, not a copy of this one (the same article synced from two places)
            other = next((c for c in found if content.get(c.chunk.doc_id) != doc.hash), None)
            positives += [(own.cosine, own.cover)] if own else []
            negatives += [(other.cosine, other.cover)] if other else []
        for question, vector in zip(OFF_TOPIC, vectors[len(sample):]):
            found = self._candidates(question, vector, 1, (), "hybrid")
            negatives += [(found[0].cosine, found[0].cover)] if found else []
        calibration = fit(np.array(positives).reshape(-1, 2), np.array(negatives).reshape(-1, 2))
        with self._lock:
            self.store.set_meta("calibration", calibration.to_json())
            self.calibration = calibration
        return calibration

    # -- state --

    def _update_index(self, save: bool) -> None:
        """Bring the in-memory index to the database's generation: add and remove the differing chunk ids,
        or rebuild from the stored vectors when the kind of index should change. Caller holds the lock."""
        generation = self.store.generation()
        if self._generation == generation and (self.index is None or self.index.generation == generation):
            if save and self.index is not None and self._saved_generation != generation:
                self.index.save(self.index_dir, generation)
                self._saved_generation = generation
            return
        ids = self.store.chunk_ids()
        index = self.index
        if not len(ids):
            index = None
            (self.index_dir / FILE_NAME).unlink(missing_ok=True)
        elif index is None or self._needs_rebuild(index, len(ids)):
            all_ids, vectors = zip(*self.store.vectors())
            vectors = np.concatenate(vectors)
            index = VectorIndex.build(np.concatenate(all_ids), vectors, vectors.shape[1],
                                      self.settings.exact_max_vectors, self.settings.ann_recall)
        else:
            index.remove(np.setdiff1d(index.ids, ids))
            for new_ids, vectors in self.store.vectors(np.setdiff1d(ids, index.ids)):
                index.add(new_ids, vectors)
        if index is not None:
            if save:
                index.save(self.index_dir, generation)
                self._saved_generation = generation
            index.generation = generation
        self.index, self._generation = index, generation
        self._load_calibration()

    def _needs_rebuild(self, index: VectorIndex, n: int) -> bool:
        stored_dim = len(next(self.store.vectors(self.store.chunk_ids()[:1]))[1][0])
        if index.dim != stored_dim:
            return True
        if n <= self.settings.exact_max_vectors:
            return index.kind != "flat"
        return index.kind != "ivf" or index.index.nlist < np.sqrt(n) / 2

    def _load_calibration(self) -> None:
        text = self.store.get_meta("calibration")
        self.calibration = Calibration.from_json(text) if text else None

    @property
    def embedder(self) -> Embedder:
        """The embedder given to open(), or the settings' model loaded on first use."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = SentenceEmbedder(self.settings.embedder_model)
            return self._embedder

    def _encode(self, texts: list[str]) -> np.ndarray:
        embedder = self.embedder
        with self._encode_lock:
            return embedder.encode(texts)

    def _encode_sentences(self, sentences: list[str]) -> np.ndarray:
        """Like _encode, remembering vectors: the passages a bot answers from repeat, their sentences with them."""
        embedder, cache = self.embedder, self._sentence_vectors
        with self._encode_lock:
            missing = [s for s in dict.fromkeys(sentences) if s not in cache]
            if missing:
                cache.update(zip(missing, embedder.encode(missing)))
            for s in sentences:
                cache.move_to_end(s)
            while len(cache) > SENTENCE_CACHE:
                cache.popitem(last=False)
            return np.stack([cache[s] for s in sentences])

    def _count_tokens(self, text: str) -> int:
        count = getattr(self.embedder, "count_tokens", None)
        if count is None:
            return approximate_tokens(text)
        with self._encode_lock:
            return count(text)

    def _build_key(self) -> str:
        if self._embedder is not None:
            name = getattr(self._embedder, "name", type(self._embedder).__name__)
        else:
            path = resolve_model_path(self.settings.embedder_model)
            name = f"{path.parent.name}/{path.name}"
        return json.dumps({"parser": PARSER_VERSION, "chunk_tokens": self.settings.chunk_tokens, "embedder": name})

    def _link(self, doc_id: str, url: str) -> str:
        if url or not self.settings.base_url:
            return url
        return self.settings.base_url + re.sub(r"\.\w+(?=#|$)", "", doc_id.split("~")[0])

    def documents(self) -> list[StoredDocument]:
        with self._lock:
            return list(self.store.documents().values())

    def stats(self) -> KnowledgeStats:
        with self._lock:
            docs, chunks = self.store.counts()
            index = self.index
            return KnowledgeStats(
                docs, chunks, self.store.generation(), index.kind if index else "empty",
                index.nprobe if index else 0, index.recall if index else 0.0,
                json.loads(self._build_key())["embedder"], self.settings.min_relevance,
            )

    def close(self) -> None:
        with self._lock:
            self.store.db.conn.close()
