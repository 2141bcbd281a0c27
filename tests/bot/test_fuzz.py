"""Property-based fuzzing of the JSON endpoints against the real app (issue 11): whatever a client sends, the
answer is a 2xx or a 4xx with a JSON reason, never a 5xx, and the server stays healthy.

The app (with the test doubles) runs on a real socket in a thread of its own; hypothesis drives it with plain
blocking HTTP, so each example is one real request."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading

import tempfile

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(tempfile.mkdtemp(prefix="hypothesis-"))  # its caches: never in the working directory

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from bot.web.app import create_app  # noqa: E402
from bot.web.protocol import AppRunner  # noqa: E402
from tests.support.bots import ADMIN  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402
from runtime_doubles import FakeSource, ScriptedKnowledge, load_folder  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Text that includes what breaks things: lone surrogates, NUL and other controls, invisible characters.
NASTY = st.sampled_from(["\ud800", "\udfff", "\x00", "\x1b", "\x7f", "\u200b", "\ufeff", "\u2028", "{", "}",
                         "%s", "'", '"', "\\", "/handoff", "hello", "where is my order AB12345"])
TEXT = st.lists(st.one_of(st.text(st.characters(codec=None), max_size=20), NASTY), max_size=8).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
FIELDS = ("message", "conversation_id", "token", "action", "turn_id", "rating", "comment", "force")


def bodies(known: dict[str, str]):
    """JSON objects over the endpoints' own fields (sometimes with real ids), plus any other keys."""
    value = st.one_of(JSON_VALUES, st.sampled_from(list(known.values()) or [""]))
    return st.dictionaries(st.one_of(st.sampled_from(FIELDS), TEXT), value, max_size=7)


class Served:
    """The app on 127.0.0.1:<port>, its loop in a thread."""

    def __init__(self, tmp_path):
        folder = load_folder(tmp_path, f'server.admin_token="{ADMIN}"', "server.watch_interval=0",
                             "server.rate_limit=0", "server.new_conversation_rate=0", "server.handoff_rate=0")
        kb = ScriptedKnowledge()
        self.app = create_app(folder.settings, folder, models=FakeSource(), open_knowledge=lambda: kb)
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(30)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.runner = AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        from aiohttp import web

        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.started.set()
        self.loop.run_forever()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            conn.close()

    def post_json(self, path: str, value, **headers) -> tuple[int, str, bytes]:
        # ensure_ascii: lone surrogates travel as \\ud800 escapes, valid JSON that decodes to unencodable text.
        return self.request("POST", path, json.dumps(value).encode(), {"Content-Type": "application/json", **headers})

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = Served(tmp_path_factory.mktemp("fuzz"))
    wait_until(lambda: server.request("GET", "/readyz")[0] == 200, 10, "the app to answer /readyz ready",
               interval_s=0.01)
    status, _, body = server.post_json("/api/chat", {"message": "hello"})
    assert status == 200
    server.known = json.loads(body)
    yield server
    server.close()


def assert_sound(status: int, content_type: str, body: bytes, sent) -> None:
    assert status < 500, (status, body[:300], sent)
    if status >= 400:
        assert content_type.startswith("application/json"), (status, content_type, sent)
        assert json.loads(body)["error"], sent


@FUZZ
@given(data=st.data())
def test_chat_never_fails_on_any_json(served, data):
    body = data.draw(bodies({k: str(v) for k, v in served.known.items() if k in ("conversation_id", "token")}))
    assert_sound(*served.post_json("/api/chat", body), body)


@FUZZ
@given(data=st.data())
def test_feedback_never_fails_on_any_json(served, data):
    body = data.draw(bodies({k: served.known[k] for k in ("conversation_id", "token", "turn_id")}))
    assert_sound(*served.post_json("/api/feedback", body), body)


@FUZZ
@given(value=JSON_VALUES)
def test_any_json_document_at_all(served, value):
    for path in ("/api/chat", "/api/feedback"):
        assert_sound(*served.post_json(path, value), value)
    assert_sound(*served.post_json("/admin/reload", value, Authorization=f"Bearer {ADMIN}"), value)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_any_bytes_as_a_json_body(served, raw):
    assert_sound(*served.request("POST", "/api/chat", raw, {"Content-Type": "application/json"}), raw)


@FUZZ
@given(token=TEXT, conversation_id=TEXT)
def test_history_with_any_token_and_id(served, token, conversation_id):
    from urllib.parse import quote

    path = "/api/conversations/" + quote(conversation_id.encode("utf-8", "surrogatepass"), safe="") or "x"
    header = token.encode("utf-8", "surrogatepass")
    if any(b in header for b in b"\r\n\x00"):  # http.client refuses to send these; the corpus covers raw ones
        header = header.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
    status, content_type, body = served.request("GET", path, None, {"X-Conversation-Token": header.decode("latin-1")})
    assert_sound(status, content_type, body, (token, conversation_id))


FUZZERS = (test_chat_never_fails_on_any_json, test_feedback_never_fails_on_any_json, test_any_json_document_at_all,
           test_any_bytes_as_a_json_body, test_history_with_any_token_and_id)


def test_the_server_is_healthy_after_the_fuzzing(served):
    """Fuzzes every endpoint itself first, so it checks the server after the fuzzing whether or not the tests
    above ran before it on this server."""
    for fuzz in FUZZERS:
        fuzz(served)
    assert served.request("GET", "/healthz")[0] == 200
    assert served.request("GET", "/readyz")[0] == 200
    status, _, body = served.post_json("/api/chat", {"message": "where is my order AB12345?"})
    assert status == 200 and "AB12345" in json.loads(body)["answer"]
