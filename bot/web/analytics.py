"""The analytics page of the review workspace (/review/analytics), its CSV downloads and its JSON API
(/api/review/analytics): one `bot.analytics.report.Report` read from the rollups, plotted as server-rendered SVG.

Behind the review login (bot.web.login guards every /review and /api/review path); the pages' CSP allows no
inline script or style, so the plots are plain SVG elements styled by review.css.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp_jinja2
from aiohttp import web

from bot.analytics import charts
from bot.analytics.figures import DEFINITIONS, Analytics
from bot.review.store import Filters
from bot.web.runtime import RUNTIME
from bot.web.security import error

UNANSWERED = 10  # largest groups shown
log = logging.getLogger("supportbot.analytics")


def add_routes(app: web.Application) -> None:
    env = aiohttp_jinja2.get_env(app)
    env.filters.update(pct1=_pct1, ms=_ms, utc=_utc)
    app.router.add_get("/review/analytics", page)
    app.router.add_get("/review/analytics/{table}.csv", table_csv)
    app.router.add_get("/api/review/analytics", api)


def _days(request: web.Request) -> int:
    value = request.query.get("days", "")
    if not value:
        return request.app[RUNTIME].settings.analytics.days
    if not value.isdigit() or not 1 <= int(value) <= 3660:
        raise error(web.HTTPBadRequest, "days: expected a whole number of days from 1 to 3660")
    return int(value)


async def report(request: web.Request):
    """Refresh the rollups and read the period (on the database thread)."""
    from bot.analytics import report as reports
    from bot.web.review import desk, sync as review_sync

    rt = request.app[RUNTIME]
    days = _days(request)
    d = desk(request)
    a = await catch_up(rt)
    await review_sync(rt)

    def read():
        since = time.time() - days * 86400
        groups = d.reviews.page(Filters(kind="fallback", status="new", since=since, sort="frequent"),
                                limit=UNANSWERED).groups
        unanswered = [{"group_id": g["id"], "size": g["size"], "text": g["text"]} for g in groups]
        version = rt.models.version if rt.models else None
        when, growing = a.computed(GROWING) or (None, None)  # as the first worker last computed it (keep_growing)
        return reports.build(rt.log.db, rt.settings, days, unanswered=unanswered, growing=growing,
                             growing_computed=when, version=version, mix=_mix(rt, version), analytics=a)

    return days, await rt.db(read)


GROWING = "growing_clusters"  # its name among the stored results (Analytics.computed)
GROWING_REFRESH_S = 900.0  # how often the first worker computes the clusters growing fastest again


async def compute_growing(rt) -> None:
    """Embed and cluster the last weeks' unanswered messages and store the clusters growing fastest: tens of
    seconds on a large log (BENCHMARKS.md, "The clusters growing fastest"), so never on a page view."""
    from bot.review.unanswered import GROWTH_SINCE, growing_clusters
    from bot.web.review import cluster_examples, encoder, sync as review_sync

    a = await catch_up(rt)
    d = await review_sync(rt)
    messages = await rt.db(d.reviews.unanswered, time.time() - GROWTH_SINCE, rt.settings.review.cluster_max)
    rows = await asyncio.to_thread(growing_clusters, messages, encoder(rt), cluster_examples(rt), rt.settings.review)
    await rt.db(a.store_computed, GROWING, rows)


async def keep_growing(rt) -> None:
    """The first worker's job: once the knowledge base (whose embedder clusters) is loaded, and then every
    GROWING_REFRESH_S; a failure is logged and the page keeps the last result. The first run (with the start's
    analytics fold beside it) catches up on what was logged while no server ran: until it ends, /readyz says
    `catching_up` (the worker answers meanwhile, with less to spare)."""
    started = time.monotonic()
    await rt.loaded.wait()
    while True:
        try:
            await compute_growing(rt)
        except Exception as e:
            log.warning("computing the clusters growing fastest failed: %s", e)
        if rt.catching_up:
            await rt.folded.wait()
            rt.catching_up = False
            log.info("caught up in %.1f s: analytics rollups, review queue, clusters growing fastest",
                     time.monotonic() - started)
        await asyncio.sleep(GROWING_REFRESH_S)


async def catch_up(rt) -> Analytics:
    """The rollups brought up to date one chunk per database-thread task, so chat turns are written in between
    (a first fold of a large log takes a while; the server starts it when it starts)."""
    a = rt.analytics
    while True:
        _, done = await rt.db(a.refresh_once)
        if done:
            return a


async def fold_on_start(rt) -> None:
    try:
        await catch_up(rt)
    except Exception as e:
        log.warning("folding the log into the analytics rollups failed: %s", e)
    finally:
        rt.folded.set()


def _mix(rt, version: str | None) -> dict[str, int]:
    """The serving model version's training mix of intents, read once per version (on the database thread)."""
    from bot.analytics import drift

    cache = rt.drift.extra.setdefault("mix", {}) if rt.drift is not None else {}
    if version not in cache:
        path = drift.serving_path(rt.settings.models_path, version)
        cache.clear()
        cache[version] = dict(drift.training_mix(rt.log.db, path, rt.settings.train.oos_label))
    return cache[version]


async def check_drift(rt) -> None:
    """Measure the last 7 days against the serving model's training mix; at the alert level, with the retraining
    schedule on, start a gated retrain early (once per ISO week)."""
    from bot.analytics import drift
    from bot.analytics.figures import day_of, week_of

    s = rt.settings.analytics
    version = rt.models.version if rt.models else None
    a = await catch_up(rt)

    def read():
        return drift.last_week(a, _mix(rt, version), rt.settings.train.oos_label)

    rt.drift.latest, rt.drift.checked = await rt.db(read), time.time()
    rt.drift.retrain_started_for = await rt.db(a.last_drift_retrain)
    if not rt.drift.alert:
        return
    week = week_of(day_of(time.time()))
    log.warning("drift: the last 7 days' intent mix is %.3f from model %s's training mix (alert at %.3f)",
                rt.drift.latest.distance, version, s.drift_alert)
    if rt.settings.retrain.interval > 0 and rt.schedule is not None and not rt.schedule.running \
            and await rt.db(a.claim_drift_retrain, week):  # stored: a restarted server does not start another
        try:
            await rt.schedule.start("drift")
        except Exception:
            await rt.db(a.release_drift_retrain, week)
            raise
        rt.drift.retrain_started_for = week


async def watch_drift(rt) -> None:
    """The server's drift check, every analytics.drift_check hours; a failure is logged and the watch goes on."""
    while True:
        try:
            if rt.models is not None and rt.models.current is not None:
                await check_drift(rt)
        except Exception as e:
            log.warning("drift check failed: %s", e)
        await asyncio.sleep(rt.settings.analytics.drift_check * 3600)


async def page(request: web.Request) -> web.Response:
    from bot.web.review import _context

    rt = request.app[RUNTIME]
    days, r = await report(request)
    context = await _context(request, report=r, tables=r.tables(), charts_=charts.for_report(r), days=days,
                             drift_status=rt.drift, drift_alert=rt.settings.analytics.drift_alert,
                             definitions=DEFINITIONS, growing_every=f"{GROWING_REFRESH_S / 60:g}", window=f"{rt.settings.analytics.return_window:g}",
                             serving=rt.models.version if rt.models else None)
    return aiohttp_jinja2.render_template("analytics.html", request, context)


async def table_csv(request: web.Request) -> web.Response:
    name = request.match_info["table"]
    _, r = await report(request)
    tables = r.tables()
    if name not in tables:
        raise error(web.HTTPNotFound, f"no table {name!r}; there are {', '.join(tables)}")
    return web.Response(text=tables[name].csv(), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="analytics-{name}-{r.since}-{r.until}.csv"'})


async def api(request: web.Request) -> web.Response:
    _, r = await report(request)
    return web.json_response(r.to_json())


def _pct1(value: float | None) -> str:
    return "–" if value is None else f"{100 * float(value):.1f} %"


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"
