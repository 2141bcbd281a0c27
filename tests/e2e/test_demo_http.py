"""The demo store bot, trained with the real MiniLM and served by `run_bot.py demo`, chatted with over HTTP: on
SQLite, and on PostgreSQL with two workers (where a conversation's turns land on either)."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo_store"


def turns_of(bot, conversation_id: str) -> list[dict]:
    rows = bot.rows("select id, message, decision from turns where conversation_id = ? order by id", [conversation_id])
    return [dict(zip(("id", "message", "decision"), row)) for row in rows]


def test_template_answer_fills_the_order_id(demo_bot):
    reply = demo_bot.chat("Where is my order NW-482913?")
    assert (reply["route"], reply["handoff"]) == ("template", False)
    assert "https://northwind.example/track/NW-482913" in reply["answer"]


def test_slot_prompt_then_answer_in_the_next_turn(demo_bot):
    asked = demo_bot.chat("where is my order")
    assert asked["route"] == "template" and "order number" in asked["answer"]
    assert asked["rateable"] is False  # a question back, not an answer: no thumbs
    answered = demo_bot.chat("it's NW-310577", asked)
    assert "NW-310577" in answered["answer"] and answered["route"] == "template"
    assert answered["rateable"] is True


def test_knowledge_answer_with_its_source(demo_bot):
    reply = demo_bot.chat("can I get my present gift wrapped with a message?")
    assert reply["route"] == "knowledge" and reply["answer"]
    assert reply["sources"][0] == {"title": "Gift wrapping, gift messages and gift receipts",
                                   "url": "https://help.northwind.example/gift-wrapping", "doc_id": "gift-wrapping.md"}
    article = " ".join((DEMO / "knowledge" / "gift-wrapping.md").read_text().split())
    assert " ".join(reply["answer"].split()) in article  # a passage of that article, as written


def test_small_talk(demo_bot):
    assert demo_bot.chat("hello there")["route"] == "smalltalk"


def test_quick_reply_value_picks_the_intent(demo_bot):
    reply = demo_bot.chat("/cancel_order")
    assert reply["route"] == "template"
    assert reply["answer"] == "Which order would you like to cancel? The number looks like NW-123456."  # its prompt
    [turn] = turns_of(demo_bot, reply["conversation_id"])
    decision = json.loads(turn["decision"])  # chosen, not classified
    assert (decision["intent"], decision["reason"], decision["confidence"]) == (
        "cancel_order", "quick reply; asking for order_id", 1.0)


def test_out_of_scope_does_not_get_a_template_answer(demo_bot):
    reply = demo_bot.chat("what's the weather like in Lisbon tomorrow?")
    [turn] = turns_of(demo_bot, reply["conversation_id"])
    decision = json.loads(turn["decision"])
    # the model finds no intent it may answer with (its out-of-scope score is below the threshold) ...
    assert decision["intent"] is None and "low_confidence" in decision["flags"]
    # ... so the bot offers a person, asks which of two intents was meant, or answers from a help article
    assert reply["route"] in ("fallback", "clarify", "knowledge")
    if reply["route"] == "fallback":
        assert reply["quick_replies"] == [{"label": "Talk to a person", "value": "/handoff"}]
    if reply["route"] == "clarify":
        assert len(reply["quick_replies"]) >= 2 and all(q["value"].startswith("/") for q in reply["quick_replies"])
    if reply["route"] == "knowledge":
        assert reply["sources"]


def test_handoff_release_and_every_turn_stored(demo_bot):
    first = demo_bot.chat("hi")
    handed = demo_bot.chat("I want to talk to a human", first)
    assert handed["handoff"] and handed["route"] == "handoff"
    waiting = demo_bot.chat("hello? is anyone there? my email is jo@example.com", first)
    assert waiting["handoff"] and waiting["answer"] == "A person will reply here soon."
    open_ids = [h["conversation_id"] for h in demo_bot.admin("GET", "/admin/handoffs")["handoffs"]]
    assert first["conversation_id"] in open_ids
    demo_bot.admin("POST", f"/admin/handoffs/{first['conversation_id']}/release")
    back = demo_bot.chat("thanks", first)
    assert not back["handoff"] and back["route"] == "smalltalk"

    stored = turns_of(demo_bot, first["conversation_id"])
    assert [t["id"] for t in stored] == [first["turn_id"], handed["turn_id"], waiting["turn_id"], back["turn_id"]]
    assert "jo@example.com" not in stored[2]["message"] and "[EMAIL]" in stored[2]["message"]
    decision = json.loads(stored[1]["decision"])
    assert decision["route"] == "handoff" and decision["intent"] == "talk_to_human" and decision["model_version"]


def test_history_and_feedback_over_http(demo_bot):
    reply = demo_bot.chat("how do I reset my password")
    history = demo_bot.request("GET", f"/api/conversations/{reply['conversation_id']}",
                               headers={"X-Conversation-Token": reply["token"]})
    assert [t["turn_id"] for t in history["turns"]] == [reply["turn_id"]]
    assert demo_bot.request("POST", "/api/feedback", {
        "conversation_id": reply["conversation_id"], "token": reply["token"], "turn_id": reply["turn_id"],
        "rating": "down"}) == {"ok": True}
    with pytest.raises(urllib.error.HTTPError) as refused:
        demo_bot.request("GET", f"/api/conversations/{reply['conversation_id']}",
                         headers={"X-Conversation-Token": "wrong"})
    assert refused.value.code == 403


def test_ready_and_reload_keep_serving(demo_bot):
    ready = demo_bot.request("GET", "/readyz")
    assert ready["ready"] and ready["knowledge"]
    reloaded = demo_bot.admin("POST", "/admin/reload", {"force": True})
    assert reloaded["version"] == ready["model_version"]
    assert demo_bot.chat("hello")["route"] == "smalltalk"
