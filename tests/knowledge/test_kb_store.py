"""The knowledge store on both engines: the same calls, the same rows, keyword search by FTS5 on SQLite and by
tsvector/ts_rank_cd on PostgreSQL (a real server, see tests/conftest.py); migrations and the upgrade of a
database made before them."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from kb_doubles import HashEmbedder, write_articles

from knowledge.base import KnowledgeBase
from knowledge.chunker import Chunk
from knowledge.documents import Document
from core.engine import migrate, open_database
from knowledge.settings import KnowledgeSettings
from knowledge.store import MIGRATIONS, KnowledgeStore, Write
from tests.support.postgres import ENGINES

FIXTURE = Path(__file__).parents[1] / "fixtures" / "databases" / "knowledge_v0.db"


@pytest.fixture(params=ENGINES)
def location(request, tmp_path) -> str:
    """Where a new store lives: an SQLite file, or a new database on the test PostgreSQL server."""
    return str(tmp_path / "kb.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def store(location):
    opened = KnowledgeStore(open_database(location))
    yield opened
    opened.close()


def write(doc_id: str, title: str, sections: list[tuple[str, str]], tags=(), title_vector=True) -> Write:
    chunks = [Chunk(i, heading, text) for i, (heading, text) in enumerate(sections)]
    vectors = HashEmbedder(8).encode([f"{title} {h} {t}" for h, t in sections])
    return Write(Document(doc_id, title, f"https://help.example.com/{doc_id}", tuple(tags), ()), f"hash-{doc_id}",
                 f"{doc_id}.md", f"file-{doc_id}", 1700000000.5, chunks, vectors,
                 HashEmbedder(8).encode([title])[0] if title_vector else None)


HELP = [
    write("returns", "Returns and refunds", [("", "You can return any item within 30 days for a full refund."),
                                             ("Returns > Labels", "Print the prepaid label from your account page.")],
          tags=["orders"]),
    write("shipping", "Shipping times", [("Costs", "Standard shipping is free on orders over 50 euros.")],
          tags=["delivery"]),
    write("gift", "Gift cards", [("", "Gift cards never expire and can be combined with any payment.")],
          title_vector=False),
]


def test_rows_read_back_as_written(store):
    assert store.generation() == 0 and store.counts() == (0, 0)
    assert store.write(HELP) == 1
    docs = store.documents()
    assert list(docs) == ["gift", "returns", "shipping"]
    assert docs["returns"].tags == ("orders",) and docs["returns"].chunks == 2 and docs["returns"].updated == 1700000000.5
    assert store.counts() == (3, 4)
    ids = store.chunk_ids()
    assert len(ids) == 4 and list(ids) == sorted(ids)
    chunks = store.chunks(ids)
    by_text = {c.text: c for c in chunks.values()}
    label = by_text["Print the prepaid label from your account page."]
    assert (label.doc_id, label.title, label.heading) == ("returns", "Returns and refunds", "Returns > Labels")
    np.testing.assert_array_equal(label.vector, HELP[0].vectors[1])
    batches = list(store.vectors(batch=3))
    assert [len(b[0]) for b in batches] == [3, 1]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.stack([chunks[i].vector for i in ids]))
    doc_ids, titles = store.titles()
    assert doc_ids == ["returns", "shipping"] and titles.shape == (2, 8)
    first = by_text["You can return any item within 30 days for a full refund."]
    assert store.doc_chunk_ids(["returns", "gift"]) == {"returns": [first.id, label.id], "gift": [by_text[
        "Gift cards never expire and can be combined with any payment."].id]}
    assert [(d, h) for d, h, _ in store.sections()] == [("returns", "Returns > Labels"), ("shipping", "Costs")]
    assert list(store.chunk_ids(["delivery"])) == store.doc_chunk_ids(["shipping"])["shipping"]


def test_keyword_search_stems_ranks_filters_and_leaves_titles_out_when_asked(store):
    store.write(HELP)
    docs = {c.id: c.doc_id for c in store.chunks(store.chunk_ids()).values()}

    def found(terms, **kwargs):
        return [docs[i] for i, _ in store.keyword(terms, 10, **kwargs)]

    hits = store.keyword(["refunds", "label"], 10)  # stemmed: "refunds" finds "refund"
    assert [docs[i] for i, _ in hits] and {docs[i] for i, _ in hits} == {"returns"}
    assert all(score > 0 for _, score in hits) and [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert found(["shipping"]) == ["shipping"]
    assert found(["gift"]) == ["gift"]  # title and text
    assert found(["times"]) == ["shipping"]  # a word of the title only
    assert found(["times"], without_title=True) == []
    assert found(["label"], without_title=True) == ["returns"]
    assert found(["shipping", "refund"], tags=["delivery"]) == ["shipping"]
    assert found(["nothing", "matches"]) == [] and store.keyword([], 10) == []
    assert store.keyword(['quo"te'], 10) == []  # quotes in a term are not syntax


def test_a_word_in_the_title_outranks_the_same_word_in_the_text(store):
    store.write([write("lockers", "Parcel lockers", [("", "Pick it up at any time of day.")]),
                 write("hours", "Opening hours", [("", "The parcel desk opens at nine.")])])
    docs = {c.id: c.doc_id for c in store.chunks(store.chunk_ids()).values()}
    assert [docs[i] for i, _ in store.keyword(["parcel"], 10)] == ["lockers", "hours"]


def test_rewrite_and_remove_replace_the_keyword_index_too(store):
    store.write(HELP)
    changed = write("shipping", "Shipping times", [("Costs", "Express shipping costs 9.95 euros.")], tags=["delivery"])
    assert store.write([changed], remove=["gift"]) == 2
    assert store.counts() == (2, 3)
    assert store.keyword(["free"], 10) == [] and store.keyword(["gift"], 10) == []
    [(chunk_id, _)] = store.keyword(["express"], 10)
    assert store.chunks([chunk_id])[chunk_id].text == "Express shipping costs 9.95 euros."
    assert store.titles()[0] == ["returns", "shipping"]


def engine_error(location: str, sqlite_error: type, postgresql_error: str) -> type:
    """What a failing statement raises on this engine: sqlite3's error, or psycopg's (`psycopg.errors.NAME`)."""
    if location.startswith("postgresql"):
        import psycopg

        return getattr(psycopg.errors, postgresql_error)
    return sqlite_error


def test_a_failed_write_changes_nothing(store, location):
    store.write(HELP)
    before = (store.documents(), store.counts(), store.generation())
    duplicate = engine_error(location, sqlite3.IntegrityError, "UniqueViolation")
    with pytest.raises(duplicate, match="UNIQUE constraint failed: kb_documents.id|kb_documents_pkey"):
        store.write([write("new", "New", [("", "brand new words")]), write("new", "New", [("", "again")])])
    assert (store.documents(), store.counts(), store.generation()) == before
    assert store.keyword(["brand"], 10) == []


def test_meta_and_file_hash(store):
    store.set_meta("calibration", "{}")
    store.set_meta("calibration", '{"a": 1}')  # replaced, not doubled
    assert store.get_meta("calibration") == '{"a": 1}' and store.get_meta("missing") is None
    store.write(HELP[:1])
    store.set_file_hash(["returns"], "moved/returns.md", "new-hash")
    doc = store.documents()["returns"]
    assert (doc.file, doc.file_hash, store.generation()) == ("moved/returns.md", "new-hash", 1)


def test_migrations_run_once_and_reopening_keeps_everything(location):
    first = KnowledgeStore(open_database(location))
    first.write(HELP)
    first.close()
    again = KnowledgeStore(open_database(location))
    try:
        assert again.db.execute("SELECT component, version FROM schema_version").fetchall() == [
            ("knowledge", len(MIGRATIONS))]
        assert again.counts() == (3, 4) and again.generation() == 1
    finally:
        again.close()


def test_migrate_applies_only_the_steps_a_database_lacks_in_order(location):
    db = open_database(location)
    calls = []
    first = {"sqlite": "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)",
             "postgresql": "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)"}
    second = {engine: lambda db: (calls.append(1), db.execute("INSERT INTO t VALUES (2)"))
              for engine in ("sqlite", "postgresql")}
    try:
        assert migrate(db, "test", [first]) == 0
        assert migrate(db, "test", [first, second]) == 1 and calls == [1]
        assert migrate(db, "test", [first, second]) == 2 and calls == [1]  # nothing runs twice
        assert [r[0] for r in db.execute("SELECT a FROM t ORDER BY a").fetchall()] == [1, 2]
        broken = {engine: "INSERT INTO t VALUES (3); SELECT * FROM no_such_table" for engine in ("sqlite", "postgresql")}
        with pytest.raises(engine_error(location, sqlite3.OperationalError, "UndefinedTable"), match="no_such_table"):
            migrate(db, "test", [first, second, broken])
        assert [r[0] for r in db.execute("SELECT a FROM t ORDER BY a").fetchall()] == [1, 2]  # all or nothing
        assert db.execute("SELECT version FROM schema_version WHERE component = 'test'").fetchone()[0] == 2
    finally:
        db.close()


def test_the_base_syncs_and_answers_on_either_engine(location, tmp_path):
    articles = write_articles(tmp_path / "articles")
    kb = KnowledgeBase.open(location, tmp_path / "index", KnowledgeSettings(), HashEmbedder())
    try:
        report = kb.sync([articles])
        assert report.added == 6 and report.total_chunks == 10
        assert kb.search("how long does a refund take", k=1, mode="keyword")[0].doc_id == "returns.md"
        assert kb.search("how long does a refund take", k=1)[0].doc_id == "returns.md"
        assert kb.sync([articles]).unchanged == 6
    finally:
        kb.close()


def dump(path: Path) -> dict[str, list]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'kb_%' "
                                             "AND name NOT LIKE 'kb_fts_%' ORDER BY name")]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    finally:
        conn.close()


def test_a_database_made_before_migrations_upgrades_in_place_losing_nothing(tmp_path):
    path = tmp_path / "kb.db"
    shutil.copy(FIXTURE, path)
    before = dump(path)
    assert before["kb_documents"] and before["kb_chunks"] and before["kb_fts"] and "schema_version" not in {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    kb = KnowledgeBase.open(path, tmp_path / "index", KnowledgeSettings(), HashEmbedder())
    try:
        assert kb.store.db.execute("SELECT version FROM schema_version").fetchone()[0] == len(MIGRATIONS)
        assert dump(path) == before
        assert kb.calibration is not None  # the stored calibration was read, not refitted
        assert kb.search("how long does a refund take", k=1)[0].doc_id == "returns.md"
        assert kb.sync([write_articles(tmp_path / "articles")]).unchanged == 6  # nothing embedded again
    finally:
        kb.close()
    assert len(before["kb_chunks"]) == 10
