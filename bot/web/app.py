"""The aiohttp application: chat API, conversation history, feedback, health, admin, OpenAPI.

Heavy resources (model, knowledge base, database, thread pools) are opened in a cleanup context;
the model and the knowledge base load in the background so /healthz answers at once and /readyz
says when the bot can chat. Model inference runs in its own thread (one micro-batch at a time) and
knowledge search in another beside it (concurrent questions batched likewise), so template answers never
queue behind searches; database work runs in one writer thread; a turn is committed before its answer is sent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from bot.web import widget
from bot.batcher import MicroBatcher
from bot.conversations import ConversationLog, ForeignConversation, UnknownConversation
from bot.folder import BotFolder, load_intents
from bot.handoff import HandoffNotifier
from bot.model_slot import ModelSlot, ModelSource, RegistrySource
from bot.web.openapi import spec
from bot.router import CalibratedClassifier, Conversation, Knowledge, Router
from bot.web.security import RateLimiter, admin_guard, cors, error, field as body_field, json_errors, read_json
from bot.settings import Settings
from knowledge.database import connect
from training.redact import Redactor

log = logging.getLogger("supportbot.app")


@dataclass
class Runtime:
    """Everything the handlers share; built in the cleanup context."""

    settings: Settings
    folder: BotFolder
    model_thread: ThreadPoolExecutor  # intent-model batches
    pool: ThreadPoolExecutor  # knowledge-base batches
    writer: ThreadPoolExecutor  # the one database thread
    limiter: RateLimiter
    notifier: HandoffNotifier
    models: ModelSlot | None = None
    log: ConversationLog | None = None
    knowledge: Knowledge | None = None
    knowledge_error: str = "the knowledge base is loading"
    started: float = field(default_factory=time.time)
    _locks: weakref.WeakValueDictionary = field(default_factory=weakref.WeakValueDictionary)
    _search_batcher: MicroBatcher | None = None

    async def db(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, functools.partial(fn, *args))

    def lock(self, conversation_id: str) -> asyncio.Lock:
        """One turn at a time per conversation (its state is read, updated and written back)."""
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    @property
    def ready(self) -> bool:
        return self.models is not None and self.models.current is not None and not self.knowledge_error

    async def search(self, text: str) -> Any:
        if self.knowledge is None:
            return None
        if self._search_batcher is None:  # concurrent questions share one query-embedding call
            s = self.settings.server
            self._search_batcher = MicroBatcher(self.knowledge.answer_many, self.pool, s.batch_size,
                                                s.batch_wait_ms / 1000)
        return await self._search_batcher(text)

    def build_router(self, model: CalibratedClassifier) -> Router:
        """A router for a newly loaded model, with intents.yaml read again: a new version may know new
        intents, and edited answers apply without a restart."""
        s = self.settings.server
        _limit_torch_threads(s.torch_threads)  # loading a model may have changed it
        intents, entities = load_intents(self.folder.path / "intents.yaml")
        batcher = MicroBatcher(model.predict, self.model_thread, s.batch_size, s.batch_wait_ms / 1000)
        return Router(intents, entities, model, batcher, self.search, self.settings)


RUNTIME = web.AppKey("runtime", Runtime)
SETTINGS = web.AppKey("settings", Settings)


def _limit_torch_threads(n: int) -> None:
    """Concurrent model calls each using every core oversubscribe the CPU (many times slower when busy)."""
    torch = sys.modules.get("torch")  # only when a real model is loaded
    if torch is not None and n > 0:
        torch.set_num_threads(n)


def open_knowledge_base(settings: Settings) -> Knowledge:
    """The bot's knowledge base, warmed up (embedder loaded) so that /readyz means ready."""
    from knowledge.base import KnowledgeBase

    kb = KnowledgeBase.open(settings.db_path, settings.index_path, settings.knowledge)
    kb.search("warm up", k=1)
    _limit_torch_threads(settings.server.torch_threads)
    return kb


def create_app(settings: Settings, folder: BotFolder, *, models: ModelSource | None = None,
               open_knowledge: Callable[[], Knowledge | None] | None = None) -> web.Application:
    """The bot's web app. `models` and `open_knowledge` default to the bot's registry and knowledge base."""
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[cors(settings), json_errors, admin_guard(settings)],
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(functools.partial(
        _runtime, settings=settings, folder=folder, models=models,
        open_knowledge=open_knowledge or functools.partial(open_knowledge_base, settings),
    ))
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/feedback", feedback)
    app.router.add_get("/api/conversations/{conversation_id}", conversation)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/admin/stats", stats)
    app.router.add_get("/admin/handoffs", handoffs)
    app.router.add_post("/admin/handoffs/{conversation_id}/release", release)
    app.router.add_post("/admin/reload", reload)
    widget.add_routes(app, settings)
    return app


async def _runtime(app: web.Application, settings: Settings, folder: BotFolder, models: ModelSource | None,
                   open_knowledge: Callable[[], Knowledge | None]) -> AsyncIterator[None]:
    s = settings.server
    rt = Runtime(
        settings=settings, folder=folder,
        model_thread=ThreadPoolExecutor(1, thread_name_prefix="model"),
        pool=ThreadPoolExecutor(1, thread_name_prefix="search"),
        writer=ThreadPoolExecutor(1, thread_name_prefix="db-writer"),
        limiter=RateLimiter(s.rate_limit, s.rate_burst),
        notifier=HandoffNotifier(s.handoff_webhook, s.webhook_timeout),
    )
    rt.log = await rt.db(lambda: ConversationLog(connect(settings.db_path), Redactor(settings.privacy)))
    rt.models = ModelSlot(models or RegistrySource(settings), rt.build_router)
    app[RUNTIME] = rt
    tasks = [asyncio.create_task(_load(rt, open_knowledge))]
    if s.watch_interval > 0:
        tasks.append(asyncio.create_task(rt.models.watch(s.watch_interval)))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await rt.notifier.close()
    if rt.knowledge is not None and hasattr(rt.knowledge, "close"):
        await asyncio.to_thread(rt.knowledge.close)
    rt.model_thread.shutdown(wait=True)
    rt.pool.shutdown(wait=True)
    await rt.db(rt.log.db.close)
    rt.writer.shutdown(wait=True)


async def _load(rt: Runtime, open_knowledge: Callable[[], Knowledge | None]) -> None:
    """Model, then knowledge base, each in a thread; failures show in /readyz.

    One after the other: transformers' lazy imports are not safe to run from two threads at once.
    """
    try:
        await rt.models.reload()
    except Exception as e:
        log.error("%s", e)
    try:
        rt.knowledge = await asyncio.to_thread(open_knowledge)
        rt.knowledge_error = ""
    except Exception as e:
        rt.knowledge_error = f"opening the knowledge base failed: {e}"
        log.error("%s", rt.knowledge_error)


# chat API
def _runtime_ready(request: web.Request) -> Runtime:
    rt = request.app[RUNTIME]
    if not rt.ready:
        reason = (rt.models.error if rt.models else "") or rt.knowledge_error or "the bot is starting"
        raise error(web.HTTPServiceUnavailable, reason, {"Retry-After": "2"})
    return rt


async def _open(rt: Runtime, conversation_id: str, token: str | None) -> Conversation:
    try:
        return await rt.db(rt.log.open, conversation_id, token)
    except UnknownConversation as e:
        raise error(web.HTTPNotFound, str(e)) from None
    except ForeignConversation as e:
        raise error(web.HTTPForbidden, str(e)) from None


async def chat(request: web.Request) -> web.Response:
    rt = _runtime_ready(request)
    s = rt.settings.server
    body = await read_json(request, s.max_body_bytes)
    action = body_field(body, "action", str, required=False)
    if action not in (None, "handoff"):
        raise error(web.HTTPBadRequest, "field action must be \"handoff\" when given")
    if "message" not in body and action is None:
        raise error(web.HTTPBadRequest, "missing field: message")
    message = "" if body.get("message") is None else body["message"]
    if not isinstance(message, str):
        raise error(web.HTTPUnsupportedMediaType, "only text messages are supported: message must be a string")
    if len(message) > s.max_message_chars:
        raise error(web.HTTPRequestEntityTooLarge, f"message over {s.max_message_chars} characters")
    if not message.strip() and action is None:
        raise error(web.HTTPBadRequest, "message is empty")
    conversation_id = body_field(body, "conversation_id", str, required=False)
    token = body_field(body, "token", str, required=False)
    rt.limiter.check(request, token)
    router = rt.models.current  # this request's model, whatever a reload does meanwhile

    new_token = None
    if conversation_id is None:
        convo, new_token = rt.log.new()
        conversation_id = convo.id
    async with rt.lock(conversation_id):
        if new_token is None:
            convo = await _open(rt, conversation_id, token)
        reply = await router.respond(message, convo, action)
        turn_id = await rt.db(rt.log.record_turn, convo, message, reply, new_token)
    if "handoff" in reply.decision.flags:
        rt.notifier.notify({
            "event": "handoff", "bot": rt.settings.name, "conversation_id": convo.id, "turn_id": turn_id,
            "reason": reply.decision.reason,
        })
    return web.json_response({
        "conversation_id": convo.id, "token": new_token or token, "turn_id": turn_id, "answer": reply.answer,
        "quick_replies": [{"label": q.label, "value": q.value} for q in reply.quick_replies],
        "sources": [{"title": src.title, "url": src.url} for src in reply.decision.sources],
        "route": reply.decision.route, "handoff": convo.handoff,
    })


async def feedback(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_json(request, rt.settings.server.max_body_bytes)
    conversation_id = body_field(body, "conversation_id", str)
    token = body_field(body, "token", str)
    turn_id = body_field(body, "turn_id", int)
    rating = body_field(body, "rating", str)
    comment = body_field(body, "comment", str, required=False) or ""
    if rating not in ("up", "down"):
        raise error(web.HTTPBadRequest, "field rating must be \"up\" or \"down\"")
    if len(comment) > rt.settings.server.max_message_chars:
        raise error(web.HTTPRequestEntityTooLarge, f"comment over {rt.settings.server.max_message_chars} characters")
    rt.limiter.check(request, token)
    await _open(rt, conversation_id, token)
    try:
        await rt.db(rt.log.feedback, conversation_id, turn_id, rating, comment)
    except UnknownConversation as e:
        raise error(web.HTTPNotFound, str(e)) from None
    return web.json_response({"ok": True})


async def conversation(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    token = request.headers.get("X-Conversation-Token")
    rt.limiter.check(request, token)
    conversation_id = request.match_info["conversation_id"]
    convo = await _open(rt, conversation_id, token)
    turns = await rt.db(rt.log.history, conversation_id)
    return web.json_response({"conversation_id": conversation_id, "handoff": convo.handoff, "turns": turns})


# health
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = {"ready": rt.ready, "model_version": rt.models.version, "knowledge": rt.knowledge is not None}
    if not rt.ready:
        body["error"] = rt.models.error or rt.knowledge_error
    return web.json_response(body, status=200 if rt.ready else 503)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())


# admin (the admin_guard middleware checks the bearer token for every /admin/ path)
async def stats(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    router = rt.models.current
    batcher = router.classify if router is not None else None
    return web.json_response({
        **await rt.db(rt.log.stats),
        "model_version": rt.models.version, "reloads": rt.models.reloads, "ready": rt.ready,
        "uptime_s": round(time.time() - rt.started, 1),
        "batches": getattr(batcher, "calls", 0), "mean_batch": round(getattr(batcher, "mean_batch", 0.0), 2),
        "webhooks": {"sent": rt.notifier.sent, "failed": rt.notifier.failed},
    })


async def handoffs(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response({"handoffs": await rt.db(rt.log.open_handoffs)})


async def release(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    conversation_id = request.match_info["conversation_id"]
    if not await rt.db(rt.log.release, conversation_id):
        raise error(web.HTTPNotFound, f"conversation {conversation_id!r} is not waiting for a person")
    return web.json_response({"ok": True, "conversation_id": conversation_id})


async def reload(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_json(request, rt.settings.server.max_body_bytes) if request.can_read_body else {}
    force = body_field(body, "force", bool, required=False) or False
    try:
        result = await rt.models.reload(force=force)
    except Exception as e:
        raise error(web.HTTPInternalServerError, f"reload failed, still serving {rt.models.version}: {e}") from None
    return web.json_response(result)
