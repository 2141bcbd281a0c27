"""Admin endpoints: bearer token, stats, hot reload (old models are released), handoff webhook."""

from __future__ import annotations

import asyncio
import gc
import weakref

from aiohttp import web

from bot.web.app import RUNTIME
from runtime_doubles import FakeSource
from tests.support.waiting import eventually

AUTH = {"Authorization": "Bearer test-admin-token"}


def model_version(db, turn_id: int) -> str:
    return db.execute("select model_version from turns where id = ?", [turn_id]).fetchone()[0]


async def test_admin_needs_the_bearer_token(make_client):
    client = await make_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic test-admin-token"}):
        response = await client.get("/admin/stats", headers=headers)
        assert response.status == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        assert "Bearer" in (await response.json())["error"]
    assert (await client.get("/admin/stats", headers=AUTH)).status == 200


async def test_admin_is_disabled_without_a_configured_token(make_client, monkeypatch):
    monkeypatch.delenv("SUPPORTBOT_ADMIN_TOKEN", raising=False)
    client = await make_client('server.admin_token=""')
    response = await client.post("/admin/reload", headers={"Authorization": "Bearer "})
    assert response.status == 403 and "admin endpoints are disabled" in (await response.json())["error"]


async def test_admin_token_from_the_environment(make_client, monkeypatch):
    monkeypatch.setenv("SUPPORTBOT_ADMIN_TOKEN", "from-env")
    client = await make_client('server.admin_token=""')
    response = await client.get("/admin/stats", headers={"Authorization": "Bearer from-env"})
    assert response.status == 200


async def test_stats_count_turns_routes_and_batching(make_client):
    client = await make_client()
    await asyncio.gather(*(client.post("/api/chat", json={"message": m}) for m in ("hello", "blorp", "hello")))
    stats = await (await client.get("/admin/stats", headers=AUTH)).json()
    assert stats["turns"] == 3 and stats["routes"] == {"smalltalk": 2, "fallback": 1}
    assert stats["open_flags"] == {"low_confidence": 1, "fallback": 1}
    assert stats["model_version"] == "v1" and stats["batches"] >= 1 and stats["mean_batch"] >= 1


async def test_reload_serves_the_new_version_and_releases_old_models(make_client):
    source = FakeSource("v1")
    client = await make_client(source=source)
    unchanged = await (await client.post("/admin/reload", headers=AUTH)).json()
    assert unchanged == {"previous": "v1", "version": "v1", "changed": False}
    source.version = "v2"
    changed = await (await client.post("/admin/reload", headers=AUTH)).json()
    assert changed == {"previous": "v1", "version": "v2", "changed": True}
    reply = await (await client.post("/api/chat", json={"message": "hello"})).json()
    rt = client.app[RUNTIME]
    assert await rt.db(model_version, rt.log.db, reply["turn_id"]) == "v2"  # the database thread owns it

    for _ in range(20):
        response = await client.post("/admin/reload", json={"force": True}, headers=AUTH)
        assert response.status == 200
        await client.post("/api/chat", json={"message": "hello"})
    refs = [weakref.ref(m) for m in source.loaded]
    source.loaded.clear()
    gc.collect()
    alive = [r for r in refs if r() is not None]
    assert len(refs) == 22 and len(alive) == 1  # only the serving model is still in memory
    assert alive[0]() is client.app[RUNTIME].models.current.model


async def test_reload_reads_intents_again_and_keeps_serving_when_they_are_broken(make_client, tmp_path):
    client = await make_client()
    intents = tmp_path / "bot" / "intents.yaml"
    intents.write_text(intents.read_text().replace("Hello! How can I help?", "Welcome back!"))
    assert (await client.post("/admin/reload", json={"force": True}, headers=AUTH)).status == 200
    assert (await (await client.post("/api/chat", json={"message": "hello"})).json())["answer"] == "Welcome back!"
    intents.write_text("intents: [")
    response = await client.post("/admin/reload", json={"force": True}, headers=AUTH)
    assert response.status == 409 and "invalid YAML" in (await response.json())["error"]  # the folder's state
    assert (await (await client.post("/api/chat", json={"message": "hello"})).json())["answer"] == "Welcome back!"


async def test_requests_in_flight_finish_on_the_model_they_started_with(make_client):
    source = FakeSource("v1")
    client = await make_client(source=source)
    rt = client.app[RUNTIME]
    old = rt.models.current
    classifying, gate = asyncio.Event(), asyncio.Event()
    original = old.classify

    async def slow(text):
        classifying.set()
        await gate.wait()
        return await original(text)

    old.classify = slow
    in_flight = asyncio.ensure_future(client.post("/api/chat", json={"message": "where is my order AB12345"}))
    await asyncio.wait_for(classifying.wait(), 10)  # the request is inside the old model
    source.version = "v2"
    await client.post("/admin/reload", headers=AUTH)
    assert rt.models.version == "v2"
    gate.set()
    reply = await (await in_flight).json()
    assert await rt.db(model_version, rt.log.db, reply["turn_id"]) == "v1"


async def test_watching_the_pointer_picks_up_a_new_version(make_client):
    source = FakeSource("v1")
    client = await make_client("server.watch_interval=0.02", source=source)
    source.version = "v2"

    async def moved() -> bool:
        return client.app[RUNTIME].models.version == "v2"

    await eventually(moved, 10, "the watcher to load v2")


async def test_intents_yaml_edited_by_another_worker_is_served_without_a_new_model(make_client, tmp_path):
    """Another worker's review page edits intents.yaml: this one's watch reads it again with the same model."""
    client = await make_client("server.watch_interval=0.02")
    rt = client.app[RUNTIME]
    before = rt.models.current
    intents = tmp_path / "bot" / "intents.yaml"
    intents.write_text(intents.read_text().replace("Order {order_id} is on its way.", "Order {order_id} ships today."))

    async def reread() -> bool:
        return rt.models.current is not before

    await eventually(reread, 10, "the watcher to read intents.yaml again")
    reply = await (await client.post("/api/chat", json={"message": "Where is my order AB12345?"})).json()
    assert reply["answer"] == "Order AB12345 ships today." and rt.models.version == "v1"


async def test_a_failed_reload_keeps_serving_the_old_model(make_client):
    class Flaky(FakeSource):
        def load(self):
            if self.version == "broken":
                raise OSError("weights are truncated")
            return super().load()

    source = Flaky("v1")
    client = await make_client(source=source)
    source.version = "broken"
    response = await client.post("/admin/reload", headers=AUTH)
    assert response.status == 409 and "still serving v1" in (await response.json())["error"]  # not a server fault
    assert (await client.post("/api/chat", json={"message": "hello"})).status == 200


async def test_handoff_webhook_is_called_without_blocking_the_answer(make_client, aiohttp_server):
    received: list[dict] = []
    release = asyncio.Event()

    async def hook(request):
        received.append(await request.json())
        await release.wait()  # a slow receiver
        return web.Response()

    hook_app = web.Application()
    hook_app.router.add_post("/hook", hook)
    server = await aiohttp_server(hook_app)
    client = await make_client(f'server.handoff_webhook="http://127.0.0.1:{server.port}/hook"',
                               "server.webhook_timeout=5")
    reply = await (await client.post("/api/chat", json={"message": "I want a human"})).json()
    assert reply["handoff"]  # answered while the webhook is still waiting

    async def arrived() -> list[dict]:
        return received

    await eventually(arrived, 10, "the webhook to arrive")
    assert received == [{"event": "handoff", "bot": "bot", "conversation_id": reply["conversation_id"],
                         "turn_id": reply["turn_id"], "reason": "intent talk_to_human routes to a person"}]
    release.set()
