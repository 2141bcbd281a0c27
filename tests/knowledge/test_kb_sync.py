"""Incremental sync, updates and deletes, bad input, crash consistency, approximate index, threads.

The embedder does not matter here: a deterministic hash double stands in for the model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from kb_doubles import HashEmbedder

from knowledge.index import FILE_NAME, VectorIndex

REPO = Path(__file__).resolve().parents[2]


def doc_ids(hits):
    return [h.doc_id for h in hits]


def assert_consistent(kb):
    """The index holds exactly the database's chunk ids, at the database's generation."""
    assert np.array_equal(kb.index.ids, kb.store.chunk_ids())
    saved = VectorIndex.load(kb.index_dir)
    assert saved.generation == kb.store.generation()
    assert np.array_equal(saved.ids, kb.store.chunk_ids())


def test_resync_of_an_unchanged_base_embeds_nothing(open_kb, articles):
    kb = open_kb()
    first = kb.sync([articles])
    assert (first.files, first.documents, first.added, first.skipped) == (5, 6, 6, [])
    calls = kb.embedder.calls
    again = kb.sync([articles])
    assert (again.added, again.updated, again.removed, again.unchanged, again.chunks) == (0, 0, 0, 6, 0)
    assert kb.embedder.calls == calls
    assert "6 unchanged" in again.summary()


def test_update_and_delete_are_reflected_in_search(open_kb, articles):
    kb = open_kb()
    kb.sync([articles])
    assert "payments.txt" in doc_ids(kb.search("Visa Mastercard PayPal", k=3, mode="keyword"))
    (articles / "payments.txt").write_text("Payment methods\n\nWe only accept Bitcoin and Monero now.\n")
    (articles / "shipping.md").unlink()
    report = kb.sync([articles])
    assert (report.updated, report.removed, report.unchanged) == (1, 1, 4)
    assert "payments.txt" not in doc_ids(kb.search("Visa Mastercard PayPal", k=5, mode="keyword"))
    assert doc_ids(kb.search("Bitcoin Monero", k=1))[0] == "payments.txt"
    assert all(h.doc_id != "shipping.md" for h in kb.search("standard delivery working days", k=10))
    assert "shipping.md" not in {d.id for d in kb.documents()}
    assert_consistent(kb)


def test_faq_row_deleted_from_file_is_removed(open_kb, articles):
    kb = open_kb()
    kb.sync([articles])
    rows = (articles / "products.csv").read_text().splitlines()
    (articles / "products.csv").write_text("\n".join(rows[:2]) + "\n")
    report = kb.sync([articles])
    assert report.removed == 1 and report.unchanged == 6 - 1
    assert [d.id for d in kb.documents() if d.id.startswith("products.csv#")] == [
        "products.csv#what-is-the-battery-life-of-the-aurora-xr-220-headphones"]


def test_add_keeps_documents_missing_from_the_folder_and_remove_deletes(open_kb, articles, tmp_path):
    kb = open_kb()
    kb.sync([articles])
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "returns.md").write_text("# Other returns\n\nA different returns page in another folder.\n")
    report = kb.add([extra])
    assert report.added == 1 and report.removed == 0
    ids = {d.id for d in kb.documents()}
    assert "returns.md" in ids and any(i.startswith("returns.md~") for i in ids)  # same name, other folder
    assert kb.remove(["products.csv"]) == 2  # a FAQ file's id removes all of its rows
    assert kb.remove(["returns.md"]) == 1
    with pytest.raises(ValueError, match="no document with id 'nope.md'"):
        kb.remove(["nope.md"])
    assert all(h.doc_id != "returns.md" for h in kb.search("return label refund", k=10))
    assert kb.stats().documents == 4
    assert_consistent(kb)


def test_a_copy_of_the_folder_is_the_same_documents_not_new_ones(open_kb, articles, tmp_path):
    kb = open_kb()
    kb.sync([articles])
    before = {d.id: d.hash for d in kb.documents()}
    copy = tmp_path / "clone" / "articles"  # the same bot folder in a second checkout
    shutil.copytree(articles, copy)
    report = kb.sync([copy])
    assert (report.added, report.unchanged, report.chunks) == (0, len(before), 0)
    assert {d.id: d.hash for d in kb.documents()} == before
    assert {d.file for d in kb.documents()} == {str(copy / Path(d.file).name) for d in kb.documents()}
    assert_consistent(kb)


def test_bad_input_is_skipped_with_reasons_and_the_base_stays_usable(open_kb, articles, tmp_path):
    kb = open_kb(max_file_mb=1.0)
    kb.sync([articles])
    before = doc_ids(kb.search("prepaid return label", k=1))
    (articles / "latin1.md").write_bytes("Caf\xe9 hours\n\nOpen daily.".encode("latin-1"))
    (articles / "empty.md").write_text("   \n")
    with open(articles / "huge.txt", "wb") as f:  # a sparse 50 MB file: nothing written to disk
        f.truncate(50_000_000)
    (articles / "faq.csv").write_text("question,answer\nGood question?,Good answer.\nbroken row only\n")
    os.symlink(tmp_path / "missing-target.md", articles / "dangling.md")
    (articles / "notes.docx").write_bytes(b"PK\x03\x04")
    (articles / ".hidden.md").write_text("# Hidden\n\nNot ingested.")
    report = kb.sync([articles])
    reasons = {Path(where).name: reason for where, reason in report.skipped}
    assert "not UTF-8 text" in reasons["latin1.md"]
    assert "empty document" in reasons["empty.md"]
    assert "50.0 MB, over knowledge.max_file_mb=1" in reasons["huge.txt"]
    assert "row has 1 fields" in reasons["faq.csv:3"]
    assert "cannot read" in reasons["dangling.md"]
    assert "unsupported file type .docx" in reasons["notes.docx"]
    assert ".hidden.md" not in reasons and report.added == 1  # only the good FAQ row
    assert doc_ids(kb.search("prepaid return label", k=1)) == before
    assert doc_ids(kb.search("Good question", k=1, mode="keyword")) == ["faq.csv#good-question"]
    assert_consistent(kb)


def test_file_that_becomes_unreadable_keeps_its_documents(open_kb, articles):
    kb = open_kb()
    kb.sync([articles])
    (articles / "returns.md").write_bytes("Caf\xe9 returns".encode("latin-1"))
    report = kb.sync([articles])
    assert report.removed == 0 and report.skipped
    assert "returns.md" in {d.id for d in kb.documents()}


def test_missing_path_is_an_error_and_changes_nothing(open_kb, articles, tmp_path):
    kb = open_kb()
    kb.sync([articles])
    generation = kb.store.generation()
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        kb.sync([articles, tmp_path / "no-such-folder"])
    assert kb.store.generation() == generation and kb.stats().documents == 6


class Interrupt(BaseException):
    pass


def test_interrupted_ingest_leaves_the_previous_index_usable(open_kb, articles, monkeypatch):
    kb = open_kb()
    kb.sync([articles])
    monkeypatch.setattr("knowledge.ingest.BATCH_CHUNKS", 1)
    for n in range(4):
        (articles / f"new{n}.md").write_text(f"# New article {n}\n\nFresh content number {n} about zebras.\n")

    def failing(texts, real=kb.embedder.encode):
        if any("New article 2" in t for t in texts):
            raise Interrupt()
        return real(texts)

    monkeypatch.setattr(kb.embedder, "encode", failing)
    with pytest.raises(Interrupt):
        kb.sync([articles])
    assert doc_ids(kb.search("prepaid return label", k=1)) == ["returns.md"]
    done = {d.id for d in kb.documents() if d.id.startswith("new")}
    assert done == {"new0.md", "new1.md"}  # written batches are kept, the one in flight is not
    monkeypatch.undo()
    report = kb.sync([articles])
    assert report.added == 2 and report.unchanged == 8  # resumes: only what was missing is embedded
    assert_consistent(kb)


@pytest.mark.integration
def test_crash_mid_ingest_in_another_process_is_repaired_on_open(open_kb, articles, tmp_path):
    kb = open_kb()
    kb.sync([articles])
    generation = kb.store.generation()
    kb.close()
    for n in range(4):
        (articles / f"new{n}.md").write_text(f"# New article {n}\n\nFresh content number {n} about zebras.\n")
    (articles / "shipping.md").unlink()
    script = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = [{str(REPO)!r}, {str(Path(__file__).parent)!r}]
        import knowledge.ingest
        from kb_doubles import HashEmbedder
        from knowledge.base import KnowledgeBase
        from knowledge.settings import KnowledgeSettings
        knowledge.ingest.BATCH_CHUNKS = 1
        class Crashing(HashEmbedder):
            def encode(self, texts):
                if any("New article 2" in t for t in texts):
                    os._exit(3)  # no cleanup, no finally: like a kill
                return super().encode(texts)
        kb = KnowledgeBase.open({str(tmp_path / 'kb.db')!r}, {str(tmp_path / 'index')!r}, KnowledgeSettings(), Crashing())
        kb.sync([{str(articles)!r}])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert VectorIndex.load(tmp_path / "index").generation == generation  # the file was never half-switched
    kb = open_kb()
    assert kb.store.generation() > generation
    assert_consistent(kb)  # rebuilt from stored vectors on open
    assert doc_ids(kb.search("Fresh content number 1 zebras", k=1, mode="keyword")) == ["new1.md"]
    assert doc_ids(kb.search("prepaid return label", k=1)) == ["returns.md"]
    report = kb.sync([articles])
    assert (report.added, report.removed) == (2, 1)
    assert_consistent(kb)


def test_corrupt_or_stale_index_file_is_rebuilt_without_re_embedding(open_kb, articles, tmp_path):
    kb = open_kb()
    kb.sync([articles])
    expected = doc_ids(kb.search("prepaid return label", k=3))
    kb.close()
    (tmp_path / "index" / FILE_NAME).write_bytes(b"not an index")
    embedder = HashEmbedder()
    kb = open_kb(embedder)
    assert_consistent(kb)
    assert embedder.calls == 0  # vectors came from the database
    assert doc_ids(kb.search("prepaid return label", k=3)) == expected


def test_large_base_gets_an_approximate_index_that_tracks_updates(open_kb, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()
    for n in range(120):
        (folder / f"doc{n:03}.md").write_text(f"# Topic {n}\n\n{words[n % 13]} {words[n % 7]} item {n} text.\n")
    kb = open_kb(exact_max_vectors=50, ann_recall=0.9)
    kb.sync([folder])
    stats = kb.stats()
    assert stats.index_kind == "ivf" and stats.index_recall >= 0.9 and stats.nprobe >= 1
    query = f"Topic 42\n{words[42 % 13]} {words[42 % 7]} item 42 text."  # exactly the chunk's embedded text
    assert doc_ids(kb.search(query, k=1, mode="dense")) == ["doc042.md"]
    (folder / "doc042.md").unlink()
    kb.sync([folder])
    assert kb.index.kind == "ivf"
    assert "doc042.md" not in doc_ids(kb.search(query, k=10, mode="dense"))
    assert_consistent(kb)


def test_searches_from_threads_while_syncing(open_kb, articles):
    kb = open_kb()
    kb.sync([articles])

    def ask(n):
        hits = kb.search("prepaid return label refund" if n % 2 else "password reset link", k=3)
        answer = kb.answer("how do refunds work")
        return hits[0].doc_id, answer.title

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask, n) for n in range(200)]
        for n in range(5):
            (articles / f"extra{n}.md").write_text(f"# Extra {n}\n\nMore words about topic {n}.\n")
            kb.sync([articles])
        results = [f.result() for f in futures]
    assert {r[0] for r in results} <= {"returns.md", "password.html"}
    assert_consistent(kb)


def test_only_http_and_relative_article_links_are_kept_with_a_warning_naming_the_file(open_kb, tmp_path):
    from knowledge.documents import safe_url

    folder = tmp_path / "links"
    folder.mkdir()
    bad = {"js.md": "javascript:alert(document.cookie)", "case.md": "JaVaScRiPt:alert(1)",
           "tab.md": "java\tscript:alert(1)", "data.md": "data:text/html,<script>alert(1)</script>",
           "vb.md": "vbscript:msgbox", "entity.md": "javascript&colon;alert(1)", "nohost.md": "https:///x"}
    good = {"abs.md": "https://shop.example/help", "rel.md": "/help/returns", "page.md": "returns.html#top"}
    for name, url in {**bad, **good}.items():
        (folder / name).write_text(f"---\ntitle: {name}\nurl: {json.dumps(url)}\n---\nReturns take 30 days.\n")
    kb = open_kb()
    report = kb.sync([folder])
    assert report.skipped == [] and report.added == len(bad) + len(good)  # every article kept
    urls = {d.id: d.url for d in kb.documents()}
    assert {name: urls[name] for name in bad} == {name: "" for name in bad}
    assert {name: urls[name] for name in good} == good
    assert sorted(Path(f).name for f, _ in report.warnings) == sorted(bad)
    assert all("dropped" in why for _, why in report.warnings) and "warnings 7" in report.summary()
    assert not safe_url(" https://x.example") and safe_url("")
