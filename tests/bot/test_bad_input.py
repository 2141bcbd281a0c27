"""A corpus of bad input against every endpoint of the real app (issue 11): each answer is a 2xx or a 4xx with a
JSON reason (for the API), never a 5xx; nothing refused is stored; the server stays healthy throughout."""

from __future__ import annotations

import json

from bot.web.app import RUNTIME
from tests.support.bots import ADMIN

JSON = {"Content-Type": "application/json"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
DEEP = 5000


def raw(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


# (case, body bytes, status); the body goes to /api/chat as application/json unless the case says otherwise.
CHAT = [
    ("lone high surrogate", raw('{"message": "hi \\ud800"}'), 400),
    ("lone low surrogate", raw('{"message": "\\udc00 there"}'), 400),
    ("reversed surrogate pair", raw('{"message": "\\ude00\\ud83d"}'), 400),
    ("surrogate in conversation_id", raw('{"message": "hi", "conversation_id": "\\ud800"}'), 400),
    ("surrogate in token", raw('{"message": "hi", "conversation_id": "x", "token": "\\udfff"}'), 400),
    ("surrogate in a field name", raw('{"message": "hi", "\\ud800": 1}'), 400),
    ("surrogate deep in an extra field", raw('{"message": "hi", "meta": {"a": ["\\ud800"]}}'), 400),
    ("NUL only", raw('{"message": "\\u0000"}'), 400),
    ("many NULs", raw('{"message": "' + "\\u0000" * 500 + '"}'), 400),
    ("NUL inside", raw('{"message": "where is\\u0000 my order"}'), 400),
    ("C0 controls only", raw('{"message": "\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\u0008"}'), 400),
    ("ANSI escape", raw('{"message": "\\u001b[31mred"}'), 400),
    ("DEL", raw('{"message": "hi\\u007f"}'), 400),
    ("C1 control", raw('{"message": "hi\\u0085"}'), 400),
    ("vertical tab", raw('{"message": "a\\u000bb"}'), 400),
    ("zero-width spaces only", raw('{"message": "\\u200b\\u200b\\u200c\\u200d"}'), 400),
    ("byte-order marks only", raw('{"message": "\\ufeff\\ufeff"}'), 400),
    ("line breaks and tabs only", raw('{"message": "\\n\\t\\r\\n"}'), 400),
    ("no-break spaces only", raw('{"message": "\\u00a0\\u2003\\u3000"}'), 400),
    ("line and paragraph separators only", raw('{"message": "\\u2028\\u2029"}'), 400),
    ("arrays nested thousands deep", raw("[" * DEEP + "]" * DEEP), 400),
    ("objects nested thousands deep", raw('{"a":' * 2000 + "1" + "}" * 2000), 400),
    ("extra field nested 40 deep", raw('{"message": "hi", "x": ' + "[" * 40 + "]" * 40 + "}"), 400),
    ("conversation_id 2**64", raw('{"message": "hi", "conversation_id": 18446744073709551616}'), 400),
    ("5000-digit integer", raw('{"message": "hi", "n": ' + "9" * 5000 + "}"), 400),
    ("NaN", raw('{"message": NaN}'), 400),
    ("Infinity", raw('{"message": "hi", "x": Infinity}'), 400),
    ("-Infinity", raw('{"message": "hi", "x": -Infinity}'), 400),
    ("float overflowing to inf", raw('{"message": "hi", "x": 1e999}'), 400),
    ("message a list", raw('{"message": ["hi"]}'), 415),
    ("message a number", raw('{"message": 12}'), 415),
    ("message true", raw('{"message": true}'), 415),
    ("message null, no action", raw('{"message": null}'), 400),
    ("message an object", raw('{"message": {"text": "hi"}}'), 415),
    ("conversation_id a number", raw('{"message": "hi", "conversation_id": 7}'), 400),
    ("conversation_id a list", raw('{"message": "hi", "conversation_id": ["a"]}'), 400),
    ("conversation_id true", raw('{"message": "hi", "conversation_id": true}'), 400),
    ("token a number", raw('{"message": "hi", "conversation_id": "a", "token": 5}'), 400),
    ("action a number", raw('{"message": "hi", "action": 1}'), 400),
    ("action unknown", raw('{"message": "hi", "action": "delete"}'), 400),
    ("empty body", b"", 400),
    ("whitespace body", b"   \n", 400),
    ("null", b"null", 400),
    ("true", b"true", 400),
    ("a number", b"1", 400),
    ("a string", b'"hello"', 400),
    ("an array of messages", b'[{"message": "hi"}]', 400),
    ("truncated", b'{"message": "hi', 400),
    ("trailing garbage", b'{"message": "hi"} and more', 400),
    ("single quotes", b"{'message': 'hi'}", 400),
    ("a comment", b'{"message": "hi" /* x */}', 400),
    ("trailing comma", b'{"message": "hi",}', 400),
    ("bad escape", b'{"message": "\\x41"}', 400),
    ("raw control character in a string", b'{"message": "a\x01b"}', 400),
    ("UTF-16 body", '{"message": "hi"}'.encode("utf-16"), 415),
    ("latin-1 body", '{"message": "café"}'.encode("latin-1"), 415),
    ("overlong UTF-8", b'{"message": "\xc0\xaf"}', 415),
    ("UTF-8-encoded surrogate", b'{"message": "\xed\xa0\x80"}', 415),
    ("truncated UTF-8", b'{"message": "\xe2\x82"}', 415),
    ("oversized body", raw('{"message": "' + "a" * 20000 + '"}'), 413),
    ("message over the character limit", raw(json.dumps({"message": "a" * 2001})), 413),
    ("unknown conversation", raw('{"message": "hi", "conversation_id": "nope", "token": "nope"}'), 404),
    ("path traversal id", raw('{"message": "hi", "conversation_id": "../../etc/passwd", "token": "x"}'), 404),
    ("SQL in the id", raw('{"message": "hi", "conversation_id": "x\' or 1=1 --", "token": "x"}'), 404),
    ("id of 10,000 characters", raw(json.dumps({"message": "hi", "conversation_id": "a" * 10000, "token": "t"})), 404),
    # What is fine stays fine: strange but representable text is answered.
    ("emoji as a surrogate pair", raw('{"message": "hello \\ud83d\\ude00"}'), 200),
    ("right-to-left and combining", raw(json.dumps({"message": "مرحبا e\u0301\u0301\u0301"})), 200),
    ("message at the limit", raw(json.dumps({"message": "hello " + "a" * 1994})), 200),
    ("tabs and newlines inside", raw('{"message": "hello\\n\\tthere"}'), 200),
    ("duplicate keys (the last counts)", raw('{"message": 1, "message": "hello"}'), 200),
    ("unknown extra fields", raw('{"message": "hello", "extra": {"a": [1, 2.5, null, false]}}'), 200),
    ("handoff with no message", raw('{"action": "handoff"}'), 200),
    ("HTML in the message", raw(json.dumps({"message": "<script>alert(1)</script> hello"})), 200),
    ("markdown link to javascript", raw(json.dumps({"message": "[x](javascript:alert(1)) hello"})), 200),
]

# Other content types for a well-formed chat body.
CONTENT_TYPES = [
    ("no content type", None, 415),
    ("text/plain", "text/plain", 415),
    ("form", "application/x-www-form-urlencoded", 415),
    ("multipart", "multipart/form-data; boundary=x", 415),
    ("json with a charset", "application/json; charset=utf-8", 200),
    ("json with another charset", "application/json; charset=latin-1", 200),
    ("xml", "application/xml", 415),
]


async def check(response, status, case):
    text = await response.text()
    assert response.status == status, (case, response.status, text[:300])
    assert response.status < 500, (case, text[:300])
    if response.status >= 400:
        assert response.content_type == "application/json", (case, response.content_type)
        assert json.loads(text)["error"], case


async def make(make_client):
    return await make_client("server.rate_limit=0", "server.new_conversation_rate=0", "server.handoff_rate=0")


async def turns(client) -> int:
    rt = client.server.app[RUNTIME]
    return await rt.db(lambda: rt.log.db.execute("select count(*) from turns").fetchone()[0])


async def test_chat_corpus(make_client):
    client = await make(make_client)
    answered = 0
    for case, body, status in CHAT:
        await check(await client.post("/api/chat", data=body, headers=JSON), status, case)
        answered += status == 200
        assert (await client.get("/healthz")).status == 200, case
    assert await turns(client) == answered  # nothing refused was stored
    assert (await client.get("/readyz")).status == 200


async def test_chat_content_types(make_client):
    client = await make(make_client)
    for case, content_type, status in CONTENT_TYPES:
        headers = {"Content-Type": content_type} if content_type else {}
        r = await client.post("/api/chat", data=b'{"message": "hello"}', headers=headers,
                              skip_auto_headers=["Content-Type"])
        await check(r, status, case)


async def test_feedback_corpus(make_client):
    client = await make(make_client)
    mine = await (await client.post("/api/chat", json={"message": "hello"})).json()
    other = await (await client.post("/api/chat", json={"message": "hello"})).json()
    ok = {"conversation_id": mine["conversation_id"], "token": mine["token"], "turn_id": mine["turn_id"],
          "rating": "up"}

    def body(**change) -> bytes:
        fields = {**ok, **change}
        return raw("{" + ", ".join(f'"{k}": {v if isinstance(v, RawJSON) else json.dumps(v)}'
                                   for k, v in fields.items() if v is not DROP) + "}")

    cases = [
        ("turn_id 2**64", body(turn_id=2**64), 400),
        ("turn_id -2**70", body(turn_id=-2**70), 400),
        ("turn_id of 5000 digits", body(turn_id=RawJSON("7" * 5000)), 400),
        ("turn_id 2**63-1 (no such turn)", body(turn_id=2**63 - 1), 404),
        ("turn_id negative", body(turn_id=-1), 404),
        ("turn_id a float", body(turn_id=1.5), 400),
        ("turn_id a string", body(turn_id="1"), 400),
        ("turn_id true", body(turn_id=True), 400),
        ("turn_id a list", body(turn_id=[1]), 400),
        ("turn_id NaN", body(turn_id=RawJSON("NaN")), 400),
        ("no turn_id", body(turn_id=DROP), 400),
        ("no rating", body(rating=DROP), 400),
        ("rating unknown", body(rating="meh"), 400),
        ("rating a number", body(rating=5), 400),
        ("rating with a NUL", body(rating="up\u0000"), 400),
        ("no token", body(token=DROP), 400),
        ("a made-up token", body(token="made-up"), 403),
        ("another conversation's token", body(token=other["token"]), 403),
        ("another conversation's turn", body(turn_id=other["turn_id"]), 404),
        ("unknown conversation", body(conversation_id="nope"), 404),
        ("comment with a lone surrogate", body(comment=RawJSON('"bad \\ud800"')), 400),
        ("comment of NULs", body(comment="\u0000\u0000"), 400),
        ("comment with an escape sequence", body(comment="\u001b[2J"), 400),
        ("comment a list", body(comment=["a"]), 400),
        ("comment over the limit", body(comment="a" * 2001), 413),
        ("deep comment", body(comment=RawJSON("[" * 100 + "]" * 100)), 400),
        ("comment fine", body(comment="the answer was wrong \u2013 sorry"), 200),
        ("rating down", body(rating="down"), 200),
    ]
    for case, data, status in cases:
        await check(await client.post("/api/feedback", data=data, headers=JSON), status, case)
    rt = client.server.app[RUNTIME]
    assert await rt.db(lambda: rt.log.db.execute("select count(*) from feedback").fetchone()[0]) == 2  # just the two accepted


class RawJSON(str):
    """Written into the body as it is (not json.dumps'ed): NaN, surrogates, huge numbers."""


DROP = object()


async def test_history_and_admin_corpus(make_client):
    client = await make(make_client)
    mine = await (await client.post("/api/chat", json={"message": "hello"})).json()
    url = f"/api/conversations/{mine['conversation_id']}"
    cases = [
        ("history without a token", "GET", url, {}, None, 403),
        ("history with a wrong token", "GET", url, {"X-Conversation-Token": "x"}, None, 403),
        ("history with a non-ASCII token", "GET", url, {"X-Conversation-Token": "jeton-été"}, None, 403),
        ("history of an unknown id", "GET", "/api/conversations/nope", {"X-Conversation-Token": "x"}, None, 404),
        ("history id with an encoded NUL", "GET", "/api/conversations/a%00b", {"X-Conversation-Token": "x"}, None, 400),
        ("history id with an encoded surrogate", "GET", "/api/conversations/%ED%A0%80",
         {"X-Conversation-Token": "x"}, None, 404),
        ("history id of 4000 characters", "GET", "/api/conversations/" + "a" * 4000,
         {"X-Conversation-Token": "x"}, None, 404),
        ("history with a POST", "POST", url, {}, None, 405),
        ("history fine", "GET", url, {"X-Conversation-Token": mine["token"]}, None, 200),
        ("stats without auth", "GET", "/admin/stats", {}, None, 401),
        ("stats with a wrong token", "GET", "/admin/stats", {"Authorization": "Bearer nope"}, None, 401),
        ("stats with Basic auth", "GET", "/admin/stats", {"Authorization": "Basic YTpi"}, None, 401),
        ("stats with an empty bearer", "GET", "/admin/stats", {"Authorization": "Bearer "}, None, 401),
        ("stats with a non-ASCII bearer", "GET", "/admin/stats", {"Authorization": "Bearer clé"}, None, 401),
        ("handoffs without auth", "GET", "/admin/handoffs", {}, None, 401),
        ("release without auth", "POST", "/admin/handoffs/x/release", {}, None, 401),
        ("release of an unknown id", "POST", "/admin/handoffs/nope/release", ADMIN_AUTH, None, 404),
        ("release id with an encoded NUL", "POST", "/admin/handoffs/a%00/release", ADMIN_AUTH, None, 400),
        ("reload with bad JSON", "POST", "/admin/reload", {**ADMIN_AUTH, **JSON}, b"{", 400),
        ("reload with force a string", "POST", "/admin/reload", {**ADMIN_AUTH, **JSON}, b'{"force": "yes"}', 400),
        ("reload with deep JSON", "POST", "/admin/reload", {**ADMIN_AUTH, **JSON}, raw("[" * DEEP + "]" * DEEP), 400),
        ("reload with a surrogate", "POST", "/admin/reload", {**ADMIN_AUTH, **JSON}, b'{"x": "\\ud800"}', 400),
        ("reload as text", "POST", "/admin/reload", {**ADMIN_AUTH, "Content-Type": "text/plain"}, b"x", 415),
        ("reload fine", "POST", "/admin/reload", ADMIN_AUTH, None, 200),
        ("stats fine", "GET", "/admin/stats", ADMIN_AUTH, None, 200),
        ("chat with PUT", "PUT", "/api/chat", JSON, b"{}", 405),
        ("chat with DELETE", "DELETE", "/api/chat", {}, None, 405),
        ("feedback with GET", "GET", "/api/feedback", {}, None, 405),
        ("unknown API path", "GET", "/api/nothing", {}, None, 404),
        ("unknown admin path", "GET", "/admin/nothing", ADMIN_AUTH, None, 404),
        ("a foreign origin", "POST", "/api/chat", {**JSON, "Origin": "https://evil.example"}, b'{"message": "hi"}', 403),
        ("a null origin", "POST", "/api/chat", {**JSON, "Origin": "null"}, b'{"message": "hi"}', 403),
        ("a foreign preflight", "OPTIONS", "/api/feedback", {"Origin": "https://evil.example",
                                                            "Access-Control-Request-Method": "POST"}, None, 403),
        ("a foreign chat preflight", "OPTIONS", "/api/chat", {"Origin": "https://evil.example",
                                                             "Access-Control-Request-Method": "POST"}, None, 204),
        ("health with junk query", "GET", "/healthz?%ff=%00&a=" + "b" * 1000, {}, None, 200),
        ("openapi", "GET", "/openapi.json", {}, None, 200),
    ]
    for case, method, path, headers, data, status in cases:
        await check(await client.request(method, path, headers=headers, data=data), status, case)
    assert (await client.get("/readyz")).status == 200


async def test_every_route_refuses_junk_without_a_5xx(make_client):
    """Each registered route (the review workspace's too) given junk: no 5xx, and the API answers in JSON."""
    client = await make(make_client)
    junk = [b'{"x": "\\ud800"}', raw("[" * DEEP + "]" * DEEP), b"\xff\xfe", b'{"id": 18446744073709551616}', b"null"]
    seen = 0
    for resource in client.server.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if not path:
            continue
        for name, value in (("group_id", "99999999999999999999999"), ("action_id", "99999999999999999999999"),
                            ("turn_id", "99999999999999999999999"), ("bulk_id", "ff" * 40),
                            ("conversation_id", "%00"), ("filename", "..%2F..%2Fetc%2Fpasswd")):
            path = path.replace("{" + name + "}", value)
        for method in ("GET", "POST"):
            for data in junk if method == "POST" else [None]:
                r = await client.request(method, path, data=data, headers=JSON if data else {},
                                         allow_redirects=False)
                text = await r.text()
                assert r.status < 500, (method, path, r.status, text[:200])
                if path.startswith(("/api/", "/admin/")) and r.status >= 400:
                    assert r.content_type == "application/json" and json.loads(text)["error"], (method, path)
                seen += 1
    assert seen > 50 and (await client.get("/readyz")).status == 200
