"""The HTTP layer below the app: what aiohttp's parser refuses answers as JSON `{"error": ...}` too, and every
response carries the headers that stop content sniffing and framing.

aiohttp answers a request its parser rejects (a header over the size limit, too many headers, conflicting
`Transfer-Encoding`/`Content-Length`, a bad chunk, a malformed request line) from
`RequestHandler.handle_error`, before any middleware runs, in plain text. `AppRunner` here swaps in a handler
whose `handle_error` says the same in JSON. What still cannot be JSON: a connection aiohttp closes without
answering (a body cut off mid-way, a client that stops reading) and bytes that are not HTTP at all after a
response has begun.
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus

from aiohttp import web, web_log
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

HTML_FRAMING = "frame-ancestors 'none'"
log = logging.getLogger("supportbot.http")


class JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, with its own refusals in JSON."""

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            super().handle_error(request, status, exc, message)  # logs the traceback; raises if output began
            reason = "internal error; the server logged it"
        else:  # a client's malformed request: one line, no traceback, never the bytes it sent
            reason = _first_line(message) or HTTPStatus(status).phrase
            log.info("refused a malformed request from %s: %d %s", request.remote, status, reason)
            if request.writer.output_size > 0:
                raise ConnectionError("response already begun; cannot send the refusal")
        response = web.Response(status=status, text=json.dumps({"error": reason}), content_type="application/json",
                                headers={"X-Content-Type-Options": "nosniff"})
        response.force_close()
        return response


def _first_line(message: str | None) -> str:
    """aiohttp's parser messages carry the offending bytes on later lines; the reason is the first."""
    if not message:
        return ""
    line = message.strip().splitlines()[0] if message.strip() else ""
    line = re.sub(r":\s*b(['\"]).*$", "", line)  # not the client's own bytes back at it
    return line[:200]


class JsonErrorServer(Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """`web.AppRunner` whose protocol-level refusals are JSON (used by `serve` and by the tests)."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = JsonErrorServer  # same state, our handler factory
        return server


class AccessLogger(web_log.AccessLogger):
    """`%a` is the client's address as the app saw it (`server.trusted_proxies`), not the proxy's."""

    def __init__(self, logger, log_format: str = web_log.AccessLogger.LOG_FORMAT) -> None:
        # Not aiohttp's __init__: it shares one compiled-format cache with the stock logger.
        web_log.AbstractAccessLogger.__init__(self, logger, log_format=log_format)
        self._log_format, self._methods = self.compile_format(log_format)

    def compile_format(self, log_format: str):
        fmt, methods = super().compile_format(log_format)
        return fmt, [web_log.KeyMethod(key, _client if method is web_log.AccessLogger._format_a else method)
                     for key, method in methods]


def _client(request, response, time) -> str:
    if request is None:
        return "-"
    address = request.get("client_address") if isinstance(request, web.Request) else None
    return address or request.remote or "-"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: no MIME sniffing anywhere; HTML pages may not be framed by other sites."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        response.headers.setdefault("X-Frame-Options", "DENY")
        csp = response.headers.get("Content-Security-Policy")
        if csp is None:
            response.headers["Content-Security-Policy"] = HTML_FRAMING
        elif "frame-ancestors" not in csp:
            response.headers["Content-Security-Policy"] = f"{csp}; {HTML_FRAMING}"


def connection_limits(settings) -> dict:
    """The runner's limits on a connection: aiohttp's keep-alive timer also runs from the moment a connection opens
    until its first request's headers are in, so it closes a client that never completes its request line and
    headers as well as one idle between requests (aiohttp's own default is an hour)."""
    return {"keepalive_timeout": settings.server.idle_timeout_s}


async def serve(app: web.Application, host: str, port: int, reuse_port: bool = False, **runner_args) -> None:
    """Run the app until cancelled, like `web.run_app` but with JSON protocol errors. `reuse_port`: one of
    several worker processes on the port (SO_REUSEPORT), which joins it only once its model and knowledge base
    are loaded, so that a worker starting (or restarted) never answers customers "still loading" while the
    others could answer them."""
    import asyncio

    from bot.web.runtime import RUNTIME

    runner = AppRunner(app, **runner_args)
    await runner.setup()
    try:
        if reuse_port:
            await app[RUNTIME].loaded.wait()
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
