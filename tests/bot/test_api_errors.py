"""Every bad input gets a 4xx JSON reason, and the server keeps serving; CORS and rate limits."""

from __future__ import annotations

import pytest

from runtime_doubles import ScriptedKnowledge


async def started(client):
    response = await client.post("/api/chat", json={"message": "hello"})
    assert response.status == 200
    return await response.json()


async def expect(response, status, reason):
    body = await response.json()
    assert response.status == status, body
    assert reason in body["error"]


BAD_CHAT_BODIES = [
    (b'{"message": "hi"', "application/json", 400, "invalid JSON"),
    (b'["hi"]', "application/json", 400, "expected a JSON object"),
    (b'{"text": "hi"}', "application/json", 400, "missing field: message"),
    (b'{"message": "   "}', "application/json", 400, "message is empty"),
    (b'{"message": "hi", "action": "dance"}', "application/json", 400, "field action"),
    (b'{"message": "hi", "conversation_id": 5}', "application/json", 400, "conversation_id must be a string"),
    (b'{"message": {"image": "x.png"}}', "application/json", 415, "only text messages"),
    (b'{"message": 0}', "application/json", 415, "only text messages"),
    (b'{"message": "hi"}', "text/plain", 415, "Content-Type: application/json"),
    (b'\xff\xfe{"message": 1}', "application/json", 415, "not UTF-8"),
    (b"message=hi", "application/x-www-form-urlencoded", 415, "application/json"),
]


@pytest.mark.parametrize("data, content_type, status, reason", BAD_CHAT_BODIES)
async def test_bad_chat_bodies_get_a_reason_and_serving_goes_on(make_client, data, content_type, status, reason):
    client = await make_client()
    await expect(await client.post("/api/chat", data=data, headers={"Content-Type": content_type}), status, reason)
    await started(client)


async def test_oversized_bodies_and_messages(make_client):
    client = await make_client("server.max_body_bytes=1024", "server.max_message_chars=50")
    big = b'{"message": "' + b"a" * 5000 + b'"}'
    await expect(await client.post("/api/chat", data=big, headers={"Content-Type": "application/json"}),
                 413, "over 1024 bytes")

    async def chunks():
        for _ in range(10):
            yield b"a" * 500

    chunked = await client.post("/api/chat", data=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status == 413 and "error" in await chunked.json()
    await expect(await client.post("/api/chat", json={"message": "b" * 51}), 413, "over 50 characters")
    await started(client)


async def test_unknown_and_foreign_conversations(make_client):
    client = await make_client()
    mine = await started(client)
    theirs = await started(client)
    await expect(await client.post("/api/chat", json={"message": "hi", "conversation_id": "nope", "token": "x"}),
                 404, "no conversation")
    await expect(await client.post("/api/chat", json={
        "message": "hi", "conversation_id": theirs["conversation_id"], "token": mine["token"]}), 403, "token")
    await expect(await client.post("/api/chat", json={"message": "hi", "conversation_id": mine["conversation_id"]}),
                 403, "token")
    url = f"/api/conversations/{mine['conversation_id']}"
    await expect(await client.get(url), 403, "token")
    await expect(await client.get(url, headers={"X-Conversation-Token": theirs["token"]}), 403, "token")
    await expect(await client.get("/api/conversations/nope", headers={"X-Conversation-Token": "x"}), 404, "nope")


async def test_bad_feedback(make_client):
    client = await make_client()
    convo = await started(client)
    base = {"conversation_id": convo["conversation_id"], "token": convo["token"], "turn_id": convo["turn_id"]}
    await expect(await client.post("/api/feedback", json={**base, "rating": "meh"}), 400, "rating")
    await expect(await client.post("/api/feedback", json={**base, "turn_id": "1", "rating": "up"}), 400, "turn_id")
    await expect(await client.post("/api/feedback", json={**base, "turn_id": 999, "rating": "up"}), 404, "no turn")
    await expect(await client.post("/api/feedback", json={**base, "token": "x", "rating": "up"}), 403, "token")
    other = await started(client)  # a turn of another conversation is not this one's
    await expect(await client.post("/api/feedback", json={**base, "turn_id": other["turn_id"], "rating": "up"}),
                 404, "no turn")


async def test_unknown_paths_and_methods_are_json_errors(make_client):
    client = await make_client()
    await expect(await client.get("/api/nothing"), 404, "Not Found")
    response = await client.get("/api/chat")
    assert response.status == 405 and "POST" in response.headers["Allow"] and "error" in await response.json()


async def test_model_errors_are_500_and_serving_goes_on(make_client):
    class Broken(ScriptedKnowledge):
        def answer(self, query, tags=()):
            raise RuntimeError("index file vanished /secret/path")

    client = await make_client(knowledge=Broken())
    response = await client.post("/api/chat", json={"message": "tell me about shipping"})
    body = await response.json()
    assert response.status == 500 and "secret" not in body["error"]
    await started(client)


async def test_cors_allow_list(make_client):
    client = await make_client('server.allowed_origins=["https://shop.example"]')
    ok = await client.post("/api/chat", json={"message": "hello"}, headers={"Origin": "https://shop.example"})
    assert ok.status == 200 and ok.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    own = f"http://{client.server.host}:{client.server.port}"
    same = await client.post("/api/chat", json={"message": "hello"}, headers={"Origin": own})
    assert same.status == 200 and same.headers["Access-Control-Allow-Origin"] == own
    await expect(await client.post("/api/chat", json={"message": "hello"}, headers={"Origin": "https://evil.example"}),
                 403, "origin https://evil.example is not allowed")
    preflight = await client.options("/api/chat", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
    denied = await client.options("/api/conversations/x", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert denied.status == 403 and "Access-Control-Allow-Origin" not in denied.headers
    error = await client.post("/api/chat", data=b"{", headers={"Origin": "https://shop.example",
                                                                "Content-Type": "application/json"})
    assert error.status == 400 and error.headers["Access-Control-Allow-Origin"] == "https://shop.example"


async def test_a_refused_origins_chat_is_refused_readably_and_nothing_is_answered(make_client, tmp_path):
    """A page on an origin the bot does not allow: its chat POST passes the preflight (POST only), so that the
    widget there can read the 403's code and say the chat is not available on this site; nothing is answered
    or stored, and the preflight of anything else is refused as before."""
    from core.sqlite import connect

    client = await make_client('server.allowed_origins=["https://shop.example"]')
    foreign = {"Origin": "https://elsewhere.example"}
    preflight = await client.options("/api/chat", headers={**foreign, "Access-Control-Request-Method": "POST",
                                                           "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://elsewhere.example"
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    assert preflight.headers["Access-Control-Allow-Headers"] == "Content-Type"
    refused = await client.post("/api/chat", json={"message": "where is my order"}, headers=foreign)
    assert refused.status == 403 and refused.headers["Access-Control-Allow-Origin"] == "https://elsewhere.example"
    assert await refused.json() == {"code": "origin_not_allowed", "error": "origin https://elsewhere.example is not "
                                    "allowed (set server.public_url for this server's own, server.allowed_origins "
                                    "for others)"}
    assert connect(tmp_path / "state" / "supportbot.db").execute("select count(*) from turns").fetchone()[0] == 0
    for path, method in (("/api/chat", "GET"), ("/api/feedback", "POST"), ("/admin/reload", "POST")):
        other = await client.options(path, headers={**foreign, "Access-Control-Request-Method": method})
        assert other.status == 403 and "Access-Control-Allow-Origin" not in other.headers, (path, method)
    feedback = await client.post("/api/feedback", json={}, headers=foreign)
    assert feedback.status == 403 and "Access-Control-Allow-Origin" not in feedback.headers


async def test_rate_limit_per_client(make_client):
    client = await make_client("server.rate_limit=0.5", "server.rate_burst=3")
    convo = await started(client)  # 1 from this address
    body = {"message": "hello", "conversation_id": convo["conversation_id"], "token": convo["token"]}
    statuses = [(await client.post("/api/chat", json=body)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await client.post("/api/chat", json=body)
    assert limited.status == 429 and limited.headers["Retry-After"] == "2"
    assert "slow down" in (await limited.json())["error"]
    # Another client (a new conversation from this address) still has its own budget.
    assert (await client.post("/api/chat", json={"message": "hello"})).status == 200
