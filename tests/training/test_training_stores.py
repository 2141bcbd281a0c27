"""The training package's stores on both engines (SQLite and a real PostgreSQL server, see tests/conftest.py):
examples and imports, intent proposals, the retrain log; their migrations and the upgrade of a database made
before them; PostgreSQL's connection faults recognised as storage faults."""

from __future__ import annotations

import shutil
import sqlite3
import types
from pathlib import Path

import pytest
from import_doubles import FORMATS_DIR

from core.sqlite import StorageError, is_storage_fault
from core.engine import open_database
from training.importer import import_transcripts
from training.runs import RunLog
from training.store import Example, ExampleStore, ProposalStore
from tests.support.ports import free_port
from tests.support.postgres import ENGINES

FIXTURE = Path(__file__).parents[1] / "fixtures" / "databases" / "training_v0.db"
TABLES = ("examples", "imports", "intent_proposals", "retrain_runs")


@pytest.fixture(params=ENGINES)
def location(request, tmp_path) -> str:
    """Where the stores live: an SQLite file, or a new database on the test PostgreSQL server."""
    return str(tmp_path / "bot.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def db(location):
    opened = open_database(location)
    yield opened
    opened.close()


SEED = [Example("Where is my order?", "order_status"), Example("I want a refund", "refund", "file", provenance="f.csv:2"),
        Example("hello there", None, "transcript", provenance="t.csv:3"),
        Example("can I pay with paypal", None, "transcript", provenance="t.csv:4")]


def test_examples_read_back_as_written(db):
    store = ExampleStore(db)
    result = store.add(SEED + [Example("where is my order", "refund"), Example("  !? ", "refund")])
    assert (result.added, result.duplicates) == (4, 1) and "stored as order_status" in result.conflicts[0]
    assert [e.text for e in store.examples()] == ["Where is my order?", "I want a refund"]
    assert [e.text for e in store.examples(labelled=False)] == ["hello there", "can I pay with paypal"]
    assert len(store.examples(labelled=None)) == 4 and store.examples(split="test") == []
    refund = store.find("i want a REFUND!")
    assert (refund.intent, refund.source, refund.provenance, refund.split) == ("refund", "file", "f.csv:2", "")
    assert store.counts() == {"order_status": 1, "refund": 1}
    assert store.has_provenance("t.csv:3") and not store.has_provenance("t.csv:9")
    assert store.has_text("HELLO there.") and not store.has_text("goodbye")
    ids = store.ids_for(["hello there", "can I pay with paypal", "unknown"])
    assert set(ids) == {"hello there", "can i pay with paypal"}
    assert [e.text for e in store.unlabelled()] == ["can I pay with paypal", "hello there"]  # newest first
    assert [e.text for e in store.unlabelled(exclude=[ids["can i pay with paypal"]], limit=1)] == ["hello there"]
    assert store.count_since(["transcript", "file"], 0.0) == 1 and store.count_since(["seed"], 4e9) == 0

    assert store.label([ids["hello there"]], "greeting", "review") == 1
    assert store.find("hello there").label_method == "review"
    assert store.rename_intent("greeting", "hello") == 1 and store.counts()["hello"] == 1
    with db.transaction():
        store.relabel(ids["hello there"], None, "")
        assert store.remove([ids["can i pay with paypal"], 999999]) == 1
    assert store.find("hello there").intent is None and store.find("can I pay with paypal") is None


def test_reviewed_examples_and_the_state_that_says_they_changed(db):
    """The memory of reviewed answers reads the reviewed examples, and asks every second whether they changed."""
    store = ExampleStore(db)
    store.add(SEED)
    before = store.state_of(("review",))
    store.add([Example("where is my parcel", "order_status", "review", provenance="turn:7")])
    added = store.state_of(("review",))
    assert added != before and [e.provenance for e in store.labelled_from(("review",))] == ["turn:7"]
    [reviewed] = store.labelled_from(("review",))
    assert store.labelled_from(("review",), after_id=reviewed.id) == []
    store.relabel(reviewed.id, "refund", "review-corrected")
    assert store.state_of(("review",)) != added  # relabelled
    with db.transaction():
        store.remove([reviewed.id])
    assert store.state_of(("review",)) == before == (0, 0, 0)


def test_the_memory_also_holds_requests_labelled_by_accepting_an_intent_proposal(db):
    from bot.review.memory import settled, settled_state

    store = ExampleStore(db)
    store.add([Example("parcel stuck in customs", None, "transcript", provenance="t.csv:2"),
               Example("customs fee question", None, "transcript", provenance="t.csv:3"),
               Example("where is my order", "track_order", "seed")])
    before = settled_state(store)
    ids = [e.id for e in store.examples(labelled=False)]
    ProposalStore(db).label_members(types.SimpleNamespace(members=ids[:1]), "customs")  # accepting a proposal
    assert settled_state(store) != before
    assert [(e.text, e.intent) for e in settled(store)] == [("parcel stuck in customs", "customs")]


def test_a_sample_per_intent_takes_each_intents_first_examples(db):
    """What the review queue's suggested order compares new messages with: at most N examples of every intent."""
    store = ExampleStore(db)
    store.add([Example(f"refund question {i}", "refund", "seed") for i in range(4)]
              + [Example(f"parcel question {i}", "order_status", "seed") for i in range(2)]
              + [Example("unlabelled message", None, "transcript")])
    sample = store.sample_per_intent(3)
    assert sorted(e.text for e in sample) == ["parcel question 0", "parcel question 1", "refund question 0",
                                              "refund question 1", "refund question 2"]


def test_the_test_split_and_the_import_records(db):
    store = ExampleStore(db)
    store.add([Example(f"question number {i}", "a" if i < 8 else "b") for i in range(12)])
    assert store.carve_test_split(0.25, seed=1) == 3  # 2 of intent a's 8, 1 of b's 4
    assert {e.intent for e in store.examples(split="test")} == {"a", "b"}
    with db.transaction():
        first = store.record_import("t.csv", "ab" * 32, "csv", '{"added": 2}')
        second = store.record_import("u.json", "", "abcd", "{}")
    assert second > first
    imports = store.imports()
    assert [(i["id"], i["path"], i["format"], i["report"]) for i in imports] == [
        (first, "t.csv", "csv", '{"added": 2}'), (second, "u.json", "abcd", "{}")]
    assert imports[0]["sha256"] == "ab" * 32 and imports[0]["created"] > 1.7e9


def test_a_failed_add_stores_nothing(db):
    store = ExampleStore(db)
    with pytest.raises(ValueError, match="unknown example source"):
        store.add([Example("fine", "a"), Example("bad", "a", source="nowhere")])
    assert store.examples(labelled=None) == []


def test_proposals_read_back_and_label_their_members(db):
    store, proposals = ExampleStore(db), ProposalStore(db)
    store.add(SEED)
    ids = store.ids_for(["hello there", "can I pay with paypal"])
    with db.transaction():
        made = proposals.replace_open([("greeting", [ids["hello there"]], ["hello there"]),
                                       ("paying", [ids["can i pay with paypal"]], ["can I pay with paypal"])])
    assert [p.name for p in proposals.proposals()] == ["greeting", "paying"] and made[1] > made[0]
    with db.transaction():
        proposals.update(made[1], status="dropped")
        assert proposals.label_members(proposals.get(made[0]), "greeting") == [ids["hello there"]]
        proposals.update(made[0], status="accepted", intent="greeting")
    accepted = proposals.get(made[0])
    assert (accepted.status, accepted.intent, accepted.members, accepted.examples) == (
        "accepted", "greeting", (ids["hello there"],), ("hello there",))
    assert store.find("hello there").label_method == "cluster"
    assert proposals.dropped_members() == {ids["can i pay with paypal"]}
    assert proposals.proposals("open") == [] and len(proposals.proposals(None)) == 2
    with db.transaction():
        assert proposals.replace_open([("again", [1], ["x"])]) and len(proposals.proposals(None)) == 3
    with pytest.raises(ValueError, match="no intent proposal 999"):
        proposals.get(999)


def test_the_retrain_log(db):
    log = RunLog(db)
    first = log.start("cli")
    log.finish(first, "promoted", "v2", "v1", {"examples": 12}, "better")
    second = log.start("schedule")
    with db.transaction():  # a run left marked running by a process that is gone
        db.execute("update retrain_runs set pid = ? where id = ?", [2 ** 22 + 1, second])
    runs = log.runs()
    assert [r["id"] for r in runs] == [second, first] and runs[0]["outcome"] == "killed"
    assert (runs[1]["outcome"], runs[1]["candidate"], runs[1]["base"], runs[1]["counts"], runs[1]["detail"]) == (
        "promoted", "v2", "v1", {"examples": 12}, "better")
    assert runs[1]["ended"] >= runs[1]["started"] and log.runs(limit=1)[0]["id"] == second


def test_reopening_keeps_everything_and_records_each_component(location):
    db = open_database(location)
    ExampleStore(db).add(SEED)
    RunLog(db).start("cli")
    ProposalStore(db)
    db.close()
    db = open_database(location)
    try:
        assert len(ExampleStore(db).examples(labelled=None)) == 4 and len(RunLog(db).runs()) == 1
        ProposalStore(db)
        versions = dict(db.execute("select component, version from schema_version").fetchall())
        assert versions == {"training.examples": 1, "training.proposals": 1, "training.runs": 1}
    finally:
        db.close()


def test_transcripts_import_into_either_engine(db):
    store = ExampleStore(db)
    report = import_transcripts(FORMATS_DIR / "twcs_sample" / "sample.csv", "twitter", store, cluster=False)
    assert report.added == 27 and len(store.unlabelled()) == 27 and len(store.imports()) == 1
    assert import_transcripts(FORMATS_DIR / "twcs_sample" / "sample.csv", "twitter", store, cluster=False).added == 0


def dump(path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"select * from {t} order by id").fetchall() for t in TABLES}


def test_a_database_made_before_migrations_upgrades_in_place_losing_nothing(tmp_path):
    path = tmp_path / "bot.db"
    shutil.copy(FIXTURE, path)
    before = dump(path)
    assert [len(before[t]) for t in TABLES] == [5, 1, 2, 2] and "schema_version" not in {
        r[0] for r in sqlite3.connect(path).execute("select name from sqlite_master")}
    db = open_database(str(path))
    try:
        store, proposals, log = ExampleStore(db), ProposalStore(db), RunLog(db)
        assert dump(path) == before
        assert store.find("is it gift wrapped").split == "test" and store.imports()[0]["path"] == "t.csv"
        assert [p.name for p in proposals.proposals(None)] == ["paying", "greeting"]
        assert [r["trigger"] for r in log.runs()] == ["cli", "schedule"]
        assert store.add([Example("a new one", "refund")]).added == 1  # ids continue after the old rows
        assert store.find("a new one").id == 6
    finally:
        db.close()


def test_postgresql_connection_faults_are_storage_faults_and_sql_mistakes_are_not(postgres_url):
    import psycopg

    unreachable = open_database(f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=5")
    with pytest.raises(psycopg.OperationalError) as refused:
        unreachable.execute("select 1")
    unreachable.close()
    assert is_storage_fault(refused.value)
    assert "storage unavailable" in StorageError("reading", refused.value).reason

    db = open_database(postgres_url)
    try:
        ExampleStore(db).add(SEED)
        with pytest.raises(psycopg.errors.UndefinedColumn, match="no_such_column") as mistake:
            db.execute("select no_such_column from examples")
        assert not is_storage_fault(mistake.value)
        with pytest.raises(psycopg.errors.UniqueViolation, match="duplicate key") as duplicate:
            db.execute("insert into examples (text, norm, source) values ('x', 'hello there', 'seed')")
        assert not is_storage_fault(duplicate.value)
        # the server ends the connection in the middle of a transaction
        with pytest.raises(psycopg.OperationalError, match="terminating connection") as dropped:
            with db.transaction():
                db.execute("select pg_terminate_backend(pg_backend_pid())")
        assert is_storage_fault(dropped.value)
        assert len(ExampleStore(db).examples(labelled=None)) == 4  # the pool reconnects afterwards
    finally:
        db.close()


def test_sqlite_faults_are_still_told_apart(tmp_path):
    assert is_storage_fault(sqlite3.OperationalError("disk I/O error"))
    assert not is_storage_fault(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not is_storage_fault(ValueError("not a database error"))
