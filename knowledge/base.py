"""The knowledge base: sync help articles in, search them (dense + keyword, fused), answer with a
short sourced passage. Thread-safe: database and index access share one lock (whose holder owns the database
connection); embedding runs outside it.

The FAISS index is derived state: the database holds every chunk's vector and a generation counter,
the index file records the generation it was built from, and any mismatch (a crash mid-ingest, a sync
by another process) is repaired from the stored vectors without re-embedding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from knowledge import relevance, tuning
from knowledge.chunker import approximate_tokens
from knowledge.documents import PARSER_VERSION
from knowledge.embedder import Embedder, make_embedder, resolve_model_path
from core.engine import open_database
from core.sqlite import OwnerLock
from knowledge.index import FILE_NAME, VectorIndex
from knowledge.ingest import Ingester, IngestReport
from knowledge.relevance import FEATURES, OFF_TOPIC, Calibration, Tuning, fit, terms
from knowledge.search import MODES, Candidate, Fusion, Hit, to_hit, trim
from knowledge.settings import KnowledgeSettings
from knowledge.spelling import Speller, vocabulary
from knowledge.store import KnowledgeStore, StoredDocument

__all__ = ["Answer", "Hit", "IngestReport", "KnowledgeBase", "KnowledgeStats"]

ALTERNATIVES = 4
CALIBRATION_QUERIES = 300
TITLE_CANDIDATES = 10  # documents found by their title vector that join the candidates with their passages
FALLBACK_THRESHOLD = 0.9  # when the target precision cannot be reached on the base's own questions
SENTENCE_CACHE = 20_000  # sentence vectors kept for trimming answers (~30 MB at 384 dimensions)
QUERY_CACHE, QUERY_CACHE_CHARS = 10_000, 100  # customers' repeated questions: short ones only (personal data)


@dataclass(frozen=True)
class Answer:
    text: str  # best passage trimmed to the sentences answering the query (untrimmed if not confident); "" if none
    title: str
    url: str
    score: float
    confident: bool  # score above the relevance threshold
    alternatives: list[Hit]
    doc_id: str = ""  # the answering document's id ("faq.csv#do-you-ship-abroad"), "" if none
    threshold: float | None = None  # the relevance `confident` was judged against


@dataclass(frozen=True)
class KnowledgeStats:
    documents: int
    chunks: int
    generation: int
    index_kind: str  # "flat" (exact), "ivf" (approximate) or "empty"
    nprobe: int
    index_recall: float  # recall@10 against exact search measured when the index was built
    embedder: str
    threshold: float  # the answer threshold in use: fitted to knowledge.target_precision, or pinned
    fusion: str  # the ranking in use, described ("hybrid, keyword_weight 0.3, titles mix")
    pinned: tuple[str, ...]  # settings that override the base's own choice
    tuning: "Tuning | None"  # what the base chose and measured at its last sync


def answers_it(question: tuning.Question, top: Candidate) -> bool:
    """Whether another document's top answer to a made-up question answers it too, for the threshold's
    precision: a title or heading is a few words, and a passage of another document holding every one of them
    is about the same thing (a kettle's recall notice for the kettle's heading; the back-in-stock article for
    "Will you restock an item that is sold out?"). Confirmed questions keep their reviewer's document."""
    return question.kind != "confirmed" and top.cover >= 1.0


def features(found: Iterable[Candidate]) -> np.ndarray:
    """The relevance features of candidates, one row each."""
    return np.array([c.features for c in found], np.float64).reshape(-1, len(FEATURES))


class KnowledgeBase:
    def __init__(self, store: KnowledgeStore, index_dir: Path, settings: KnowledgeSettings,
                 embedder: Embedder | None = None, threads: int = 0):
        self.store, self.index_dir, self.settings = store, Path(index_dir), settings
        self._embedder, self._threads = embedder, threads
        self._lock = OwnerLock(store.db)  # the store's connection belongs to the thread holding it
        self._embedder_lock = threading.Lock()
        self._encode_lock = threading.Lock()  # HF fast tokenizers fail ("Already borrowed") when shared by threads
        self._sentence_vectors = VectorCache(SENTENCE_CACHE)  # both under _encode_lock
        self._query_vectors = VectorCache(QUERY_CACHE)
        self._saved_generation = -1
        self.index: VectorIndex | None = None
        self.calibration: Calibration | None = None
        self._generation = -1
        self._titles: tuple = (-2, [], np.zeros((0, 0), np.float32), {})
        self._speller: tuple[int, Speller | None] = (-2, None)  # (generation, the base's typo corrector)

    @classmethod
    def open(cls, db_path: Path | str | None, index_path: Path, settings: KnowledgeSettings,
             embedder: Embedder | None = None, threads: int = 0) -> "KnowledgeBase":
        """Open (creating) the base; the index file is used when it matches the database, else rebuilt.
        `db_path`: the SQLite file, or a `postgresql://` URL. `threads`: the embedder's (0 = its runtime's
        default, all cores)."""
        kb = cls(KnowledgeStore(open_database(db_path)), index_path, settings, embedder, threads)
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

    def sync(self, paths: Sequence[Path], progress: bool = False,
             confirmed: Sequence[tuple[str, str]] = ()) -> IngestReport:
        """Make the base match these files and folders: new and changed documents embedded, documents
        deleted from a synced folder (or rows deleted from a synced file) removed; others untouched. When
        anything changed (or `confirmed`, (question, document id) pairs known to be right, did), the base
        tunes its search again (see calibrate)."""
        return self._ingest(paths, remove_missing=True, progress=progress, confirmed=confirmed)

    def add(self, paths: Sequence[Path], progress: bool = False,
            confirmed: Sequence[tuple[str, str]] = ()) -> IngestReport:
        """Like sync, but documents missing from the given folders are kept."""
        return self._ingest(paths, remove_missing=False, progress=progress, confirmed=confirmed)

    def _ingest(self, paths: Sequence[Path], remove_missing: bool, progress: bool,
                confirmed: Sequence[tuple[str, str]] = ()) -> IngestReport:
        ingester = Ingester(
            self.store, self._lock, self._encode,
            count_tokens=lambda: self._count_tokens,
            max_tokens=lambda: min(self.settings.chunk_tokens, getattr(self.embedder, "max_tokens", 1 << 30)),
            build_key=self._build_key(), max_bytes=int(self.settings.max_file_mb * 1e6), progress=progress,
        )
        report = ingester.run(paths, remove_missing)
        started = time.perf_counter()
        report.tuned = self._after_write(report.changed, confirmed)
        tuned = self.calibration.tuning if report.tuned and self.calibration else None
        report.expected = tuned.expected() if tuned and tuned.answers else ""
        report.seconds += time.perf_counter() - started
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

    def _after_write(self, changed: bool, confirmed: Sequence[tuple[str, str]] = ()) -> bool:
        """Index saved; the base tuned again when its documents or the confirmed questions changed."""
        key = hashlib.sha256(json.dumps(sorted(map(list, confirmed))).encode()).hexdigest()
        with self._lock:
            self._update_index(save=True)
            stale = (self.calibration is None or self.calibration.tuning is None
                     or self.store.get_meta("confirmed") != key) and self.store.counts()[0] > 0
        if changed or stale:
            self.calibrate(confirmed)
            with self._lock:
                self.store.set_meta("confirmed", key)
            return True
        return False

    # -- search --

    def search(self, query: str, k: int = 5, tags: Sequence[str] = (), mode: str = "auto") -> list[Hit]:
        """Best chunk of each of the top-k documents, best first; `mode` is auto (the base's own choice, or
        the pinned knowledge.fusion), hybrid, rrf, dense or keyword."""
        return self._search(self.correct(" ".join(query.split())), k, tags, mode)[0]

    def answer(self, query: str, tags: Sequence[str] = ()) -> Answer:
        """The best passage trimmed to the sentences answering the query, with its source and alternatives."""
        return self.answer_many([query], tags)[0]

    def answer_many(self, queries: Sequence[str], tags: Sequence[str] = ()) -> list[Answer]:
        """answer() for each query, the queries embedded in one batch (the server batches concurrent questions)."""
        queries = [self.correct(" ".join(q.split())) for q in queries]
        distinct = [q for q in dict.fromkeys(queries) if q]
        vectors = dict(zip(distinct, self.embed_queries(distinct))) if distinct else {}
        return [self._answer(q, tags, vectors.get(q)) for q in queries]

    def _answer(self, query: str, tags: Sequence[str], query_vector: np.ndarray | None) -> Answer:
        hits, query_vector = self._search(query, 1 + ALTERNATIVES, tags, "auto", query_vector)
        if not hits:
            return Answer("", "", "", 0.0, False, [], threshold=self.threshold)
        best = hits[0]
        confident = best.score >= self.threshold
        text = best.text
        if confident:  # trimming embeds every sentence: not worth it for a passage that will not be shown
            text = trim(best.text, query_vector, terms(query), self._encode_sentences,
                        self.settings.answer_sentences)
        return Answer(text, best.title, best.url, best.score, confident, hits[1:], best.doc_id, self.threshold)

    @property
    def threshold(self) -> float:
        """The answer threshold: knowledge.min_relevance, or with 0 there the one fitted at sync."""
        if self.settings.min_relevance > 0:
            return self.settings.min_relevance
        tuned = self.calibration.tuning if self.calibration else None
        return tuned.threshold if tuned else FALLBACK_THRESHOLD

    @property
    def fusion(self) -> Fusion:
        """The ranking in use: the settings' where pinned, the rest as the base chose at its last sync."""
        tuned = self.calibration.tuning if self.calibration else None
        chosen = Fusion(**tuned.fusion) if tuned else Fusion(titles="mix")
        s = self.settings
        if s.fusion != "auto":
            chosen = Fusion(s.fusion, s.keyword_weight if s.fusion == "hybrid" else chosen.keyword_weight, chosen.titles)
        if s.title_signal != "auto":
            chosen = Fusion(chosen.mode, chosen.keyword_weight, s.title_signal)
        return chosen

    def _fusion_for(self, mode: str) -> Fusion:
        if mode not in MODES:
            raise ValueError(f"search mode must be one of {MODES}, not {mode!r}")
        fusion = self.fusion
        if mode == "auto" or mode == fusion.mode:
            return fusion
        weight = fusion.keyword_weight if fusion.mode == "hybrid" else self.settings.keyword_weight
        return Fusion(mode, weight, fusion.titles)

    def _search(self, query: str, k: int, tags: Sequence[str], mode: str,
                query_vector: np.ndarray | None = None) -> tuple[list[Hit], np.ndarray]:
        fusion = self._fusion_for(mode)
        query = " ".join(query.split())
        with self._lock:
            empty = not self.store.counts()[1]
        if not query or k <= 0 or empty:
            return [], np.zeros(0, np.float32)
        if query_vector is None:
            query_vector = self._encode([query], queries=True)[0]
        pool = self._gather(query, query_vector, max(k, self.settings.candidates), tags)
        found = pool.rank(fusion, self.settings.rrf_k)
        calibration = self.calibration or self.calibrate()
        return [to_hit(c, calibration, self._link) for c in found[:k]], query_vector

    def _gather(self, query: str, query_vector: np.ndarray, n: int, tags: Sequence[str] = (),
                exclude: frozenset[int] = frozenset(), held_out: frozenset[str] = frozenset(),
                title_of: frozenset[str] = frozenset(), pad: int = 0) -> "tuning.Pool":
        """Dense, keyword and title candidates of one query. For the base's own questions: `exclude` drops chunks,
        `held_out` drops whole documents (chunks and titles), `title_of` searches these documents as if they had
        no title (neither title vector nor FTS title column: a title asked as a question must not find itself)."""
        query_terms = terms(query)
        with self._lock:
            self._update_index(save=False)
            allowed = self.store.chunk_ids(tags) if tags else None
            if allowed is not None and not len(allowed):
                return tuning.Pool({}, [], {}, {}, query_terms, query_vector)
            pad += len(exclude)
            dense: list[int] = []
            if self.index is not None and len(query_vector) == self.index.dim:
                _, ids = self.index.search(query_vector[None, :], n + pad, allowed)
                dense = [int(i) for i in ids[0] if i >= 0]
            keyword = dict(self.store.keyword(query_terms, n + pad, tags))
            if title_of:  # these documents' chunks score as if they had no title
                titled = self.store.doc_chunk_ids(list(title_of))
                own = {c for ids in titled.values() for c in ids}
                keyword = {i: v for i, v in keyword.items() if i not in own}
                keyword.update((i, v) for i, v in self.store.keyword(query_terms, n + pad, tags, without_title=True)
                               if i in own)
            title_cos: dict[str, float] = {}
            doc_ids, matrix, index_of = self._title_matrix()
            if len(doc_ids) and matrix.shape[1] == len(query_vector):
                cos = matrix @ query_vector
                top = np.argsort(-cos)[: TITLE_CANDIDATES + len(held_out) + len(title_of)]
                title_cos = {doc_ids[i]: float(cos[i]) for i in top if doc_ids[i] not in held_out | title_of}
                extra = self.store.doc_chunk_ids(list(title_cos))
                allowed_set = set(allowed.tolist()) if allowed is not None else None
                dense += [c for ids in extra.values() for c in ids if allowed_set is None or c in allowed_set]
            rows = self.store.chunks(list(dict.fromkeys([*dense, *keyword])))
            rows = {i: c for i, c in rows.items() if i not in exclude and c.doc_id not in held_out}
            if len(doc_ids):
                for doc in {c.doc_id for c in rows.values()} - set(title_cos) - held_out - title_of:
                    if doc in index_of and matrix.shape[1] == len(query_vector):
                        title_cos[doc] = float(matrix[index_of[doc]] @ query_vector)
        dense = [i for i in dense if i in rows]
        keyword = {i: v for i, v in keyword.items() if i in rows}
        return tuning.Pool(rows, dense, keyword, title_cos, query_terms, query_vector, title_of)

    def correct(self, query: str) -> str:
        """The query with its typos corrected against the base's own words (knowledge.correct_typos)."""
        if not self.settings.correct_typos or not query:
            return query
        with self._lock:
            generation = self.store.generation()
            if self._speller[0] != generation:
                words = getattr(self.embedder, "words", None)
                self._speller = (generation, Speller(vocabulary(self.store.texts()), words() if words else ()))
            speller = self._speller[1]
        return speller(query)

    def calibrate(self, confirmed: Sequence[tuple[str, str]] = ()) -> Calibration | None:
        """Tune the base on questions it makes from itself (titles, headings, FAQ questions; `confirmed`
        (question, document id) pairs too, such as knowledge answers reviewers confirmed): choose the fusion,
        fit relevance (is the top answer right; held-out documents' and off-topic questions' best hits never are)
        and the threshold that reaches knowledge.target_precision. Kept with the base until the next sync changes it."""
        docs = self.documents()
        if not docs:
            self.calibration = None
            return None
        with self._lock:
            sections = self.store.sections()
        known = {d.id for d in docs}
        questions = tuning.own_questions(docs, sections, [(q, d) for q, d in confirmed if d in known],
                                         CALIBRATION_QUERIES)
        vectors = self._encode([q.text for q in questions] + list(OFF_TOPIC), queries=True)
        copies = tuning.copies(docs)
        n, no = self.settings.candidates, frozenset()
        pools = [self._gather(q.text, v, n, exclude=q.exclude, title_of=copies[q.doc_id] if q.kind == "title" else no)
                 for q, v in zip(questions, vectors)]
        chunks = {d.id: d.chunks for d in docs}
        # a heading's document held out leaves its siblings, which often answer it: no negative
        negatives = [self._gather(q.text, v, n, held_out=copies[q.doc_id], pad=sum(chunks[d] for d in copies[q.doc_id]))
                     for q, v in zip(questions, vectors) if q.kind != "heading"]
        off_topic = [self._gather(q, v, n) for q, v in zip(OFF_TOPIC, vectors[len(questions):])]
        tried = tuning.fusions(self.settings)
        expected = [copies[q.doc_id] for q in questions]
        choice, scores = tuning.choose(tried, pools, expected, self.settings.rrf_k)
        rrf_k = self.settings.rrf_k
        # the top answer to each own question, right or not; unanswerable questions' best hits are all wrong
        tops = [(q, c, c.chunk.doc_id in e) for q, p, e in zip(questions, pools, expected)
                if (c := p.best(choice, rrf_k))]
        held_out = [c for p in negatives if (c := p.best(choice, rrf_k))]
        stray = [c for p in off_topic if (c := p.best(choice, rrf_k))]
        calibration = fit(features(c for _, c, _ in tops), np.array([ok for *_, ok in tops]), features(held_out + stray))
        answered = [(calibration.score(c.features), ok or answers_it(q, c)) for q, c, ok in tops]
        # wrong when confident: another document's answer that does not hold the question's words (answers_it),
        # or any answer to an off-topic one
        wrong = [(calibration.score(c.features), False) for c in stray]
        threshold, count, precision, fitted = relevance.fit_threshold(
            answered + wrong, self.settings.target_precision, FALLBACK_THRESHOLD)
        best = dict((name, mrr) for name, _, mrr in scores)[choice.describe()]
        calibration = dataclasses.replace(calibration, tuning=Tuning(
            choice.to_dict(), best, tuple(scores), len(questions), threshold, self.settings.target_precision,
            sum(s >= threshold for s, _ in answered) / max(1, len(answered)), precision, len(wrong), fitted, count,
            relevance.wilson_low(round(precision * count), count)))
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

    def _title_matrix(self) -> tuple[list[str], np.ndarray, dict[str, int]]:
        """Every document's title vector, as rows of one matrix (read again when the generation moves).
        Caller holds the lock."""
        if self._titles[0] != self._generation:
            ids, matrix = self.store.titles()
            self._titles = (self._generation, ids, matrix, {d: i for i, d in enumerate(ids)})
        return self._titles[1:]

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
        """The embedder given to open(), or the settings' model and runtime loaded on first use."""
        with self._embedder_lock:
            if self._embedder is None:
                s = self.settings
                self._embedder = make_embedder(s.embedder_model, s.embedder_runtime, self.index_dir / "onnx", self._threads)
            return self._embedder

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of questions, one row each, as the base embeds them; short ones (customers' repeated
        questions, no long personal text) through the query cache."""
        texts = list(texts)
        distinct = list(dict.fromkeys(texts))
        short = [t for t in distinct if len(t) <= QUERY_CACHE_CHARS]
        long = [t for t in distinct if len(t) > QUERY_CACHE_CHARS]
        vectors = dict(zip(short, self._encode(short, queries=True, cache=self._query_vectors))) if short else {}
        if long:
            vectors.update(zip(long, self._encode(long, queries=True)))
        return np.stack([vectors[t] for t in texts]) if texts else self._encode([], queries=True)

    def _encode(self, texts: list[str], queries: bool = False, cache: "VectorCache | None" = None) -> np.ndarray:
        """Vectors of passages, or with `queries` of questions (an embedder may encode those faster); through
        `cache` when given (vectors remembered by text)."""
        embedder = self.embedder
        encode = getattr(embedder, "encode_queries", embedder.encode) if queries else embedder.encode
        with self._encode_lock:
            return cache.encode(texts, encode) if cache is not None and texts else encode(texts)

    def _encode_sentences(self, sentences: list[str]) -> np.ndarray:
        """Like _encode, remembering vectors: the passages a bot answers from repeat, their sentences with them."""
        return self._encode(sentences, cache=self._sentence_vectors)

    def cache_stats(self) -> dict:
        """The query-vector cache's figures, for /admin/stats."""
        with self._encode_lock:
            return self._query_vectors.stats()

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
                json.loads(self._build_key())["embedder"], self.threshold, self.fusion.describe(),
                tuple(name for name, pinned in (("fusion", self.settings.fusion != "auto"),
                                                ("title_signal", self.settings.title_signal != "auto"),
                                                ("min_relevance", self.settings.min_relevance > 0)) if pinned),
                self.calibration.tuning if self.calibration else None,
            )

    def close(self) -> None:
        with self._lock:
            self.store.close()


class VectorCache:
    """Text -> vector, the `size` latest kept (LRU), with hit counts; the caller serialises access."""

    def __init__(self, size: int):
        self.size, self.hits, self.misses = size, 0, 0
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: Sequence[str], encode) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._entries]
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        if missing:
            self._entries.update(zip(missing, encode(missing)))
        out = np.stack([self._entries[t] for t in texts])
        for t in texts:
            self._entries.move_to_end(t)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return out

    def stats(self) -> dict:
        looked_up = self.hits + self.misses
        return {"size": self.size, "entries": len(self._entries), "hits": self.hits, "misses": self.misses,
                "hit_rate": round(self.hits / looked_up, 4) if looked_up else None}
