"""Hardening (issue 11): one bad message fails no other request; rate limits key on verified identity; the
HTTP parser's own refusals are JSON; every response says nosniff, every HTML page refuses framing."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid

import pytest

from bot.web.app import create_app
from bot.web.runtime import RUNTIME
from core.sqlite import connect
from runtime_doubles import FakeSource, FixedClassifier, ScriptedKnowledge, load_folder
from tests.support.waiting import eventually


class TokenizingClassifier(FixedClassifier):
    """Like a real tokenizer: text that cannot be encoded as UTF-8 fails the whole model call."""

    def predict(self, texts, k=3):
        for t in texts:
            t.encode("utf-8")
        return super().predict(texts, k)


class TokenizingSource(FakeSource):
    def load(self):
        model = TokenizingClassifier(self.version)
        self.loaded.append(model)
        return model


async def chat(client, message, convo=None, **headers):
    body = {"message": message}
    if convo:
        body.update(conversation_id=convo["conversation_id"], token=convo["token"])
    return await client.post("/api/chat", json=body, headers=headers)


async def test_an_unencodable_message_is_refused_and_fails_no_other_request(make_client):
    client = await make_client("server.batch_wait_ms=50", "server.rate_limit=0", "server.new_conversation_rate=0",
                               source=TokenizingSource())
    normal = [chat(client, f"where is order AB1234{i % 10}") for i in range(16)]
    poison = client.post("/api/chat", data='{"message": "where is \\ud800 my order"}',
                         headers={"Content-Type": "application/json"})
    *replies, refused = await asyncio.gather(*normal, poison)
    assert [r.status for r in replies] == [200] * 16
    assert refused.status == 400 and "lone surrogate" in (await refused.json())["error"]


async def test_surrogates_and_controls_are_refused_in_every_text_field(make_client):
    client = await make_client()
    convo = await (await chat(client, "hello")).json()
    base = json.dumps({"conversation_id": convo["conversation_id"], "token": convo["token"],
                       "turn_id": convo["turn_id"], "rating": "down"})
    for comment in ('"bad \\udfff"', '"a\\u0000b"'):  # JSON escapes: a lone surrogate, a NUL
        body = base[:-1] + f', "comment": {comment}}}'
        r = await client.post("/api/feedback", data=body, headers={"Content-Type": "application/json"})
        assert r.status == 400 and "comment" in (await r.json())["error"]
    for junk in (b"\x7f", b"\xed\xa0\x80", b"\xff"):  # DEL, an encoded surrogate, not UTF-8 at all
        status, _, body = await send_raw(client, (
            f"GET /api/conversations/{convo['conversation_id']} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"X-Conversation-Token: {convo['token']}").encode() + junk + b"\r\n\r\n")
        assert status in (400, 403) and json.loads(body)["error"], body
    history = await client.get(f"/api/conversations/{convo['conversation_id']}",
                               headers={"X-Conversation-Token": convo["token"]})
    assert len((await history.json())["turns"]) == 1  # nothing of the refused requests was stored


async def test_made_up_tokens_buy_no_rate_budget(make_client):
    client = await make_client("server.rate_limit=0.01", "server.rate_burst=5")
    statuses = []
    for _ in range(12):
        body = {"message": "hi", "conversation_id": uuid.uuid4().hex, "token": uuid.uuid4().hex}
        statuses.append((await client.post("/api/chat", json=body)).status)
    assert statuses[:5] == [404] * 5 and set(statuses[5:]) == {429}


async def test_a_verified_conversation_has_its_own_budget(make_client):
    client = await make_client("server.rate_limit=0.01", "server.rate_burst=3")
    convo = await (await chat(client, "hello")).json()  # 1 of the address's 3
    assert [(await chat(client, "hello", convo)).status for _ in range(4)] == [200, 200, 200, 429]
    assert (await chat(client, "hello")).status == 200  # the address still has budget


async def test_new_conversations_per_address_have_their_own_limit(make_client):
    client = await make_client("server.rate_limit=0", "server.new_conversation_rate=0.01",
                               "server.new_conversation_burst=3")
    statuses = [(await chat(client, "hello")).status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    limited = await chat(client, "hello")
    assert "new conversations" in (await limited.json())["error"] and "Retry-After" in limited.headers


async def test_handoffs_per_address_have_their_own_limit(make_client):
    client = await make_client("server.rate_limit=0", "server.new_conversation_rate=0", "server.handoff_rate=0.01",
                               "server.handoff_burst=2")
    statuses = [(await chat(client, "I want to talk to a human")).status for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert (await chat(client, "hello")).status == 200


async def test_x_forwarded_for_is_believed_only_from_trusted_proxies(make_client):
    trusting = await make_client("server.rate_limit=0.01", "server.rate_burst=2", "server.new_conversation_rate=0",
                                 'server.trusted_proxies=["127.0.0.1/32"]')
    for address in ("203.0.113.1", "203.0.113.2"):  # two customers behind the proxy: a budget each
        assert [(await chat(trusting, "hello", **{"X-Forwarded-For": address})).status
                for _ in range(3)] == [200, 200, 429]
    plain = await make_client("server.rate_limit=0.01", "server.rate_burst=2", "server.new_conversation_rate=0")
    statuses = [(await chat(plain, "hello", **{"X-Forwarded-For": f"198.51.100.{i}"})).status for i in range(3)]
    assert statuses == [200, 200, 429]  # a client cannot mint addresses by writing the header


async def test_same_origin_is_the_configured_public_url_not_the_host_header(make_client):
    client = await make_client()
    rebinding = {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}
    r = await client.post("/api/chat", json={"message": "hello"}, headers=rebinding)
    assert r.status == 403 and "not allowed" in (await r.json())["error"]
    public = await make_client('server.public_url="https://help.shop.example/"')
    r = await public.post("/api/chat", json={"message": "hello"},
                          headers={"Host": "10.1.2.3:8080", "Origin": "https://help.shop.example"})
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "https://help.shop.example"


async def test_every_response_says_nosniff_and_html_pages_refuse_framing(make_client):
    client = await make_client()
    for method, path in [("GET", "/healthz"), ("GET", "/nothing"), ("POST", "/api/chat"), ("GET", "/widget.js"),
                         ("GET", "/demo"), ("GET", "/admin/stats")]:
        r = await client.request(method, path)
        assert r.headers.get("X-Content-Type-Options") == "nosniff", (method, path)
        if r.content_type == "text/html":
            assert r.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    demo = await client.get("/demo")
    assert demo.content_type == "text/html" and demo.headers["X-Frame-Options"] == "DENY"


# The HTTP parser's refusals, sent as raw bytes to a server run by `bot.web.protocol.AppRunner`.
PROTOCOL_ABUSE = {
    "oversized header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
    "too many headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n",
    "transfer-encoding and content-length": (
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "bad chunk size": (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    "bad request line": b"GET /healthz HTTP/9.9 junk\r\n\r\n",
    "two content-lengths": (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
    "header without colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
}


@pytest.fixture
async def raw_server(make_client):
    return await make_client()


async def send_raw(client, data: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(data)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize("case", sorted(PROTOCOL_ABUSE))
async def test_protocol_refusals_are_json(raw_server, case, caplog):
    caplog.set_level(logging.DEBUG)
    status, headers, body = await send_raw(raw_server, PROTOCOL_ABUSE[case])
    assert 400 <= status < 500, (status, body)
    refusals = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].exc_info is None  # one line per refusal, no traceback
    assert "aaaa" not in caplog.text and "Traceback" not in caplog.text  # never the client's bytes
    assert headers["content-type"].startswith("application/json"), body
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body)["error"]
    assert (await raw_server.get("/healthz")).status == 200


# Faults of the machine: the database on a full disk, or its files unwritable.
async def test_a_full_disk_is_503_with_a_reason_readyz_says_so_and_the_server_recovers(make_client, caplog):
    client = await make_client("server.rate_limit=0", "server.new_conversation_rate=0")
    rt = client.server.app[RUNTIME]
    convo = await (await chat(client, "hello")).json()
    pages = await rt.db(lambda: rt.log.db.execute("pragma page_count").fetchone()[0])
    await rt.db(rt.log.db.execute, f"pragma max_page_count = {pages}")  # SQLite's own 'database or disk is full'
    statuses = []
    for _ in range(40):  # until the pages already there are full
        r = await chat(client, "where is my order AB12345 " + "x" * 1900, convo)
        statuses.append(r.status)
        if r.status != 200:
            break
    assert statuses[-1] == 503, statuses
    body = await r.json()
    assert "database or disk is full" in body["error"] and r.headers["Retry-After"]
    assert "database record_turn failed: database or disk is full" in caplog.text
    ready = await client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["storage"] is False
    assert "disk is full" in (await ready.json())["error"]
    assert (await client.get("/healthz")).status == 200  # alive, just not ready

    await rt.db(rt.log.db.execute, "pragma max_page_count = 1073741823")  # space returns
    assert (await client.get("/readyz")).status == 200
    assert (await chat(client, "hello", convo)).status == 200


async def test_unwritable_database_files_are_503_and_nothing_half_written(make_client, monkeypatch):
    client = await make_client()
    rt = client.server.app[RUNTIME]
    convo = await (await chat(client, "hello")).json()

    def readonly(*args):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(rt.log, "feedback", readonly)
    r = await client.post("/api/feedback", json={"conversation_id": convo["conversation_id"], "token": convo["token"],
                                                 "turn_id": convo["turn_id"], "rating": "up"})
    assert r.status == 503 and "readonly database" in (await r.json())["error"]
    assert (await client.get("/readyz")).status == 200  # the probe writes fine: only feedback was broken
    monkeypatch.undo()
    r = await client.post("/api/feedback", json={"conversation_id": convo["conversation_id"], "token": convo["token"],
                                                 "turn_id": convo["turn_id"], "rating": "up"})
    assert r.status == 200


def test_the_database_is_never_memory_mapped(tmp_path):
    db = connect(tmp_path / "x.db")
    assert db.execute("pragma mmap_size").fetchone()[0] == 0


async def test_readyz_says_what_is_wrong_with_the_model_pointer(tmp_path, aiohttp_client):
    from bot.serving.model_slot import RegistrySource

    folder = load_folder(tmp_path, "server.watch_interval=0")
    version = folder.settings.models_path / "20260101T000000-abcd1234"
    version.mkdir(parents=True)
    (version / "VERSION").write_text(version.name + "\n")
    (folder.settings.models_path / "CURRENT").write_text("")
    kb = ScriptedKnowledge()
    client = await aiohttp_client(create_app(folder.settings, folder, models=RegistrySource(folder.settings),
                                             open_knowledge=lambda: kb))
    async def refused() -> dict | None:
        body = await (await client.get("/readyz")).json()
        return body if "CURRENT" in body.get("error", "") else None

    body = await eventually(refused, 10, "/readyz to say why CURRENT cannot be served")
    assert "is empty" in body["error"] and version.name in body["error"]


def test_the_access_log_names_the_client_behind_a_trusted_proxy(caplog):
    import logging

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from bot.web.protocol import AccessLogger

    request = make_mocked_request("GET", "/healthz")
    request["client_address"] = "203.0.113.7"  # what client_info worked out from X-Forwarded-For
    logger = AccessLogger(logging.getLogger("test.access"), AccessLogger.LOG_FORMAT)
    with caplog.at_level(logging.INFO, "test.access"):
        logger.log(request, web.Response(), 0.01)
    assert caplog.records[0].getMessage().startswith("203.0.113.7 ")


async def test_a_connection_that_never_finishes_its_headers_is_closed(tmp_path):
    """Half-open clients (a request line, part of the headers, then nothing) are closed after
    server.idle_timeout_s instead of each holding an open file for aiohttp's default hour; a finished request on
    the same server is unaffected."""
    import asyncio

    from aiohttp import web

    from bot.settings import load_settings
    from bot.web.protocol import connection_limits
    from tests.support.bots import JsonErrorServer

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/healthz", hello)
    server = JsonErrorServer(app)
    await server.start_server(**connection_limits(load_settings(None, ["server.idle_timeout_s=0.5"])))
    try:
        slow = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5)]
        for _, writer in slow:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers never finished
            await writer.drain()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200")
        for reader, writer in slow:  # closed by the server: the read ends (bounded, so a regression fails, not hangs)
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
    finally:
        await server.close()
