"""Liveness, readiness and the OpenAPI description."""

from __future__ import annotations

from aiohttp import web

from bot.web.openapi import spec
from bot.web.runtime import RUNTIME


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
