"""The conversation log on both engines (SQLite and a real PostgreSQL server, see tests/conftest.py): tokens,
redacted turns with their decision, flags, feedback, handoffs; the refusal of a turn saved over a newer state;
the upgrade of a log made before versioned migrations."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.dialogue.conversations import ConversationLog, ConversationMoved, ForeignConversation, UnknownConversation
from bot.dialogue.router import Decision, QuickReply, Reply, Source
from core.engine import open_database
from training.redact import Redactor
from tests.support.waiting import wait_until

FIXTURE = Path(__file__).parents[1] / "fixtures" / "databases" / "bot_v0.db"
TABLES = ("conversations", "turns", "feedback", "handoffs", "flags")


@pytest.fixture
def opened(db_location):
    """Opens the location (more than once: another worker's connection); closes them all after the test."""
    dbs = []

    def open_one():
        dbs.append(open_database(db_location))
        return dbs[-1]

    yield open_one
    for db in dbs:
        db.close()


@pytest.fixture
def log(opened):
    return ConversationLog(opened(), Redactor())


def records(db, sql: str, args=()) -> list[dict]:
    """Rows as dicts on either engine."""
    cur = db.execute(sql, args)
    return [dict(zip([c[0] for c in cur.description], r)) for r in cur.fetchall()]


def row(db, table: str, key) -> dict:
    return records(db, f"select * from {table} where id = ?", [key])[0]


def reply(route="template", flags=(), answer="ok"):
    decision = Decision(route=route, reason="because", intent="track_order", confidence=0.9,
                        alternatives=(("track_order", 0.9),), sources=(Source("T", "https://u", 0.8),),
                        model_version="v1", latency_ms=3.2, flags=flags)
    return Reply(answer, decision, (QuickReply("Talk to a person", "/handoff"),))


def test_turn_is_stored_redacted_with_the_whole_decision(log):
    convo, token = log.new()
    turn = log.record_turn(convo, "mail me at jo@example.com", reply(answer="Sent to jo@example.com"), token)
    stored = row(log.db, "turns", turn)
    assert stored["message"] == "mail me at [EMAIL]" and stored["answer"] == "Sent to [EMAIL]"
    decision = json.loads(stored["decision"])
    assert decision["route"] == "template" and decision["sources"][0]["url"] == "https://u"
    assert decision["latency_ms"] == 3.2 and decision["model_version"] == "v1"
    assert log.history(convo.id)[0]["quick_replies"] == [{"label": "Talk to a person", "value": "/handoff"}]


def test_a_turn_saved_over_a_newer_state_is_refused_and_writes_nothing(opened):
    """Two server processes read the same conversation; the second to save must answer again from the first's."""
    log = ConversationLog(opened(), Redactor())
    other = ConversationLog(opened(), Redactor())  # another worker's connection
    convo, token = log.new()
    log.record_turn(convo, "hi", reply(), token)
    mine, theirs = log.open(convo.id, token), other.open(convo.id, token)
    theirs.pending = {"intent": "track_order", "variable": "order_id"}
    other.record_turn(theirs, "track my order", reply())
    mine.failures = 1
    with pytest.raises(ConversationMoved):
        log.record_turn(mine, "something else", reply(route="fallback"))
    assert [t["message"] for t in log.history(convo.id)] == ["hi", "track my order"]
    again = log.open(convo.id, token)
    assert again.pending == {"intent": "track_order", "variable": "order_id"} and again.failures == 0
    log.record_turn(again, "something else", reply(route="fallback"))  # from the newer state: saved
    assert row(log.db, "conversations", convo.id)["turns"] == 3


def test_open_checks_the_token(log):
    convo, token = log.new()
    log.record_turn(convo, "hi", reply(), token)
    assert log.open(convo.id, token).id == convo.id
    with pytest.raises(ForeignConversation):
        log.open(convo.id, "not-the-token")
    with pytest.raises(ForeignConversation):
        log.open(convo.id, None)
    with pytest.raises(UnknownConversation):
        log.open("nope", token)
    assert token not in json.dumps(records(log.db, "select * from conversations"))


def test_state_round_trips_and_personal_slots_stay_in_memory(log):
    convo, token = log.new()
    convo.slots.update(order_id="AB12345", email="jo@example.com")
    convo.pending, convo.failures = {"intent": "x", "variable": "y"}, 2
    log.record_turn(convo, "hi", reply(), token)
    stored = row(log.db, "conversations", convo.id)
    assert json.loads(stored["slots"]) == {"order_id": "AB12345"}
    again = log.open(convo.id, token)
    assert again.slots == {"order_id": "AB12345", "email": "jo@example.com"}
    assert (again.pending, again.failures) == ({"intent": "x", "variable": "y"}, 2)
    fresh = ConversationLog(log.db, Redactor())  # another process: the e-mail is not known
    assert fresh.open(convo.id, token).slots == {"order_id": "AB12345"}


def test_flags_handoffs_and_release(log):
    convo, token = log.new()
    log.record_turn(convo, "??", reply("fallback", ("low_confidence", "fallback")), token)
    convo.handoff = True
    turn = log.record_turn(convo, "??", reply("handoff", ("handoff",)))
    kinds = [r["kind"] for r in records(log.db, "select kind from flags order by id")]
    assert kinds == ["low_confidence", "fallback", "handoff"]
    assert [h["turn_id"] for h in log.open_handoffs()] == [turn]
    assert log.release(convo.id) is True and log.open_handoffs() == []
    assert log.open(convo.id, token).handoff is False
    assert log.release(convo.id) is False


def test_feedback_flags_down_votes_and_checks_the_turn(log):
    convo, token = log.new()
    turn = log.record_turn(convo, "hi", reply(), token)
    log.feedback(convo.id, turn, "up")
    log.feedback(convo.id, turn, "down", "wrong, call +44 20 7946 0958")
    assert [r["kind"] for r in records(log.db, "select kind from flags")] == ["negative_feedback"]
    assert records(log.db, "select comment from feedback order by id")[1]["comment"] == "wrong, call [PHONE]"
    with pytest.raises(UnknownConversation):
        log.feedback(convo.id, turn + 1, "up")
    assert log.stats()["feedback"] == {"up": 1, "down": 1}


def test_a_turn_with_flags_and_a_handoff_writes_every_row(log):
    """The turn, the conversation's new state, each flag and the handoff: on PostgreSQL all of them come from one
    statement, so every column is checked, on both engines."""
    convo, token = log.new(customer="c-hash")
    convo.handoff, convo.failures, convo.pending, convo.slots = True, 2, {"intent": "track_order"}, {"order": "123"}
    turn = log.record_turn(convo, "??", reply("handoff", ("low_confidence", "handoff")), token)
    state = row(log.db, "conversations", convo.id)
    assert (state["turns"], state["handoff"], state["failures"], state["customer_hash"]) == (1, 1, 2, "c-hash")
    assert json.loads(state["pending"]) == {"intent": "track_order"} and json.loads(state["slots"]) == {"order": "123"}
    assert row(log.db, "turns", turn)["conversation_id"] == convo.id
    flags = records(log.db, "select turn_id, conversation_id, kind, detail from flags order by id")
    assert flags == [{"turn_id": turn, "conversation_id": convo.id, "kind": k, "detail": "because"}
                     for k in ("low_confidence", "handoff")]
    assert records(log.db, "select conversation_id, turn_id, reason from handoffs") == [
        {"conversation_id": convo.id, "turn_id": turn, "reason": "because"}]
    second = log.record_turn(log.open(convo.id, token), "still there?", reply())
    assert row(log.db, "conversations", convo.id)["turns"] == 2 and second > turn
    assert len(records(log.db, "select id from flags")) == 2  # a turn without flags adds none


def test_on_postgresql_a_turn_is_one_round_trip(postgres_url, monkeypatch):
    """Reading a conversation is one statement and recording a turn another, each its own transaction: no BEGIN
    or COMMIT of their own, no ping of a connection just used."""
    import psycopg

    db = open_database(postgres_url)
    try:
        log = ConversationLog(db, Redactor())
        sent = []  # the first word of each statement, and "begin" for each transaction opened
        execute, transaction = psycopg.Cursor.execute, psycopg.Connection.transaction

        def counted_execute(cursor, sql, *args, **kwargs):
            sent.append(str(sql).split()[0].lower())
            return execute(cursor, sql, *args, **kwargs)

        def counted_transaction(conn, *args, **kwargs):
            sent.append("begin")
            return transaction(conn, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
        monkeypatch.setattr(psycopg.Connection, "transaction", counted_transaction)
        convo, token = log.new()
        log.record_turn(convo, "hi", reply("handoff", ("handoff",)), token)
        log.record_turn(log.open(convo.id, token), "and?", reply())
        assert sent == ["with", "select", "with"]
        assert log.stats()["turns"] == 2 and log.open_handoff_count() == 1
    finally:
        db.close()


def test_on_postgresql_a_dropped_idle_connection_is_replaced(postgres_url, monkeypatch):
    """The server ended the pooled connection while it sat idle (a restart, a proxy's timeout): the next call
    pings it, gets a new one, and works."""
    import core.engine

    monkeypatch.setattr(core.engine, "PING_AFTER_IDLE", 0.0)
    db, other = open_database(postgres_url), open_database(postgres_url)
    try:
        log = ConversationLog(db, Redactor())
        convo, token = log.new()
        log.record_turn(convo, "hi", reply(), token)
        ended = other.execute("select count(pg_terminate_backend(pid)) from pg_stat_activity"
                              " where datname = current_database() and pid <> pg_backend_pid()").fetchone()[0]
        assert ended >= 1
        assert log.open(convo.id, token).turns == 1
    finally:
        db.close()
        other.close()


def test_a_failed_write_leaves_nothing_half_written(log):
    convo, token = log.new()
    with pytest.raises(ValueError, match="unknown flag"):
        log.record_turn(convo, "hi", reply(flags=("bogus",)), token)
    assert log.stats()["turns"] == 0 and log.stats()["conversations"] == 0


def test_clarification_answers_count_the_questions_answered_by_a_pick(log):
    """A question whose next message is a quick reply was answered; one followed by typing, or by nothing, was not."""
    (picked, t1), (typed, t2), (left, t3) = (log.new() for _ in range(3))
    log.record_turn(picked, "parcel", reply("clarify"), t1)
    log.record_turn(picked, "/order_status", reply())
    log.record_turn(typed, "item", reply("clarify"), t2)
    log.record_turn(typed, "never mind", reply("fallback"))
    log.record_turn(left, "shipping", reply("clarify"), t3)
    log.record_turn(picked, "thanks", reply("smalltalk"))
    assert log.clarification_answers() == (3, 1)
    assert log.clarification_answers(limit=1) == (1, 0)  # the latest question only: left unanswered


def test_on_postgresql_a_turn_racing_another_waits_for_its_row_and_is_refused(postgres_url):
    """A real row-level guarantee: while another worker's transaction holds the conversation's row (its turn not
    yet committed), a turn read before it blocks, then sees the newer count and writes nothing. (SQLite has one
    writer per database: two transactions never hold the row at once.)"""
    opened = [open_database(postgres_url) for _ in range(3)]
    try:
        _race(ConversationLog(opened[0], Redactor()), opened[1], watcher=opened[2])
    finally:
        for db in opened:
            db.close()


def _race(log, other, watcher):
    """`watcher`: a third connection, that sees the racing turn wait for the row lock in pg_stat_activity."""
    convo, token = log.new()
    log.record_turn(convo, "hi", reply(), token)
    mine = log.open(convo.id, token)
    outcome = []
    with other.transaction():  # the other worker's turn, in flight
        other.execute("update conversations set turns = turns + 1 where id = ?", [convo.id])
        racing = threading.Thread(target=lambda: outcome.append(_try(log, mine)))
        racing.start()
        wait_until(lambda: waiting_for_a_lock(watcher) or outcome, 30, "the racing turn to wait for the row lock")
        assert racing.is_alive() and not outcome  # waiting for the row lock, not writing over it
    racing.join(timeout=30)
    assert isinstance(outcome[0], ConversationMoved)
    assert [t["message"] for t in log.history(convo.id)] == ["hi"]


def waiting_for_a_lock(db) -> int:
    """How many connections to this database are waiting for a lock held by another transaction."""
    return db.execute("select count(*) from pg_stat_activity where datname = current_database()"
                      " and wait_event_type = 'Lock'").fetchone()[0]


def _try(log, convo):
    try:
        return log.record_turn(convo, "racing", reply())
    except ConversationMoved as e:
        return e


def test_a_log_made_before_migrations_upgrades_in_place_losing_nothing(tmp_path):
    path = tmp_path / "bot.db"
    shutil.copy(FIXTURE, path)

    def dump():
        with sqlite3.connect(path) as c:
            return {t: c.execute(f"select * from {t} order by rowid").fetchall() for t in TABLES}

    before = dump()
    assert [len(before[t]) for t in TABLES] == [3, 5, 2, 1, 5]
    db = open_database(str(path))
    try:
        log = ConversationLog(db, Redactor())
        assert dump() == before
        assert db.execute("select version from schema_version where component = 'bot.dialogue.conversations'").fetchone()[0] == 1
        convo_id = before["turns"][0][1]
        assert [t["message"] for t in log.history(convo_id)] == ["where is my parcel 123", "how long does shipping take"]
        assert log.stats()["feedback"] == {"up": 1, "down": 1} and log.open_handoff_count() == 1
        convo, token = log.new()
        assert log.record_turn(convo, "a new one", reply(), token) == 6  # ids continue after the old rows
        log.probe()
    finally:
        db.close()
