"""Incremental ingest: read the given files and folders, embed only new or changed documents, remove
deleted ones, and write in short transactions of a few documents (so a crash loses at most the batch in
flight, and the web server's own writes to the shared database are never blocked for long)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from core.sqlite import OwnerLock
from knowledge.chunker import Chunk, chunk_document
from knowledge.documents import Document, Skip, read_document, safe_url
from knowledge.store import KnowledgeStore, StoredDocument, Write

BATCH_CHUNKS = 256  # chunks embedded and written per transaction


@dataclass
class IngestReport:
    """What a sync did: counts, and every file or row skipped with its reason."""

    files: int = 0
    documents: int = 0  # documents found in the given paths
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0  # chunks embedded by this run
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or file:line, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file, what was changed): kept, but not as given
    seconds: float = 0.0
    total_documents: int = 0
    total_chunks: int = 0
    tuned: bool = False  # the base chose its fusion and threshold again (see KnowledgeBase.calibrate)
    expected: str = ""  # what the threshold it chose promises (relevance.Tuning.expected), when tuned

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        lines = [
            f"{self.files} files, {self.documents} documents: {self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} removed; {self.chunks} chunks embedded in {self.seconds:.1f} s",
            f"knowledge base: {self.total_documents} documents, {self.total_chunks} chunks"
            + ("; search tuned again" if self.tuned else ""),
        ] + ([f"answer threshold {self.expected}"] if self.expected else [])
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {where}: {reason}" for where, reason in self.skipped]
        if self.warnings:
            lines.append(f"warnings {len(self.warnings)}:")
            lines += [f"  {where}: {reason}" for where, reason in self.warnings]
        return "\n".join(lines)


def source_files(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """(file, document id) for every file under the given paths; ids are paths relative to the given folder."""
    out = []
    for path in paths:
        path = Path(path).expanduser().absolute()
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                rel = file.relative_to(path)
                if (file.is_file() or file.is_symlink()) and not any(p.startswith(".") for p in rel.parts):
                    out.append((file, rel.as_posix()))
        elif path.exists() or path.is_symlink():
            out.append((path, path.name))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return out


class Ingester:
    """One sync run. `embed` and `count_tokens` are only called when something must be (re)embedded."""

    def __init__(self, store: KnowledgeStore, lock: OwnerLock, embed: Callable[[list[str]], np.ndarray],
                 count_tokens: Callable[[], Callable[[str], int]], max_tokens: Callable[[], int],
                 build_key: str, max_bytes: int, progress: bool = False):
        self.store, self.lock, self.embed = store, lock, embed
        self.count_tokens, self.max_tokens = count_tokens, max_tokens
        self.build_key, self.max_bytes, self.progress = build_key, max_bytes, progress
        self.report = IngestReport()
        self.pending: list[tuple[Document, str, str, float, list[Chunk]]] = []

    def run(self, paths: Sequence[Path], remove_missing: bool) -> IngestReport:
        from tqdm import tqdm

        started = time.perf_counter()
        files = source_files(paths)  # raises before anything is written
        roots = [Path(p).expanduser().absolute() for p in paths]
        with self.lock:
            existing = self.store.documents()
        by_file: dict[str, list[StoredDocument]] = {}
        for doc in existing.values():
            by_file.setdefault(doc.file, []).append(doc)
        seen: set[str] = set()
        claimed: dict[str, str] = {}
        self.report.files = len(files)
        for file, doc_id in tqdm(files, desc="ingest", unit="file", disable=not self.progress or None, leave=False):
            old = by_file.get(str(file), [])
            docs, file_hash, mtime = self._read(file, doc_id, old)
            if docs is None:  # unchanged or skipped: its documents stay as they are
                seen.update(d.id for d in old)
                continue
            refiled = []
            for doc in docs:
                doc = self._claim(doc, str(file), existing, claimed)
                seen.add(doc.id)
                self.report.documents += 1
                prev = existing.get(doc.id)
                if prev is not None and prev.hash == self._hash(doc):
                    self.report.unchanged += 1
                    refiled.append(doc.id)
                    continue
                self._queue(doc, str(file), file_hash, mtime, updated=prev is not None)
            if refiled:
                with self.lock:
                    self.store.set_file_hash(refiled, str(file), file_hash)
        self._flush()
        read = {str(f) for f, _ in files}
        gone = [d.id for d in existing.values() if d.id not in seen and self._covered(d, read, roots, remove_missing)]
        if gone:
            with self.lock:
                self.store.write(remove=gone)
            self.report.removed = len(gone)
        with self.lock:
            self.report.total_documents, self.report.total_chunks = self.store.counts()
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _read(self, file: Path, doc_id: str, old: list[StoredDocument]) -> tuple[list[Document] | None, str, float]:
        """Parsed documents, or None when the file is unchanged since the last sync or must be skipped."""
        try:
            stat = file.stat()
            if stat.st_size > self.max_bytes:
                raise Skip(f"file is {stat.st_size / 1e6:.1f} MB, over knowledge.max_file_mb={self.max_bytes / 1e6:g}")
            data = file.read_bytes()
        except OSError as e:
            self.report.skipped.append((str(file), f"cannot read: {e.strerror or e}"))
            return None, "", 0.0
        except Skip as e:
            self.report.skipped.append((str(file), str(e)))
            return None, "", 0.0
        file_hash = hashlib.sha256(data + self.build_key.encode()).hexdigest()
        if old and all(d.file_hash == file_hash and d.file == str(file) for d in old):
            self.report.documents += len(old)
            self.report.unchanged += len(old)
            return None, file_hash, stat.st_mtime
        try:
            docs, skipped = read_document(file, doc_id, data)
        except Skip as e:
            self.report.skipped.append((str(file), str(e)))
            return None, "", 0.0
        self.report.skipped += skipped
        return [self._checked_url(d, file) for d in docs], file_hash, stat.st_mtime

    def _checked_url(self, doc: Document, file: Path) -> Document:
        """Article links reach every API client as `sources`: only http(s) and relative ones are kept."""
        if safe_url(doc.url):
            return doc
        self.report.warnings.append((str(file), f"url {doc.url[:80]!r} dropped: only http(s) and relative links "
                                                "are kept (the article is used without a link)"))
        return dataclasses.replace(doc, url="")

    def _claim(self, doc: Document, file: str, existing: dict[str, StoredDocument], claimed: dict[str, str]) -> Document:
        """Keep ids unique across folders: an id held by another file that still exists gets a suffix, unless
        it is the same article (same content: a copy of the folder, or the bot folder moved), which then
        moves to this file instead of being stored twice."""
        holder = claimed.get(doc.id) or (existing[doc.id].file if doc.id in existing else None)
        same = doc.id not in claimed and doc.id in existing and existing[doc.id].hash == self._hash(doc)
        if holder is not None and holder != file and not same and (doc.id in claimed or os.path.exists(holder)):
            doc = Document(f"{doc.id}~{hashlib.sha256(file.encode()).hexdigest()[:6]}", doc.title, doc.url,
                           doc.tags, doc.sections)
        claimed[doc.id] = file
        return doc

    def _hash(self, doc: Document) -> str:
        return hashlib.sha256((doc.hash + self.build_key).encode()).hexdigest()

    def _queue(self, doc: Document, file: str, file_hash: str, mtime: float, updated: bool) -> None:
        chunks = chunk_document(doc, self.max_tokens(), self.count_tokens())
        self.pending.append((doc, file, file_hash, mtime, chunks))
        if updated:
            self.report.updated += 1
        else:
            self.report.added += 1
        if sum(len(p[4]) for p in self.pending) >= BATCH_CHUNKS:
            self._flush()

    def _flush(self) -> None:
        """Embed the queued documents' chunks and write them in one transaction."""
        if not self.pending:
            return
        texts = [chunk.embedded() for doc, _, _, _, chunks in self.pending for chunk in chunks]
        vectors = self.embed(texts + [doc.title for doc, *_ in self.pending])
        writes, at = [], 0
        for n, (doc, file, file_hash, mtime, chunks) in enumerate(self.pending):
            writes.append(Write(doc, self._hash(doc), file, file_hash, mtime, chunks, vectors[at:at + len(chunks)],
                                vectors[len(texts) + n]))
            at += len(chunks)
        with self.lock:
            self.store.write(writes)
        self.report.chunks += len(texts)
        self.pending = []

    @staticmethod
    def _covered(doc: StoredDocument, files: set[str], roots: list[Path], remove_missing: bool) -> bool:
        """Whether this run is the authority on a stored document: its file was read, or it lay under a synced folder."""
        if doc.file in files:
            return True
        return remove_missing and any(r.is_dir() and doc.file.startswith(str(r) + os.sep) for r in roots)
