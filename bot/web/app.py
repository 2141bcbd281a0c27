"""The aiohttp application: `create_app` and the route table, and `serve`, the one way the command line starts
it; handlers live one module per area (`chat`, `health`, `admin`, `widget`, `review`, `analytics`).

Heavy resources (model, knowledge base, database, thread pools) are opened in a cleanup context;
the model and the knowledge base load in the background so /healthz answers at once and /readyz
says when the bot can chat. Model inference runs in its own thread (one micro-batch at a time) and
knowledge search in another beside it (concurrent questions batched likewise), so template answers never
queue behind searches; database work runs in one writer thread; a turn is committed before its answer is sent.
"""

from __future__ import annotations

import asyncio
import faulthandler
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable

from aiohttp import web

from bot.analytics.figures import Analytics
from bot.dialogue.conversations import ConversationLog
from bot.review.accounts import AccountStore
from bot.review.desk import ReviewDesk
from bot.database import migrate_stores, open_bot_database
from bot.analytics import jobs
from bot.analytics.drift import DriftStatus
from bot.folder.bot_folder import BotFolder
from bot.dialogue.handoff import HandoffNotifier
from bot.serving.readiness import knowledge_warnings
from bot.serving import logs, workers
from bot.serving.limits import FailedLogins, open_buckets
from bot.serving.model_slot import KnowledgeOnlySource, ModelSlot, ModelSource, RegistrySource
from bot.dialogue.router import Knowledge
from bot.settings import Settings
from bot.web import admin, analytics, chat, health, metrics, protocol, review, widget
from bot.web.runtime import RUNTIME, SETTINGS, Runtime, limit_model_threads
from bot.retraining import Retraining
from bot.web.security import RateLimiter, admin_guard, client_info, cors, json_errors
from training.redact import Redactor
from training.runs import RunLog

log = logging.getLogger("supportbot.app")

# PostgreSQL: chat requests' database calls on this many threads per worker (a turn mostly waits on round trips; on
# SQLite they share the one writer thread, which is faster there than any pool).
TURN_THREADS = 4


def open_knowledge_base(settings: Settings) -> Knowledge:
    """The bot's knowledge base, warmed up (embedder loaded) so that /readyz means ready."""
    from knowledge.base import KnowledgeBase

    kb = KnowledgeBase.open(settings.database_location, settings.index_path, settings.knowledge, threads=settings.server.model_threads)
    kb.search("warm up", k=1)
    limit_model_threads(settings.server.model_threads)
    return kb


def create_app(settings: Settings, folder: BotFolder, *, models: ModelSource | None = None,
               open_knowledge: Callable[[], Knowledge | None] | None = None,
               worker: int | None = None) -> web.Application:
    """The bot's web app. `models` and `open_knowledge` default to the bot's registry and knowledge base.
    `worker`: this process's number among `serve --workers N` (None: the only one)."""
    observed = metrics.Metrics()
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[client_info(settings), metrics.observe(settings, observed), cors(settings), json_errors,
                     admin_guard(settings)],
    )
    app.on_response_prepare.append(protocol.security_headers)
    app.on_response_prepare.append(metrics.request_id_header)
    app[SETTINGS] = settings
    app[metrics.METRICS] = observed
    app.cleanup_ctx.append(functools.partial(
        _runtime, settings=settings, folder=folder, models=models,
        open_knowledge=open_knowledge or functools.partial(open_knowledge_base, settings), worker=worker,
    ))
    app.router.add_post("/api/chat", chat.chat)
    app.router.add_post("/api/feedback", chat.feedback)
    app.router.add_get("/api/conversations/{conversation_id}", chat.conversation)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/openapi.json", health.openapi)
    app.router.add_get("/metrics", metrics.handler(settings))
    app.router.add_get("/admin/stats", admin.stats)
    app.router.add_get("/admin/handoffs", admin.handoffs)
    app.router.add_post("/admin/handoffs/{conversation_id}/release", admin.release)
    app.router.add_post("/admin/reload", admin.reload)
    app.router.add_get("/admin/retrain", admin.retrain_status)
    app.router.add_post("/admin/retrain", admin.retrain_now)
    widget.add_routes(app, settings, [i.examples[0] for i in folder.intents.values() if i.examples][:4])
    review.add_routes(app, settings)  # /review/ pages and /api/review/ (login, sessions, CSRF)
    analytics.add_routes(app)  # /review/analytics, behind the same login
    return app


async def _runtime(app: web.Application, settings: Settings, folder: BotFolder, models: ModelSource | None,
                   open_knowledge: Callable[[], Knowledge | None], worker: int | None) -> AsyncIterator[None]:
    s, r = settings.server, settings.review
    shared = await asyncio.to_thread(open_buckets, settings, worker)
    rt = Runtime(
        settings=settings, folder=folder,
        model_thread=ThreadPoolExecutor(1, thread_name_prefix="model"),
        pool=ThreadPoolExecutor(1, thread_name_prefix="search"),
        writer=ThreadPoolExecutor(1, thread_name_prefix="db-writer"),
        turn_threads=ThreadPoolExecutor(TURN_THREADS, thread_name_prefix="db-turns") if settings.on_postgres else None,
        limiter=RateLimiter(s.rate_limit, s.rate_burst, shared=shared, name="requests"),
        notifier=HandoffNotifier(s.handoff_webhook, s.webhook_timeout),
        logins=FailedLogins(r.login_attempts, r.address_attempts, r.login_window_s, shared=shared),
        new_conversations=RateLimiter(s.new_conversation_rate, s.new_conversation_burst,
                                      what="too many new conversations from this address", shared=shared,
                                      name="conversations"),
        handoffs=RateLimiter(s.handoff_rate, s.handoff_burst, what="too many handoffs from this address",
                             shared=shared, name="handoffs"),
        worker=worker,
    )
    rt.metrics = app[metrics.METRICS]
    await rt.db(_open_stores, rt)
    rt.models = ModelSlot(models or RegistrySource(settings), rt.build_router)
    rt.retraining = Retraining(folder, read_runs=lambda n: rt.db(lambda: RunLog(rt.log.db).runs(limit=n)))
    rt.drift = DriftStatus(settings.analytics.drift_alert, settings.analytics.drift_min_turns)
    app[RUNTIME] = rt
    first = worker in (None, 0)  # the jobs of which the bot needs one run in the first worker only
    tasks = [asyncio.create_task(_load(rt, open_knowledge))]
    if first:
        for warning in rt.warnings:
            log.warning("%s", warning)
        rt.catching_up = True
        tasks.append(asyncio.create_task(jobs.fold_on_start(rt)))
        tasks.append(asyncio.create_task(jobs.keep_growing(rt)))
    if s.watch_interval > 0:  # every worker: a promotion reaches them all
        tasks.append(asyncio.create_task(rt.models.watch(s.watch_interval, rt.intents_changed)))
    if settings.retrain.interval > 0 and first:
        tasks.append(asyncio.create_task(rt.retraining.run()))
    if settings.analytics.drift_alert > 0 and first:
        tasks.append(asyncio.create_task(jobs.watch_drift(rt)))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await rt.notifier.close()
    if rt.knowledge is not None and hasattr(rt.knowledge, "close"):
        await asyncio.to_thread(rt.knowledge.close)
    rt.model_thread.shutdown(wait=True)
    rt.pool.shutdown(wait=True)
    if rt.turn_threads is not None:
        rt.turn_threads.shutdown(wait=True)
    await rt.db(rt.log.db.close)
    rt.writer.shutdown(wait=True)
    rt.logins.close()
    if shared is not None:
        shared.close()


def _open_stores(rt: Runtime) -> None:
    """The bot's database and the stores the handlers share, every store's tables migrated first. Run on the
    database thread, which owns an SQLite connection from then on (core.sqlite.OwnedConnection): a store opened
    anywhere else would migrate beside that thread's transaction."""
    db = open_bot_database(rt.settings)
    migrate_stores(db)
    a = rt.settings.analytics
    rt.log = ConversationLog(db, Redactor(rt.settings.privacy))
    rt.accounts = AccountStore(db)
    rt.desk = ReviewDesk(db, rt.folder)
    rt.analytics = Analytics(db, a.return_window, a.session_gap)
    rt.warnings = knowledge_warnings(rt.folder, db)


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
    rt.loaded.set()


def serve(folder: BotFolder, knowledge_only: bool = False) -> int:
    """Serve the bot folder until interrupted: the app in this process, or in server.workers processes sharing
    the port (bot.serving.workers). `knowledge_only`: no intent model, every message searches knowledge/."""
    s = folder.settings.server
    logs.configure(s.log_format)
    if s.workers == 1:
        return _serve(folder, knowledge_only)
    metrics_dir = workers.prepare_metrics_dir(folder.settings.state_path)
    return workers.supervise(s.workers, functools.partial(_worker, folder, knowledge_only), s.host, s.port,
                             metrics_dir)


def _worker(folder: BotFolder, knowledge_only: bool, index: int) -> None:
    """One of `serve --workers N`'s processes (started by bot.serving.workers, in a fresh interpreter)."""
    logs.configure(folder.settings.server.log_format)
    _serve(folder, knowledge_only, worker=index)


def _serve(folder: BotFolder, knowledge_only: bool, worker: int | None = None) -> int:
    """The app on server.host:server.port in this process until interrupted."""
    settings = folder.settings
    faulthandler.enable()  # a fatal signal (SIGBUS, SIGSEGV) leaves a traceback in the log, not silence
    app = create_app(settings, folder, models=KnowledgeOnlySource() if knowledge_only else None, worker=worker)
    # In JSON mode the request middleware (bot.web.metrics.observe) writes the access lines, with request ids.
    text_access = settings.server.access_log and settings.server.log_format == "text"
    access_log = logging.getLogger("supportbot.access") if text_access else None
    try:  # like web.run_app, with the HTTP parser's refusals in JSON too
        asyncio.run(protocol.serve(app, settings.server.host, settings.server.port, reuse_port=worker is not None,
                                   handle_signals=True, access_log=access_log, access_log_class=protocol.AccessLogger,
                                   **protocol.connection_limits(settings)))
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    return 0
