"""The server's analytics jobs (run in the first worker, beside the web app, never on a page view): the start's fold of
the log into the rollups, the clusters growing fastest, and the drift watch that may start a retrain early.

Each takes the server's runtime `rt` (bot.web.runtime.Runtime: its database thread `rt.db`, settings, conversation
log, model slot, review desk, drift status and retraining) and changes nothing but the rollups and `rt`'s status.
"""

from __future__ import annotations

import asyncio
import logging
import time

from bot.analytics.figures import Analytics

log = logging.getLogger("supportbot.analytics")

GROWING = "growing_clusters"  # its name among the stored results (Analytics.computed)
GROWING_REFRESH_S = 900.0  # how often the first worker computes the clusters growing fastest again


async def compute_growing(rt) -> None:
    """Embed and cluster the last weeks' unanswered messages and store the clusters growing fastest: tens of
    seconds on a large log (BENCHMARKS.md, "The clusters growing fastest"), so never on a page view."""
    from bot.review.unanswered import GROWTH_SINCE, cluster_examples, encoder, growing_clusters

    a = await catch_up(rt)
    d = await rt.sync_review()
    messages = await rt.db(d.reviews.unanswered, time.time() - GROWTH_SINCE, rt.settings.review.cluster_max)
    examples = cluster_examples(rt.folder, rt.settings.server.smalltalk_intents)
    rows = await asyncio.to_thread(growing_clusters, messages, encoder(rt.knowledge), examples, rt.settings.review)
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


def serving_mix(rt, version: str | None) -> dict[str, int]:
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
        return drift.last_week(a, serving_mix(rt, version), rt.settings.train.oos_label)

    rt.drift.latest, rt.drift.checked = await rt.db(read), time.time()
    rt.drift.retrain_started_for = await rt.db(a.last_drift_retrain)
    if not rt.drift.alert:
        return
    week = week_of(day_of(time.time()))
    log.warning("drift: the last 7 days' intent mix is %.3f from model %s's training mix (alert at %.3f)",
                rt.drift.latest.distance, version, s.drift_alert)
    if rt.settings.retrain.interval > 0 and rt.retraining is not None \
            and not (await rt.retraining.status())["running"] \
            and await rt.db(a.claim_drift_retrain, week):  # stored: a restarted server does not start another
        try:
            await rt.retraining.trigger("drift")
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
