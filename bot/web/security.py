"""What stands between the internet and the bot: JSON errors, CORS allow-list, admin bearer token,
request-body checks and a per-client rate limit.

Every refusal is a 4xx JSON `{"error": reason}`; an unexpected exception is a 500 with a generic
reason (details go to the log, never to the client), and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import math
import re
import time
import unicodedata
from collections import OrderedDict
from urllib.parse import urlsplit
from typing import Any, Awaitable, Callable, Sequence, Union

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.serving.keys import TOKEN_ENV, admin_token
from bot.serving.limits import Buckets, BucketsUnavailable, PostgresBuckets
from bot.settings import Settings
from core.sqlite import StorageError

log = logging.getLogger("supportbot.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GUARDED = ("/api/", "/admin/")  # paths a foreign origin may not call
ADMIN = "/admin/"
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
LOOPBACK_HOSTS = ("localhost",)


def error(status: type[web.HTTPException], reason: str, headers: dict[str, str] | None = None) -> web.HTTPException:
    """An HTTP error whose body is `{"error": reason}`; raise it."""
    extra = {"max_size": 0, "actual_size": 0} if status is web.HTTPRequestEntityTooLarge else {}
    return status(text=json.dumps({"error": reason}), content_type="application/json", headers=headers, **extra)


CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request its client abandoned


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
    except StorageError as e:  # logged where it happened (Runtime.db)
        return web.json_response({"error": e.reason}, status=503, headers={"Retry-After": "5"})
    except ConnectionResetError:  # the client left before its request was read whole: not a server fault
        log.info("client went away during %s %s", request.method, request.path)
        return web.Response(status=CLIENT_CLOSED_REQUEST)  # counted apart in /metrics; nobody reads it
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal error; the server logged it"}, status=500)


REFUSED_ORIGIN_LOG_S = 600.0  # a refused origin is named in the log at most this often
CHAT = "/api/chat"  # the widget's first call: a refused origin may read why it was refused, nothing else
ORIGIN_NOT_ALLOWED = "origin_not_allowed"  # the refusal's `code`, for the widget


def cors(settings: Settings) -> Callable:
    """Only listed origins (and the server's own) may call the API from a browser. Any other origin is refused
    (403) on every request; its chat POST alone passes the preflight, so that the widget on that site can read
    the refusal's `code` and tell the customer the chat is not available there."""
    allowed = frozenset(o.rstrip("/") for o in settings.server.allowed_origins)
    public = public_origin(settings.server.public_url)
    warned: dict[str, float] = {}  # refused origin -> when the log last named it

    def tell_operator(origin: str) -> None:
        """A refused site's customers only see the widget fail: name the origin and the setting, once per origin
        per REFUSED_ORIGIN_LOG_S (the header is the client's to choose: bounded, and logged escaped)."""
        now = time.monotonic()
        if now - warned.get(origin, -REFUSED_ORIGIN_LOG_S) < REFUSED_ORIGIN_LOG_S:
            return
        if len(warned) >= 1000:
            warned.clear()
        warned[origin] = now
        log.warning("refused a browser request from origin %r: if the widget is on that site, add it to "
                    "server.allowed_origins", origin[:200])

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        ok = origin in allowed or origin == public or _loopback_self(request, origin)
        if not ok and (request.path.startswith(GUARDED) or request.method == "OPTIONS"):
            tell_operator(origin)
            # The widget's first call is let through the preflight so that the browser lets it read the refusal
            # and say the chat is not available on this site (an unreadable one looks like a network failure).
            preflight = request.headers.get("Access-Control-Request-Method") if request.method == "OPTIONS" else None
            chat_post = request.path == CHAT and (preflight or request.method) == "POST"
            if chat_post and preflight:
                return web.Response(status=204, headers={
                    **_allow(origin), "Access-Control-Allow-Methods": "POST",
                    "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600"})
            return web.json_response({"error": f"origin {origin} is not allowed (set server.public_url for this "
                                               "server's own, server.allowed_origins for others)",
                                      "code": ORIGIN_NOT_ALLOWED}, status=403,
                                     headers=_allow(origin) if chat_post else None)
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


def public_origin(url: str) -> str:
    """`scheme://host[:port]` of a URL (`server.public_url`); empty for empty."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _loopback_self(request: web.Request, origin: str) -> bool:
    """Same-origin by the Host header, believed only for loopback hosts: a DNS-rebinding page has its own name
    in Host, so this cannot let one through, and a development server needs no public_url."""
    host = (request.url.host or "").strip("[]").lower()
    address = _address(host)
    loopback = host in LOOPBACK_HOSTS or (address is not None and address.is_loopback)
    return loopback and origin == f"{request.scheme}://{request.host}"


def _allow(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def admin_guard(settings: Settings) -> Callable:
    """Every path under /admin/ needs `Authorization: Bearer <token>`; no token configured = disabled."""
    expected = admin_token(settings).encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN) and request.method != "OPTIONS":
            if not expected:
                raise error(web.HTTPForbidden, f"admin endpoints are disabled: set server.admin_token or {TOKEN_ENV}")
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(errors="replace"), expected):
                raise error(web.HTTPUnauthorized, "admin endpoints need 'Authorization: Bearer <admin token>'",
                            {"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return middleware


MAX_JSON_DEPTH = 32  # no endpoint needs more; a deeper body is refused before anything walks it
INT_RANGE = (-(2**63), 2**63 - 1)  # what SQLite (and every 64-bit client) can hold
_UNREPRESENTABLE = re.compile("[\ud800-\udfff]")  # lone UTF-16 surrogates: valid JSON, not valid text
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, CR and LF are text


def check_text(value: str, name: str) -> str:
    """The one rule for every text the server accepts (JSON bodies, token header, path ids): Unicode that
    can be encoded as UTF-8 (no lone surrogates) and no control characters but tab and newlines; else 400."""
    bad = _UNREPRESENTABLE.search(value)
    if bad:
        raise error(web.HTTPBadRequest, f"{name} is not valid Unicode text: lone surrogate "
                    f"U+{ord(bad.group()):04X} at character {bad.start() + 1}")
    bad = _CONTROL.search(value)
    if bad:
        raise error(web.HTTPBadRequest, f"{name} contains control character U+{ord(bad.group()):04X} "
                    f"at character {bad.start() + 1}")
    return value


def is_blank(text: str) -> bool:
    """Nothing a person could read: only spaces, invisible format characters (zero-width space, BOM) or
    line breaks."""
    return all(c.isspace() or unicodedata.category(c) in ("Cf", "Zs", "Zl", "Zp", "Cc") for c in text)


def _check_body(body: Any) -> None:
    """Every string (keys too) through `check_text`, every integer within 64 bits, depth bounded;
    iterative, so no body can exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(body, "body", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            check_text(value, f"field {where[:80]}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise error(web.HTTPBadRequest, f"field {where[:80]} is out of range (a finite number)")
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT_RANGE[0] <= value <= INT_RANGE[1]:
                raise error(web.HTTPBadRequest, f"field {where[:80]} is out of range (a 64-bit integer)")
        elif depth >= MAX_JSON_DEPTH:
            raise error(web.HTTPBadRequest, f"JSON nested over {MAX_JSON_DEPTH} levels")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = key if where == "body" else f"{where}.{key}"
                check_text(key, f"field name {key[:80]!r}")
                stack.append((item, name, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def read_json(request: web.Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object, or a 4xx: 415 not JSON/not text, 413 too big, 400 malformed, too deep,
    holding unrepresentable text or an integer beyond 64 bits."""
    if request.content_type != "application/json":
        raise error(web.HTTPUnsupportedMediaType, "send Content-Type: application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise error(web.HTTPRequestEntityTooLarge, f"request body over {max_bytes} bytes")
    try:
        raw = await request.read()  # aiohttp enforces client_max_size on chunked bodies too
    except HttpProcessingError as e:  # a broken chunked encoding, found while reading the body
        raise error(web.HTTPBadRequest, f"malformed request body: {e.message}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(web.HTTPUnsupportedMediaType, "the body is not UTF-8 text") from None
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise error(web.HTTPBadRequest, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise error(web.HTTPBadRequest, f"JSON nested over {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:  # NaN/Infinity, or an integer of more digits than Python converts
        reason = "an integer of thousands of digits" if "integer string conversion" in str(e) else str(e)
        raise error(web.HTTPBadRequest, f"invalid JSON: {reason}") from None
    if not isinstance(body, dict):
        raise error(web.HTTPBadRequest, "expected a JSON object")
    _check_body(body)
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
    """Token bucket per client key; the least recently seen clients are forgotten past `max_clients`. With
    `shared` (bot.serving.limits: several workers, or PostgreSQL) the buckets live there instead, counted across
    processes; a check the shared buckets cannot answer (PostgreSQL down) is counted here, never a 500.

    A client is a verified customer (bot/serving/identity.py), else a conversation whose token was verified, else the
    client's address: a token the client merely sends buys no budget of its own."""

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000, what: str = "too many requests",
                 shared: Buckets | None = None, name: str = ""):
        self.rate, self.burst, self.max_clients, self.what = rate, burst, max_clients, what
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last time)
        self.shared, self.name = shared, name  # with several workers: buckets all of them charge

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        if self.shared is not None:
            try:
                return self.shared.take(f"{self.name}:{key}", self.rate, self.burst)
            except BucketsUnavailable:  # logged there, once per outage
                pass
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed

    async def check(self, request: web.Request, conversation_id: str | None = None,
                    customer: str | None = None) -> None:
        """429 when this client is over its rate: the verified customer (all their conversations), else the
        conversation, when its token matched, else the address. Buckets in PostgreSQL are charged from a thread
        (a round trip), never on the event loop."""
        if customer:
            key = f"u:{customer}"
        else:
            key = f"c:{conversation_id}" if conversation_id else f"a:{client_address(request)}"
        if self.rate <= 0:
            return
        if isinstance(self.shared, PostgresBuckets):
            allowed = await asyncio.get_running_loop().run_in_executor(self.shared.thread, self.allow, key)
        else:
            allowed = self.allow(key)
        if not allowed:
            raise error(web.HTTPTooManyRequests, f"{self.what}; slow down",
                        {"Retry-After": str(max(1, round(1 / self.rate)))})


def client_address(request: web.Request) -> str:
    """The client's address as `client_info` worked it out (X-Forwarded-For only from a trusted proxy)."""
    return request.get("client_address") or request.remote or "?"


def forwarded_for(remote: str | None, header: str, trusted: Sequence[IPNetwork]) -> str | None:
    """The client behind a chain of trusted proxies: the rightmost X-Forwarded-For hop that is not one of them.

    Hops left of an untrusted one could be anything the client wrote, so they are never believed."""
    hop = _address(remote)
    if hop is None or not _within(hop, trusted):
        return remote
    for item in reversed([h.strip() for h in header.split(",") if h.strip()]):
        candidate = _address(item)
        if candidate is None:  # garbage where an address should be: the last proxy is the client we know
            break
        hop = candidate
        if not _within(hop, trusted):
            break
    return str(hop)


def _address(text: str | None):
    try:
        return ipaddress.ip_address((text or "").strip("[]"))
    except ValueError:
        return None


def _within(address, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_info(settings: Settings) -> Callable:
    """Records each request's client address (for the rate limits and the access log)."""
    trusted = [ipaddress.ip_network(p, strict=False) for p in settings.server.trusted_proxies]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("X-Forwarded-For", "") if trusted else ""
        request["client_address"] = forwarded_for(request.remote, header, trusted) if header else request.remote
        return await handler(request)

    return middleware
