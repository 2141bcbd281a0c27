"""Operators' view: `/metrics` in the Prometheus text format, a request id on every response, and one JSON line
per request when `server.log_format = "json"`.

Each app has its own `prometheus_client` registry (several apps in one process, as in the tests, never share
counters). Label values are route templates (`/api/conversations/{conversation_id}`), bot routes, flag kinds and
model versions: never a path, a query, a message, a token or anything a customer typed.
`/metrics` answers the admin token, or without it the addresses of `server.metrics_allow`.

With `serve --workers N` the counters and histograms are prometheus_client's multiprocess ones (its files in
the folder PROMETHEUS_MULTIPROC_DIR names, set by bot.serving.workers), so whichever worker answers a scrape reports
the sum of all of them; the gauges read at scrape time (model version, queue depth) are that worker's.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import re
import time
import uuid
from typing import Any, Callable, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from bot.serving.keys import admin_token
from bot.settings import Settings
from bot.serving.workers import METRICS_DIR_ENV
from bot.web.security import CLIENT_CLOSED_REQUEST, Handler, error

log = logging.getLogger("supportbot.access")
REQUEST_ID = "X-Request-Id"
_GIVEN_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")  # a proxy's id is kept when it is this plain; else a new one
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The counters and histograms of one app; `runtime` fills the gauges read at scrape time."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("supportbot_http_requests", "HTTP requests answered, by route template, method and "
                                "status.", ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram("supportbot_http_request_duration_seconds", "Time to answer an HTTP "
                                         "request, by route template.", ["route"], buckets=SECONDS, registry=r)
        self.turns = Counter("supportbot_chat_turns", "Chat turns answered, by the bot's route.", ["route"], registry=r)
        self.flags = Counter("supportbot_flags", "Turns flagged for review, by kind.", ["kind"], registry=r)
        self.inference_seconds = Histogram("supportbot_model_inference_seconds", "Time of one intent-model batch "
                                           "call.", buckets=SECONDS, registry=r)
        self.batch_size = Histogram("supportbot_model_batch_size", "Messages per intent-model batch call.",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.search_seconds = Histogram("supportbot_knowledge_search_seconds", "Time of one knowledge-base search "
                                        "batch call.", buckets=SECONDS, registry=r)
        self.runtime: dict[str, Any] = {}
        r.register(_RuntimeCollector(self.runtime))

    def timed(self, fn: Callable[[Sequence[str]], Any], seconds: Histogram, sizes: Histogram | None = None):
        """`fn` (a batch call, run on its own thread), timed into `seconds` and its batch sizes into `sizes`."""

        def call(texts: Sequence[str], *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(texts, *args, **kwargs)
            finally:
                seconds.observe(time.perf_counter() - start)
                if sizes is not None:
                    sizes.observe(len(texts))

        return call

    def turn(self, route: str, flags: Sequence[str]) -> None:
        self.turns.labels(route).inc()
        for kind in flags:
            self.flags.labels(kind).inc()

    def scrape(self) -> bytes:
        if not os.environ.get(METRICS_DIR_ENV):
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker)
        every_worker.register(_RuntimeCollector(self.runtime))
        return generate_latest(every_worker)


class _RuntimeCollector:
    """Values the runtime knows at scrape time: serving model version, reloads, queue depths, open handoffs."""

    def __init__(self, values: dict[str, Any]):
        self.values = values

    def describe(self):
        return []

    def collect(self):
        v = self.values
        info = GaugeMetricFamily("supportbot_model_info", "The serving intent-model version (value 1).",
                                 labels=["version"])
        if v.get("version"):
            info.add_metric([v["version"]], 1)
        yield info
        yield CounterMetricFamily("supportbot_model_reloads", "Times a new model version was loaded without a "
                                  "restart.", value=v.get("reloads", 0))
        queue = GaugeMetricFamily("supportbot_queue_depth", "Messages waiting for the next batch call.",
                                  labels=["queue"])
        for name in ("model", "search"):
            queue.add_metric([name], v.get(f"queue_{name}", 0))
        yield queue
        yield GaugeMetricFamily("supportbot_open_handoffs", "Conversations waiting for a person.",
                                value=v.get("open_handoffs", 0))
        yield GaugeMetricFamily("supportbot_ready", "1 when the bot can chat (model and knowledge base loaded).",
                                value=1 if v.get("ready") else 0)
        latest = v.get("drift")
        if latest is not None:
            for name, help, value in (
                    ("supportbot_drift_jensen_shannon", "Jensen–Shannon distance of the last 7 days' intent mix from "
                     "the serving model's training mix.", latest.distance),
                    ("supportbot_drift_below_threshold_share", "Share of the last 7 days' turns below the answer "
                     "threshold.", latest.below_threshold_share),
                    ("supportbot_drift_out_of_scope_share", "Share of the last 7 days' turns called out of scope.",
                     latest.out_of_scope_share)):
                if value is not None:
                    yield GaugeMetricFamily(name, help, value=value)
        if "drift_alert" in v:
            yield GaugeMetricFamily("supportbot_drift_alert", "1 when drift is at or above analytics.drift_alert.",
                                    value=1 if v["drift_alert"] else 0)


METRICS = web.AppKey("metrics", Metrics)


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource if request.match_info.route else None
    return resource.canonical if resource is not None else "unmatched"


def observe(settings: Settings, metrics: Metrics) -> Callable:
    """Outermost middleware: a request id (kept in the request and sent back as X-Request-Id), the request
    counters, and in JSON log mode one access line with the request id, route, status, latency and, for a chat
    turn, its conversation id and bot route (no client address: that is personal data)."""
    json_lines = settings.server.log_format == "json" and settings.server.access_log

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(REQUEST_ID, "")
        request["request_id"] = given if _GIVEN_ID.fullmatch(given) else uuid.uuid4().hex
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        except asyncio.CancelledError:  # aiohttp cancels the handler of a client that disconnected
            if request.transport is None or request.transport.is_closing():
                status = CLIENT_CLOSED_REQUEST
                log.info("client went away during %s %s", request.method, request.path)
            raise
        finally:
            elapsed = time.perf_counter() - start
            route = route_of(request)
            metrics.requests.labels(route, request.method, str(status)).inc()
            metrics.request_seconds.labels(route).observe(elapsed)
            if json_lines:
                extra = {"request_id": request["request_id"], "method": request.method, "route": route,
                         "status": status, "latency_ms": round(elapsed * 1000, 2)}
                for key in ("conversation_id", "bot_route", "turn_id"):
                    if key in request:
                        extra[key] = request[key]
                log.info("request", extra={"fields": extra})

    return middleware


async def request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every response, errors and redirects too, names its request id."""
    rid = request.get("request_id")
    if rid:
        response.headers[REQUEST_ID] = rid


def _allowed(request: web.Request, networks: Sequence) -> bool:
    address = request.get("client_address") or request.remote
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in n for n in networks)


def handler(settings: Settings) -> Callable:
    token = admin_token(settings).encode()
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.server.metrics_allow]

    async def metrics(request: web.Request) -> web.Response:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        by_token = bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(errors="replace"), token)
        if not by_token and not _allowed(request, networks):
            raise error(web.HTTPUnauthorized, "/metrics needs 'Authorization: Bearer <admin token>' or a scraper "
                        "address in server.metrics_allow", {"WWW-Authenticate": "Bearer"})
        from bot.web.runtime import RUNTIME

        rt = request.app[RUNTIME]
        m = request.app[METRICS]
        current = rt.models.current if rt.models else None
        m.runtime.update(
            version=current.version if current else None, reloads=rt.models.reloads if rt.models else 0,
            queue_model=getattr(getattr(current, "classify", None), "pending", 0),
            queue_search=rt._search_batcher.pending if rt._search_batcher else 0,
            open_handoffs=await rt.db(rt.log.open_handoff_count), ready=rt.ready)
        if rt.drift is not None and rt.drift.alert_level:
            m.runtime.update(drift=rt.drift.latest, drift_alert=rt.drift.alert)
        return web.Response(body=m.scrape(), headers={"Content-Type": CONTENT_TYPE})

    return metrics
