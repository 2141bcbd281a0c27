"""The analytics page of the review workspace (/review/analytics), its CSV downloads and its JSON API
(/api/review/analytics): one `bot.analytics.report.Report` read from the rollups, plotted as server-rendered SVG.

Behind the review login (bot.web.login guards every /review and /api/review path); the pages' CSP allows no
inline script or style, so the plots are plain SVG elements styled by review.css.
"""

from __future__ import annotations

import time

import aiohttp_jinja2
from aiohttp import web

from bot.analytics import charts, jobs
from bot.analytics.figures import DEFINITIONS
from bot.web.runtime import RUNTIME
from bot.web.security import error


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

    rt = request.app[RUNTIME]
    days = _days(request)
    a = await jobs.catch_up(rt)
    d = await rt.sync_review()

    def read():
        unanswered = reports.largest_unanswered(d.reviews, days)
        version = rt.models.version if rt.models else None
        when, growing = a.computed(jobs.GROWING) or (None, None)  # as the first worker last computed it (keep_growing)
        return reports.build(rt.log.db, rt.settings, days, unanswered=unanswered, growing=growing,
                             growing_computed=when, version=version, mix=jobs.serving_mix(rt, version), analytics=a)

    return days, await rt.db(read)


async def page(request: web.Request) -> web.Response:
    from bot.web.review import _context

    rt = request.app[RUNTIME]
    days, r = await report(request)
    context = await _context(request, report=r, tables=r.tables(), charts_=charts.for_report(r), days=days,
                             drift_status=rt.drift, drift_alert=rt.settings.analytics.drift_alert,
                             definitions=DEFINITIONS, growing_every=f"{jobs.GROWING_REFRESH_S / 60:g}", window=f"{rt.settings.analytics.return_window:g}",
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
