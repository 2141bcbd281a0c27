"""The knowledge base's tables in the shared SQLite database: documents, chunks with their vectors,
an FTS5 keyword index over the chunks, each document's title vector (searched as its own signal), and a generation counter that every write moves on.

Vectors live in the database so the FAISS index can always be rebuilt from it without re-embedding;
the index file records the generation it matches.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import sqlite_utils

from knowledge.chunker import Chunk
from knowledge.database import transaction
from knowledge.documents import Document

SCHEMA = """
CREATE TABLE IF NOT EXISTS kb_documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, url TEXT NOT NULL, tags TEXT NOT NULL,
    file TEXT NOT NULL, file_hash TEXT NOT NULL, hash TEXT NOT NULL,
    updated REAL NOT NULL, ingested REAL NOT NULL, chunks INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kb_documents_file ON kb_documents(file);
CREATE TABLE IF NOT EXISTS kb_chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES kb_documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kb_chunks_doc ON kb_chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5(
    title, heading, text, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS kb_titles (
    doc_id TEXT PRIMARY KEY REFERENCES kb_documents(id) ON DELETE CASCADE, vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS kb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StoredDocument:
    id: str
    title: str
    url: str
    tags: tuple[str, ...]
    file: str
    file_hash: str
    hash: str
    updated: float
    chunks: int


@dataclass(frozen=True)
class StoredChunk:
    id: int
    doc_id: str
    title: str
    url: str
    heading: str
    text: str
    vector: np.ndarray


@dataclass(frozen=True)
class Write:
    """One document to (re)place, with its chunks and their unit vectors."""

    doc: Document
    hash: str  # of the content and of everything that shaped its chunks and vectors
    file: str
    file_hash: str
    updated: float
    chunks: list[Chunk]
    vectors: np.ndarray
    title_vector: np.ndarray | None = None  # the title (an FAQ row's question) embedded on its own


class KnowledgeStore:
    """All SQL of the knowledge base; callers serialise access (one connection, many threads)."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        self.db.conn.executescript(SCHEMA)

    # -- writes: each call is one transaction and moves the generation on --

    def write(self, writes: Sequence[Write] = (), remove: Sequence[str] = ()) -> int:
        """Replace/insert documents and remove others, all or nothing; returns the new generation."""
        now = time.time()
        with transaction(self.db):
            for doc_id in [*remove, *(w.doc.id for w in writes)]:
                self._delete(doc_id)
            for w in writes:
                d = w.doc
                self.db.execute(
                    "INSERT INTO kb_documents VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [d.id, d.title, d.url, json.dumps(list(d.tags)), w.file, w.file_hash, w.hash, w.updated, now,
                     len(w.chunks)],
                )
                for chunk, vector in zip(w.chunks, w.vectors):
                    cur = self.db.execute(
                        "INSERT INTO kb_chunks (doc_id, ord, heading, text, vector) VALUES (?,?,?,?,?)",
                        [d.id, chunk.ord, chunk.heading, chunk.text, np.asarray(vector, np.float32).tobytes()],
                    )
                    self.db.execute("INSERT INTO kb_fts (rowid, title, heading, text) VALUES (?,?,?,?)",
                                    [cur.lastrowid, d.title, chunk.heading, chunk.text])
                if w.title_vector is not None:
                    self.db.execute("INSERT INTO kb_titles (doc_id, vector) VALUES (?, ?)",
                                    [d.id, np.asarray(w.title_vector, np.float32).tobytes()])
            return self._bump()

    def set_file_hash(self, doc_ids: Sequence[str], file: str, file_hash: str) -> None:
        """A file changed but these of its documents did not: remember the new file hash (no generation move)."""
        with transaction(self.db):
            for doc_id in doc_ids:
                self.db.execute("UPDATE kb_documents SET file = ?, file_hash = ? WHERE id = ?", [file, file_hash, doc_id])

    def _delete(self, doc_id: str) -> None:
        self.db.execute("DELETE FROM kb_fts WHERE rowid IN (SELECT id FROM kb_chunks WHERE doc_id = ?)", [doc_id])
        self.db.execute("DELETE FROM kb_chunks WHERE doc_id = ?", [doc_id])
        self.db.execute("DELETE FROM kb_titles WHERE doc_id = ?", [doc_id])
        self.db.execute("DELETE FROM kb_documents WHERE id = ?", [doc_id])

    def _bump(self) -> int:
        generation = self.generation() + 1
        self.set_meta("generation", str(generation))
        return generation

    # -- reads --

    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kb_meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO kb_meta (key, value) VALUES (?, ?)", [key, value])

    def documents(self) -> dict[str, StoredDocument]:
        rows = self.db.execute(
            "SELECT id, title, url, tags, file, file_hash, hash, updated, chunks FROM kb_documents ORDER BY id"
        ).fetchall()
        return {r[0]: StoredDocument(r[0], r[1], r[2], tuple(json.loads(r[3])), *r[4:]) for r in rows}

    def counts(self) -> tuple[int, int]:
        docs = self.db.execute("SELECT count(*) FROM kb_documents").fetchone()[0]
        chunks = self.db.execute("SELECT count(*) FROM kb_chunks").fetchone()[0]
        return docs, chunks

    def chunk_ids(self, tags: Sequence[str] = ()) -> np.ndarray:
        sql, args = "SELECT id FROM kb_chunks c", []
        if tags:
            sql += f" WHERE {self._tag_filter(tags, args)}"
        return np.array([r[0] for r in self.db.execute(sql + " ORDER BY id", args)], dtype=np.int64)

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        out = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            rows = self.db.execute(
                "SELECT c.id, c.doc_id, d.title, d.url, c.heading, c.text, c.vector FROM kb_chunks c "
                f"JOIN kb_documents d ON d.id = c.doc_id WHERE c.id IN ({','.join('?' * len(part))})", part,
            )
            for r in rows:
                out[r[0]] = StoredChunk(*r[:6], np.frombuffer(r[6], dtype=np.float32))
        return out

    def vectors(self, ids: Sequence[int] | None = None, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in batches: all chunks, or the given ids."""
        if ids is not None:
            ids = [int(i) for i in ids]
            for start in range(0, len(ids), 500):
                found = self.chunks(ids[start:start + 500])
                if found:
                    yield (np.array(list(found), dtype=np.int64), np.stack([c.vector for c in found.values()]))
            return
        last = -1
        while True:
            rows = self.db.execute("SELECT id, vector FROM kb_chunks WHERE id > ? ORDER BY id LIMIT ?",
                                   [last, batch]).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield (np.array([r[0] for r in rows], dtype=np.int64),
                   np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]))

    def titles(self) -> tuple[list[str], np.ndarray]:
        """(document ids, their title vectors as rows), for documents that have one."""
        rows = self.db.execute("SELECT doc_id, vector FROM kb_titles ORDER BY doc_id").fetchall()
        if not rows:
            return [], np.zeros((0, 0), np.float32)
        return [r[0] for r in rows], np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def doc_chunk_ids(self, doc_ids: Sequence[str]) -> dict[str, list[int]]:
        """Chunk ids of each given document, in order."""
        out: dict[str, list[int]] = {}
        doc_ids = list(doc_ids)
        for start in range(0, len(doc_ids), 500):
            part = doc_ids[start:start + 500]
            rows = self.db.execute(f"SELECT doc_id, id FROM kb_chunks WHERE doc_id IN ({','.join('?' * len(part))}) "
                                   "ORDER BY doc_id, ord", part)
            for doc_id, chunk_id in rows:
                out.setdefault(doc_id, []).append(chunk_id)
        return out

    def sections(self) -> list[tuple[str, str, list[int]]]:
        """(document id, heading path, chunk ids) of every section that has a heading."""
        out: dict[tuple[str, str], list[int]] = {}
        for doc_id, heading, chunk_id in self.db.execute(
                "SELECT doc_id, heading, id FROM kb_chunks WHERE heading != '' ORDER BY doc_id, ord"):
            out.setdefault((doc_id, heading), []).append(chunk_id)
        return [(d, h, ids) for (d, h), ids in out.items()]

    def keyword(self, terms: Sequence[str], limit: int, tags: Sequence[str] = (),
                without_title: bool = False) -> list[tuple[int, float]]:
        """(chunk id, BM25 score, higher is better) for chunks matching any of the terms; `without_title`
        matches headings and text only (a title asked as a question must not find itself)."""
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        if without_title:
            match = "{heading text} : (" + match + ")"
        args: list = [match]
        sql = ("SELECT f.rowid, -bm25(kb_fts, 2.0, 2.0, 1.0) AS score FROM kb_fts f "
               "JOIN kb_chunks c ON c.id = f.rowid WHERE kb_fts MATCH ?")
        if tags:
            sql += f" AND {self._tag_filter(tags, args)}"
        args.append(limit)
        return [(r[0], r[1]) for r in self.db.execute(sql + " ORDER BY score DESC LIMIT ?", args)]

    @staticmethod
    def _tag_filter(tags: Sequence[str], args: list) -> str:
        args += [t.lower() for t in tags]
        return ("c.doc_id IN (SELECT d.id FROM kb_documents d, json_each(d.tags) j "
                f"WHERE j.value IN ({','.join('?' * len(tags))}))")
