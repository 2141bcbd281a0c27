"""What stands between the internet and the bot: JSON errors, CORS allow-list, admin bearer token,
request-body checks and a per-client rate limit.

Every refusal is a 4xx JSON `{"error": reason}`; an unexpected exception is a 500 with a generic
reason (details go to the log, never to the client), and the server goes on serving.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable

from aiohttp import web

from bot.settings import Settings

log = logging.getLogger("supportbot.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GUARDED = ("/api/", "/admin/")  # paths a foreign origin may not call
ADMIN = "/admin/"
TOKEN_ENV = "SUPPORTBOT_ADMIN_TOKEN"


def error(status: type[web.HTTPException], reason: str, headers: dict[str, str] | None = None) -> web.HTTPException:
    """An HTTP error whose body is `{"error": reason}`; raise it."""
    extra = {"max_size": 0, "actual_size": 0} if status is web.HTTPRequestEntityTooLarge else {}
    return status(text=json.dumps({"error": reason}), content_type="application/json", headers=headers, **extra)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        body = e.text if e.content_type == "application/json" else json.dumps({"error": e.text or e.reason})
        headers = {k: v for k, v in e.headers.items() if k.lower() in ("allow", "www-authenticate", "retry-after")}
        return web.Response(text=body, status=e.status, content_type="application/json", headers=headers)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal error; the server logged it"}, status=500)


def cors(settings: Settings) -> Callable:
    """Only listed origins (and the server's own) may call the API from a browser."""
    allowed = frozenset(o.rstrip("/") for o in settings.server.allowed_origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        ok = origin in allowed or origin == f"{request.scheme}://{request.host}"
        if not ok and (request.path.startswith(GUARDED) or request.method == "OPTIONS"):
            return web.json_response({"error": f"origin {origin} is not allowed"}, status=403)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers={
                **_allow(origin), "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, X-Conversation-Token, Authorization",
                "Access-Control-Max-Age": "600",
            })
        response = await handler(request)
        if ok:
            response.headers["Access-Control-Allow-Origin"] = origin
            vary = response.headers.get("Vary")
            if not vary or "origin" not in vary.lower():  # keep e.g. Vary: Accept-Encoding
                response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
        return response

    return middleware


def _allow(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def admin_token(settings: Settings) -> str:
    return settings.server.admin_token or os.environ.get(TOKEN_ENV, "")


def admin_guard(settings: Settings) -> Callable:
    """Every path under /admin/ needs `Authorization: Bearer <token>`; no token configured = disabled."""
    expected = admin_token(settings).encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN) and request.method != "OPTIONS":
            if not expected:
                raise error(web.HTTPForbidden, f"admin endpoints are disabled: set server.admin_token or {TOKEN_ENV}")
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
                raise error(web.HTTPUnauthorized, "admin endpoints need 'Authorization: Bearer <admin token>'",
                            {"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return middleware


async def read_json(request: web.Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object, or a 4xx: 415 not JSON/not text, 413 too big, 400 malformed."""
    if request.content_type != "application/json":
        raise error(web.HTTPUnsupportedMediaType, "send Content-Type: application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise error(web.HTTPRequestEntityTooLarge, f"request body over {max_bytes} bytes")
    raw = await request.read()  # aiohttp enforces client_max_size on chunked bodies too
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(web.HTTPUnsupportedMediaType, "the body is not UTF-8 text") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(web.HTTPBadRequest, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(body, dict):
        raise error(web.HTTPBadRequest, "expected a JSON object")
    return body


def field(body: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    """A typed field of a JSON body, or 400 naming it."""
    value = body.get(name)
    if value is None:
        if required:
            raise error(web.HTTPBadRequest, f"missing field: {name}")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise error(web.HTTPBadRequest, f"field {name} must be {'a string' if kind is str else kind.__name__}")
    return value


class RateLimiter:
    """Token bucket per client key; the least recently seen clients are forgotten past `max_clients`."""

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000):
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last time)

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed

    def check(self, request: web.Request, token: str | None) -> None:
        """429 when this client (conversation token, else remote address) is over its rate."""
        if not self.allow(f"t:{token}" if token else f"ip:{request.remote}"):
            raise error(web.HTTPTooManyRequests, "too many requests; slow down",
                        {"Retry-After": str(max(1, round(1 / self.rate)))})
