"""The conversation log: tokens, redacted turns with their decision, flags, feedback, handoffs."""

from __future__ import annotations

import json

import pytest

from bot.conversations import ConversationLog, ConversationMoved, ForeignConversation, UnknownConversation
from bot.router import Decision, QuickReply, Reply, Source
from knowledge.database import connect
from training.redact import Redactor


@pytest.fixture
def log(tmp_path):
    return ConversationLog(connect(tmp_path / "db.sqlite"), Redactor())


def reply(route="template", flags=(), answer="ok"):
    decision = Decision(route=route, reason="because", intent="track_order", confidence=0.9,
                        alternatives=(("track_order", 0.9),), sources=(Source("T", "https://u", 0.8),),
                        model_version="v1", latency_ms=3.2, flags=flags)
    return Reply(answer, decision, (QuickReply("Talk to a person", "/handoff"),))


def test_turn_is_stored_redacted_with_the_whole_decision(log):
    convo, token = log.new()
    turn = log.record_turn(convo, "mail me at jo@example.com", reply(answer="Sent to jo@example.com"), token)
    row = log.db["turns"].get(turn)
    assert row["message"] == "mail me at [EMAIL]" and row["answer"] == "Sent to [EMAIL]"
    decision = json.loads(row["decision"])
    assert decision["route"] == "template" and decision["sources"][0]["url"] == "https://u"
    assert decision["latency_ms"] == 3.2 and decision["model_version"] == "v1"
    assert log.history(convo.id)[0]["quick_replies"] == [{"label": "Talk to a person", "value": "/handoff"}]


def test_a_turn_saved_over_a_newer_state_is_refused_and_writes_nothing(tmp_path):
    """Two server processes read the same conversation; the second to save must answer again from the first's."""
    log = ConversationLog(connect(tmp_path / "db.sqlite"), Redactor())
    other = ConversationLog(connect(tmp_path / "db.sqlite"), Redactor())  # another worker's connection
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
    assert log.db["conversations"].get(convo.id)["turns"] == 3


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
    assert token not in json.dumps(list(log.db["conversations"].rows))


def test_state_round_trips_and_personal_slots_stay_in_memory(log):
    convo, token = log.new()
    convo.slots.update(order_id="AB12345", email="jo@example.com")
    convo.pending, convo.failures = {"intent": "x", "variable": "y"}, 2
    log.record_turn(convo, "hi", reply(), token)
    stored = log.db["conversations"].get(convo.id)
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
    kinds = [r["kind"] for r in log.db["flags"].rows]
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
    assert [r["kind"] for r in log.db["flags"].rows] == ["negative_feedback"]
    assert list(log.db["feedback"].rows)[1]["comment"] == "wrong, call [PHONE]"
    with pytest.raises(UnknownConversation):
        log.feedback(convo.id, turn + 1, "up")
    assert log.stats()["feedback"] == {"up": 1, "down": 1}


def test_a_failed_write_leaves_nothing_half_written(log):
    convo, token = log.new()
    with pytest.raises(ValueError, match="unknown flag"):
        log.record_turn(convo, "hi", reply(flags=("bogus",)), token)
    assert log.db["turns"].count == 0 and log.db["conversations"].count == 0


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
