"""Liveness, readiness and the OpenAPI description."""

from __future__ import annotations

import os

from aiohttp import web

from bot.web.openapi import spec
from bot.web.runtime import RUNTIME
from core.sqlite import StorageError


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    if rt.storage_error:  # a database fault was seen: try a small write, so a freed disk shows at once
        try:
            await rt.db(rt.log.probe)
        except StorageError:
            pass
    ready = rt.ready and not rt.storage_error
    body = {"ready": ready, "model_version": rt.models.version, "knowledge": rt.knowledge is not None,
            "storage": not rt.storage_error}
    if rt.worker is not None:  # which of `serve --workers N` answered
        body.update(worker=rt.worker, pid=os.getpid())
    if rt.catching_up:  # the first worker's start-up jobs: analytics fold, review queue, growing clusters
        body["catching_up"] = True
    if rt.drift is not None and rt.drift.alert_level:
        body["drift"] = rt.drift.to_json()  # measured by the drift watch, never here: this stays cheap
    if rt.warnings:  # ready, but some messages (or all) can only fall back: said at start too
        body["warnings"] = rt.warnings
    if not ready:
        body["error"] = rt.storage_error or rt.models.error or rt.knowledge_error
    return web.json_response(body, status=200 if ready else 503, headers=None if ready else {"Retry-After": "5"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())
