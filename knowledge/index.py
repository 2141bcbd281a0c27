"""FAISS vector index with stable ids (the chunk ids), saved as one file written whole then renamed.

Small bases get an exact inner-product index; above `exact_max` vectors an IVF index whose nprobe is
tuned at build time until recall@10 against exact search reaches a target on sample queries.
The file records the database generation it was built from, so a stale file is detected on open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

FILE_NAME = "knowledge.npz"
NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


class VectorIndex:
    """Exact (IndexIDMap2 over IndexFlatIP) or approximate (IndexIVFFlat with ids) inner-product search."""

    def __init__(self, index, ids: np.ndarray, kind: str, generation: int = 0, nprobe: int = 0, recall: float = 1.0):
        self.index = index
        self.ids = np.sort(np.asarray(ids, dtype=np.int64))  # the chunk ids it holds
        self.kind = kind
        self.generation = generation
        self.nprobe = nprobe
        self.recall = recall  # measured recall@10 against exact search (1.0 for exact)

    @property
    def dim(self) -> int:
        return self.index.d

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, exact_max: int = 50_000,
              target_recall: float = 0.97, seed: int = 0, noise: float = 1.0, k: int = 10) -> "VectorIndex":
        """An index over the given unit vectors: exact when small, IVF (nprobe tuned) when large. `noise` and `k`:
        the tuning's queries and recall@k (see `tune`)."""
        import faiss

        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
        if len(ids) <= exact_max:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            if len(ids):
                index.add_with_ids(vectors, ids)
            return cls(index, ids, "flat")
        nlist = max(1, min(int(np.sqrt(len(ids))), len(ids) // 39))
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(len(ids), size=min(len(ids), 50 * nlist), replace=False)]
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(sample)
        index.add_with_ids(vectors, ids)
        built = cls(index, ids, "ivf")
        built.tune(ids, vectors, target_recall, rng, noise=noise, k=k)
        return built

    def tune(self, ids: np.ndarray, vectors: np.ndarray, target_recall: float, rng: np.random.Generator,
             queries: int = 200, noise: float = 1.0, k: int = 10) -> None:
        """Smallest nprobe whose recall@k against exact search reaches the target, on perturbed stored vectors.

        Queries are stored vectors plus noise of `noise` times their own length: 1 (cosine ~0.7 to the original)
        is a question against the passage that answers it; the memory of reviewed answers, which only answers
        near neighbours, tunes with less.
        """
        rows = rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False)
        q = vectors[rows] + noise * rng.standard_normal((len(rows), self.dim)).astype(np.float32) / np.float32(np.sqrt(self.dim))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        k = min(k, len(vectors))
        exact = exact_search(vectors, ids, q, k)
        self.nprobe, self.recall = NPROBES[-1], 0.0
        for nprobe in NPROBES:
            self.index.nprobe = min(nprobe, self.index.nlist)
            _, found = self.index.search(q, k)
            recall = recall_at(found, exact)
            if recall >= target_recall or nprobe >= self.index.nlist:
                self.nprobe, self.recall = self.index.nprobe, recall
                return
        self.index.nprobe, self.recall = self.nprobe, recall

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
            self.ids = np.union1d(self.ids, ids)

    def remove(self, ids: Iterable[int]) -> None:
        import faiss

        ids = np.asarray(list(ids), dtype=np.int64)
        if len(ids):
            self.index.remove_ids(faiss.IDSelectorBatch(ids))
            self.ids = np.setdiff1d(self.ids, ids)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) best first, -1 ids padding; `allowed` restricts the result to those ids."""
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if len(self.ids) == 0 or k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = min(k, len(self.ids))
        if self.kind == "ivf":
            # A filter may leave few ids, spread over lists the tuned nprobe would not visit: scan them all.
            params = faiss.SearchParametersIVF(nprobe=self.index.nlist if allowed is not None else self.nprobe)
        else:
            params = faiss.SearchParameters()
        if allowed is not None:
            params.sel = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        return self.index.search(queries, k, params=params)

    # -- persistence --

    def save(self, folder: Path, generation: int) -> Path:
        """Write the whole index to a temporary file, then rename it over the old one (atomic switch)."""
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FILE_NAME
        tmp = folder / f".{FILE_NAME}.{os.getpid()}.tmp"
        meta = {"generation": generation, "kind": self.kind, "nprobe": self.nprobe, "recall": self.recall}
        try:
            with open(tmp, "wb") as f:
                np.savez(f, index=faiss.serialize_index(self.index), ids=self.ids,
                         meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.generation = generation
        return path

    @classmethod
    def load(cls, folder: Path) -> "VectorIndex | None":
        """The saved index, or None when there is none or it cannot be read (it is then rebuilt)."""
        import faiss

        path = folder / FILE_NAME
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(data["meta"].tobytes())
                index = faiss.deserialize_index(data["index"])
                return cls(index, data["ids"], meta["kind"], meta["generation"], meta["nprobe"], meta["recall"])
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError):
            return None


def exact_search(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, block: int = 65_536) -> np.ndarray:
    """Exact top-k ids by inner product, in blocks so a million vectors need no second copy."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), block):
        scores = queries @ vectors[start:start + block].T
        scores = np.concatenate([best_scores, scores], axis=1)
        cand = np.concatenate([best_ids, np.broadcast_to(ids[start:start + block], (len(queries), scores.shape[1] - best_ids.shape[1]))], axis=1)
        top = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_ids = np.take_along_axis(cand, top, axis=1)
    order = np.argsort(-best_scores, axis=1)
    return np.take_along_axis(best_ids, order, axis=1)


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    """Share of the exact top-k ids that the approximate search also returned."""
    hits = sum(len(set(f[f >= 0]) & set(e)) for f, e in zip(found, exact))
    return hits / max(1, exact.size)
