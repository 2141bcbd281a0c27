"""`run_bot.py db copy`: a bot's SQLite state moved into an empty database on a real PostgreSQL server, every table
verified by its row count; a conversation, the review queue, the analytics and the knowledge base readable there
and continuing where they were; a non-empty target refused, and a failed copy leaves the target as it was."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import run_bot
from bot.review.accounts import AccountStore
from bot.analytics.figures import Analytics
from bot.dialogue.conversations import ConversationLog
from bot.review.store import Filters, ReviewStore
from bot.dialogue.router import Decision, Reply
from knowledge.chunker import Chunk
from core.sqlite import connect
from knowledge.documents import Document, Section
from core.engine import open_database
from knowledge.store import KnowledgeStore, Write
from runtime_doubles import write_bot
from training.redact import Redactor
from training.store import Example, ExampleStore

FIXTURE = Path(__file__).parents[1] / "fixtures" / "databases" / "bot_v0.db"


@pytest.fixture
def state(tmp_path):
    """A bot whose state is main's bot_v0.db plus an account, examples and one knowledge article."""
    bot = write_bot(tmp_path / "bot")
    db_path = tmp_path / "state" / "supportbot.db"
    db_path.parent.mkdir()
    shutil.copy(FIXTURE, db_path)
    db = connect(db_path)
    AccountStore(db).add("alice", "reviewer", "a good password")
    ExampleStore(db).add([Example("where is my parcel", "track_order"), Example("refund please", "refund")])
    doc = Document("shipping.md", "Shipping times", "https://example.com/shipping", ("faq",),
                   (Section(("Abroad",), "Parcels abroad take five working days."),))
    KnowledgeStore(db).write([Write(doc, "h", "shipping.md", "fh", 1.0, [Chunk(0, "Abroad", doc.sections[0].text)],
                                    np.ones((1, 4), np.float32) / 2)])
    db.close()
    return ["--bot", str(bot), "--set", f'state_dir="{tmp_path / "state"}"'], db_path


def source_counts(db_path) -> dict[str, int]:
    with sqlite3.connect(db_path) as c:
        names = [n for (n,) in c.execute("select name from sqlite_master where type = 'table'")
                 if not n.startswith(("sqlite_", "kb_fts")) and n != "schema_version"]
        return {n: c.execute(f'select count(*) from "{n}"').fetchone()[0] for n in names}


def test_copy_moves_every_table_verified_and_the_bot_continues_on_postgresql(state, postgres_url, capsys):
    common, db_path = state
    assert run_bot.main(["db", "copy", "--to", postgres_url, *common]) == 0
    out = capsys.readouterr().out
    expected = source_counts(db_path)
    assert expected["turns"] == 5 and expected["kb_chunks"] == 1 and expected["accounts"] == 1
    for table, n in expected.items():
        assert f"  {table}: {n} rows, as in the source\n" in out
    assert "password" not in out.lower() and postgres_url not in out

    db = open_database(postgres_url)
    try:
        for table, n in expected.items():
            assert db.execute(f'select count(*) from "{table}"').fetchone()[0] == n, table
        log = ConversationLog(db, Redactor())
        convo_id = db.execute("select conversation_id from turns order by id limit 1").fetchone()[0]
        assert [t["message"] for t in log.history(convo_id)] == ["where is my parcel 123",
                                                                 "how long does shipping take"]
        convo, token = log.new()
        decision = Decision(route="fallback", reason="test", intent=None, confidence=0.1, flags=("fallback",))
        assert log.record_turn(convo, "something new", Reply("Sorry?", decision), token) == 6  # ids continue
        reviews = ReviewStore(db, 0)
        assert reviews.sync()["flags"] == 1 and [g["text"] for g in reviews.page(Filters(status="ignored")).groups] \
            == ["blorp!"]
        analytics = Analytics(db)
        assert analytics.refresh() == 1 and analytics.last_drift_retrain() == "2026-W01"  # only the new turn
        assert AccountStore(db).verify("alice", "a good password") is not None
        kb = KnowledgeStore(db)
        assert [cid for cid, _ in kb.keyword(["abroad"], 5)] == [1]
        assert kb.keyword(["shipping"], 5, without_title=True) == []  # the title is in `terms` only
    finally:
        db.close()


def test_a_target_with_rows_is_refused_and_left_as_it_was(state, postgres_url, capsys):
    common, db_path = state
    db = open_database(postgres_url)
    try:
        AccountStore(db).add("bob", "admin", "another password")
        assert run_bot.main(["db", "copy", "--to", postgres_url, *common]) == 2
        assert "not empty (accounts has 1 rows)" in capsys.readouterr().err
        assert [a.name for a in AccountStore(db).list()] == ["bob"] and not db.has_table("turns")
    finally:
        db.close()


def test_a_copy_that_fails_half_way_leaves_the_target_empty(state, postgres_url, monkeypatch):
    import bot.db_copy

    common, db_path = state
    real = bot.db_copy._copy_table

    def losing_rows(source, target, table):  # a copy that silently lost rows: the count check must stop it
        real(source, target, table)
        if table == "turns":
            target.execute("delete from turns where id = 5")

    monkeypatch.setattr(bot.db_copy, "_copy_table", losing_rows)
    with pytest.raises(RuntimeError, match="turns: 4 rows in the target, 5 in the source"):
        run_bot.main(["db", "copy", "--to", postgres_url, *common])
    db = open_database(postgres_url)
    try:
        assert not db.has_table("conversations") and not db.has_table("schema_version")
    finally:
        db.close()
    assert source_counts(db_path)["turns"] == 5


def test_without_a_target_or_a_source_it_says_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SUPPORTBOT_DATABASE_URL", raising=False)
    common = ["--bot", str(write_bot(tmp_path / "bot")), "--set", f'state_dir="{tmp_path / "state"}"']
    assert run_bot.main(["db", "copy", *common]) == 2
    assert "--to postgresql://" in capsys.readouterr().err
    assert run_bot.main(["db", "copy", "--to", "postgresql://nobody@127.0.0.1/none", *common]) == 2
    assert "no SQLite database" in capsys.readouterr().err
