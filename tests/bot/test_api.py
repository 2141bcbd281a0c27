"""The HTTP API contract with aiohttp's test client: chat, history, feedback, health, OpenAPI, errors."""

from __future__ import annotations

import json

from bot.web.app import RUNTIME
from runtime_doubles import FakeSource
from tests.support.waiting import eventually


async def chat(client, message, convo=None, **extra):
    body = {"message": message, **extra}
    if convo:
        body.update(conversation_id=convo["conversation_id"], token=convo["token"])
    response = await client.post("/api/chat", json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_chat_contract_history_and_feedback(make_client):
    client = await make_client()
    first = await chat(client, "Where is my order AB12345?")
    assert set(first) == {"conversation_id", "token", "turn_id", "answer", "quick_replies", "sources", "route",
                          "rateable", "handoff"}
    assert first["rateable"] is True
    assert (first["route"], first["answer"], first["handoff"]) == ("template", "Order AB12345 is on its way.", False)
    second = await chat(client, "does the jacket come in red", first)
    assert second["conversation_id"] == first["conversation_id"] and second["token"] == first["token"]
    assert second["sources"] == [{"title": "Jackets", "url": "https://shop.example/jackets", "doc_id": ""}]

    history = await client.get(f"/api/conversations/{first['conversation_id']}",
                               headers={"X-Conversation-Token": first["token"]})
    body = await history.json()
    assert body["handoff"] is False
    assert [(t["turn_id"], t["route"]) for t in body["turns"]] == [(first["turn_id"], "template"),
                                                                  (second["turn_id"], "knowledge")]
    assert body["turns"][1]["sources"] == second["sources"] and body["turns"][0]["created"] > 0
    assert [t["rateable"] for t in body["turns"]] == [True, True]

    rated = await client.post("/api/feedback", json={
        "conversation_id": first["conversation_id"], "token": first["token"], "turn_id": second["turn_id"],
        "rating": "down", "comment": "not what I asked"})
    assert (rated.status, await rated.json()) == (200, {"ok": True})
    rt = client.app[RUNTIME]  # the database thread owns the connection
    flags = await rt.db(lambda: rt.log.db.execute("select kind from flags where turn_id = ?", [second["turn_id"]]).fetchall())
    assert [r[0] for r in flags] == ["negative_feedback"]


async def test_every_turn_is_in_the_database_with_its_decision(make_client):
    client = await make_client()
    convo = await chat(client, "mail the receipt to jo@example.com")
    rt = client.app[RUNTIME]
    rows = await rt.db(lambda: rt.log.db.execute("select message, decision from turns").fetchall())
    assert len(rows) == 1 and rows[0][0] == "mail the receipt to [EMAIL]"
    assert json.loads(rows[0][1])["intent"] == "send_receipt"
    assert convo["answer"] == "The receipt goes to jo@example.com."  # the answer itself is not redacted


async def test_clarify_quick_reply_and_slot_over_http(make_client):
    client = await make_client()
    asked = await chat(client, "cancel or track my order")
    assert asked["route"] == "clarify"
    prompt = await chat(client, asked["quick_replies"][0]["value"], asked)
    assert prompt["answer"] == "Which order should I cancel?"
    done = await chat(client, "XY98765", asked)
    assert done["answer"] == "I have cancelled order XY98765."


async def test_handoff_stops_the_bot_until_an_admin_releases_it(make_client):
    client = await make_client()
    auth = {"Authorization": "Bearer test-admin-token"}
    convo = await chat(client, "", action="handoff")
    assert convo["handoff"] and convo["route"] == "handoff"
    waiting = await chat(client, "hello?", convo)
    assert waiting["handoff"] and waiting["answer"] == "A person will reply here soon."
    listed = await (await client.get("/admin/handoffs", headers=auth)).json()
    assert [h["conversation_id"] for h in listed["handoffs"]] == [convo["conversation_id"]]
    released = await client.post(f"/admin/handoffs/{convo['conversation_id']}/release", headers=auth)
    assert released.status == 200
    back = await chat(client, "hello", convo)
    assert (back["route"], back["handoff"]) == ("smalltalk", False)
    again = await client.post(f"/admin/handoffs/{convo['conversation_id']}/release", headers=auth)
    assert again.status == 404


async def test_health_readiness_and_openapi_cover_every_route(make_client):
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    async def caught_up() -> dict | None:  # the start-up jobs end (the growing clusters of an empty log: at once)
        ready = await (await client.get("/readyz")).json()
        return ready if "catching_up" not in ready else None

    ready = await eventually(caught_up, 15, "the start-up jobs to end", interval_s=0.05)
    # the test bot routes two intents to knowledge/, whose store is empty (the test answers them with a double)
    [warning] = ready.pop("warnings")
    assert warning.startswith("2 intents route to the knowledge base, which is empty (product_question, store_hours)")
    assert ready == {"ready": True, "model_version": "v1", "knowledge": True, "storage": True}
    spec = await (await client.get("/openapi.json")).json()
    routes = {(r.method.lower(), r.resource.canonical) for r in client.app.router.routes()
              if r.method not in ("HEAD", "OPTIONS") and not r.resource.canonical.startswith(("/widget", "/demo", "/favicon",
                                                                                             "/static", "/review/static"))}
    described = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert routes <= described and routes
    assert spec["openapi"].startswith("3.")


async def test_not_ready_without_a_model(make_client, tmp_path):
    class NoModel(FakeSource):
        def load(self):
            raise FileNotFoundError("no model version in models: train one first")

    from bot.web.app import create_app
    from runtime_doubles import load_folder

    folder = load_folder(tmp_path, "server.watch_interval=0")
    app = create_app(folder.settings, folder, models=NoModel(), open_knowledge=lambda: None)
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app)) as client:
        async def refused():
            ready = await client.get("/readyz")
            return ready if "train one first" in (await ready.json()).get("error", "") else None

        ready = await eventually(refused, 10, "/readyz to say there is no model")
        assert ready.status == 503
        response = await client.post("/api/chat", json={"message": "hi"})
        assert response.status == 503 and "train one first" in (await response.json())["error"]
        assert (await client.get("/healthz")).status == 200


async def test_a_turn_another_worker_saved_first_is_answered_again_from_its_state(make_client):
    """Another server process answers the same conversation while this one works on a message: this one's
    save is refused (ConversationMoved) and the message is answered again from the newer state, not lost."""
    from bot.dialogue.conversations import ConversationLog
    from core.sqlite import connect
    from training.redact import Redactor

    client = await make_client()
    rt = client.server.app[RUNTIME]
    asked = await chat(client, "cancel my order")
    assert asked["answer"] == "Which order should I cancel?"
    # the other worker's connection, opened on the database thread, where the patched record_turn below uses it
    other = await rt.db(lambda: ConversationLog(connect(rt.settings.db_path), Redactor()))
    record = rt.log.record_turn
    calls = []

    def worker_two_first(convo, message, reply, new_token=None):
        if not calls:  # meanwhile, the other worker answers the prompt with another order number
            theirs = other.open(convo.id, asked["token"])
            theirs.pending, theirs.slots = None, {"order_id": "AB12345"}
            other.record_turn(theirs, "AB12345", reply)
        calls.append(message)
        return record(convo, message, reply, new_token)

    rt.log.record_turn = worker_two_first
    mine = await chat(client, "XY98765", asked)
    assert calls == ["XY98765", "XY98765"]  # refused once, then saved
    assert mine["answer"] != "I have cancelled order XY98765."  # the prompt was no longer pending
    history = await client.get(f"/api/conversations/{asked['conversation_id']}",
                               headers={"X-Conversation-Token": asked["token"]})
    assert [t["message"] for t in (await history.json())["turns"]] == ["cancel my order", "AB12345", "XY98765"]
    await rt.db(other.db.close)
