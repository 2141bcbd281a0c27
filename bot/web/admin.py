"""Admin endpoints (the admin_guard middleware checks the bearer token for every /admin/ path)."""

from __future__ import annotations

import time

from aiohttp import web

from bot.retraining import AlreadyRunning
from bot.web.runtime import RUNTIME
from bot.web.security import check_text, error, field as body_field, read_json


async def stats(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    router = rt.models.current
    batcher = router.classify if router is not None else None
    return web.json_response({
        **await rt.db(rt.log.stats),
        "model_version": rt.models.version, "reloads": rt.models.reloads, "ready": rt.ready,
        "uptime_s": round(time.time() - rt.started, 1),
        "batches": getattr(batcher, "calls", 0), "mean_batch": round(getattr(batcher, "mean_batch", 0.0), 2),
        "prediction_cache": batcher.stats() if hasattr(batcher, "stats") else None,
        "query_embedding_cache": rt.knowledge.cache_stats() if hasattr(rt.knowledge, "cache_stats") else None,
        "webhooks": {"sent": rt.notifier.sent, "failed": rt.notifier.failed},
    })


async def handoffs(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return web.json_response({"handoffs": await rt.db(rt.log.open_handoffs)})


async def release(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    conversation_id = check_text(request.match_info["conversation_id"], "the conversation id")
    if not await rt.db(rt.log.release, conversation_id):
        raise error(web.HTTPNotFound, f"conversation {conversation_id!r} is not waiting for a person")
    return web.json_response({"ok": True, "conversation_id": conversation_id})


async def reload(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_json(request, rt.settings.server.max_body_bytes) if request.can_read_body else {}
    force = body_field(body, "force", bool, required=False) or False
    try:
        result = await rt.models.reload(force=force)
    except Exception as e:  # the registry's or the bot folder's state (damaged, half-written), not a server fault
        raise error(web.HTTPConflict, f"reload failed, still serving {rt.models.version}: {e}") from None
    return web.json_response(result)


async def retrain_status(request: web.Request) -> web.Response:
    """The retrain schedule and the log of runs (newest first), whoever started them."""
    rt = request.app[RUNTIME]
    status = await rt.retraining.status(runs=20)
    runs = status.pop("runs")
    return web.json_response({"schedule": status, "serving": rt.models.version, "runs": runs})


async def retrain_now(request: web.Request) -> web.Response:
    """Start a gated retrain in its own process now; 409 while one is running."""
    rt = request.app[RUNTIME]
    try:
        pid = await rt.retraining.trigger("admin")
    except AlreadyRunning as e:
        raise error(web.HTTPConflict, str(e)) from None
    return web.json_response({"started": True, "pid": pid}, status=202)
