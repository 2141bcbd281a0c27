"""A period's analytics as named tables: what the analytics page plots, its CSV downloads, the JSON API and
`run_bot.py report` all read the same `Report`, so they cannot disagree."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from typing import Any

from bot.analytics.figures import OUTCOMES, Analytics, Figures, Promotion, day_of, days_between, period
from bot.dialogue.router import ROUTES
from core.engine import Database

UNANSWERED = 10  # largest groups of unanswered messages shown
RATES = ("containment", "handoff", "returned", "abandonment", "fallback_turns", "fallback_conversations",
         "clarification", "thumbs_down")


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else _safe_cell(v) for v in row])
        return out.getvalue()


def _safe_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (=, +, -, @ first) is quoted with an apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@dataclass
class Report:
    since: str
    until: str
    days: list[str]
    total: Figures
    daily: dict[str, Figures]
    weekly: dict[str, Figures]
    versions: dict[str, Figures]
    served: list[dict[str, Any]]  # model versions: first and last turn
    promotions: list[Promotion]
    top_intents: list[tuple[str, int, int]]
    down_intents: list[tuple[str, int, int]]
    down_articles: list[tuple[str, int, int]]
    unanswered: list[dict[str, Any]] = field(default_factory=list)
    growing: list[dict[str, Any]] | None = field(default_factory=list)  # bot.review.unanswered.growing; None: being computed
    growing_computed: float | None = None  # when `growing` was computed, if not now
    drift: list[Any] = field(default_factory=list)  # bot.analytics.drift.Drift per week
    drift_version: str = ""  # the model version whose training mix drift compares with

    def day(self, d: str) -> Figures:
        return self.daily.get(d) or Figures()

    def tables(self) -> dict[str, Table]:
        rate_cols = tuple(RATES)

        def rates(f: Figures) -> tuple:
            return tuple(f.as_row()[r] for r in RATES)

        first = {v["version"]: day_of(v["first_seen"]) for v in self.served}
        tables = [
            Table("daily", "Per day", ("day", "turns", "conversations", "settled", "pending", *rate_cols,
                                       "latency_p50_ms", "latency_p95_ms"),
                  [(d, f.turns, f.conversations, f.settled, f.pending, *rates(f), f.percentile(0.5), f.percentile(0.95))
                   for d in self.days for f in [self.day(d)]]),
            Table("weekly", "Per week", ("week", "turns", "conversations", "settled", "pending", *rate_cols),
                  [(w, f.turns, f.conversations, f.settled, f.pending, *rates(f)) for w, f in self.weekly.items()]),
            Table("routes", "Route shares per day (of the day's turns)", ("day", "turns", *ROUTES),
                  [(d, f.turns, *(f.route_shares()[r].value if f.turns else None for r in ROUTES))
                   for d in self.days for f in [self.day(d)]]),
            Table("outcomes", "Outcomes per day (of the day's settled conversations)", ("day", "settled", *OUTCOMES),
                  [(d, f.settled, *(f.outcome_shares()[o].value for o in OUTCOMES))
                   for d in self.days for f in [self.day(d)]]),
            Table("versions", "Per model version", ("model_version", "first_served", "turns", "conversations",
                                                    "settled", *rate_cols),
                  [(v, first.get(v, ""), f.turns, f.conversations, f.settled, *rates(f))
                   for v, f in sorted(self.versions.items(), key=lambda kv: first.get(kv[0], ""))]),
            Table("intents", "Top intents (turns)", ("intent", "turns", "share_of_turns"),
                  [(i, n, round(n / self.total.turns, 4) if self.total.turns else None) for i, n, _ in self.top_intents]),
            Table("thumbs_down_intents", "Most thumbs-down intents", ("intent", "thumbs_down", "turns"),
                  list(self.down_intents)),
            Table("thumbs_down_articles", "Most thumbs-down articles", ("article", "thumbs_down", "turns"),
                  list(self.down_articles)),
            Table("latency", "Answer latency per day (ms)", ("day", "turns", "p50_ms", "p95_ms"),
                  [(d, f.turns, f.percentile(0.5), f.percentile(0.95)) for d in self.days for f in [self.day(d)]]),
            Table("promotions", "Model promotions", ("model_version", "first_turn", "retrain_run"),
                  [(p.version, time.strftime("%Y-%m-%d %H:%M", time.gmtime(p.at)), p.run) for p in self.promotions]),
            Table("unanswered", "Largest groups of unanswered messages", ("review_item", "messages", "text"),
                  [(u["group_id"], u["size"], u["text"]) for u in self.unanswered]),
            Table("growing_clusters", "Unanswered clusters growing fastest, per week (messages against the week before)",
                  ("week", "cluster", "verdict", "this_week", "week_before", "growth", "review_item"),
                  [(g["week"], g["cluster"], g["verdict"], g["this_week"], g["week_before"], g["growth"], g["group_id"])
                   for g in self.growing or []]),
            Table("drift", f"Drift per week (against the training mix of {self.drift_version or 'no model'})",
                  ("week", "turns", "below_threshold", "out_of_scope", "jensen_shannon", "moved_most"),
                  [(d.period, d.turns, _round(d.below_threshold_share), _round(d.out_of_scope_share), d.distance,
                    "; ".join(f"{i} {100 * a:.0f}% (trained {100 * b:.0f}%)" for i, a, b in d.moved[:3]))
                   for d in self.drift]),
        ]
        return {t.name: t for t in tables}

    def summary(self) -> dict[str, Any]:
        f = self.total
        return {"since": self.since, "until": self.until, "turns": f.turns, "conversations": f.conversations,
                "settled": f.settled, "pending": f.pending,
                "rates": {r: {"value": f.rate(r).value, "count": f.rate(r).count, "of": f.rate(r).total,
                              "per": f.rate(r).per} for r in RATES},
                "routes": {r: {"value": s.value, "count": s.count, "of": s.total} for r, s in f.route_shares().items()},
                "latency_ms": {"p50": f.percentile(0.5), "p95": f.percentile(0.95)}}

    def to_json(self) -> dict[str, Any]:
        tables = self.tables()
        return {"summary": self.summary(), "growing_computed": self.growing_computed,
                "tables": {name: [dict(zip(t.columns, row)) for row in t.rows] for name, t in tables.items()}}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def build(db: Database, settings, days: int | None = None, now: float | None = None,
          unanswered: list[dict[str, Any]] | None = None, growing: list[dict[str, Any]] | None = None,
          growing_computed: float | None = None, version: str | None = None,
          mix: dict[str, int] | None = None, analytics: Analytics | None = None) -> Report:
    """Refresh the rollups and read the last `days` days (default analytics.days); drift is measured against the
    training mix of model `version` (default the registry's current one), or `mix` when given."""
    from bot.analytics import drift
    from training.runs import RunLog

    s = settings.analytics
    now = time.time() if now is None else now
    a = analytics or Analytics(db, s.return_window, s.session_gap)
    a.refresh()
    since, until = period(days or s.days, now)
    promotions = [p for p in a.promotions(RunLog(db).runs(limit=1000)) if since <= day_of(p.at) <= until]
    parts = a.breakdown(since, until, now)
    if mix is None:
        path = drift.serving_path(settings.models_path, version)
        version = path.name if path is not None else version
        mix = drift.training_mix(db, path, settings.train.oos_label)
    return Report(
        since=since, until=until, days=days_between(since, until), total=parts[""].get("", Figures()),
        daily=parts["day"], weekly=parts["week"], versions=parts["model_version"], served=a.versions(),
        promotions=promotions,
        top_intents=a.top(since, until, "intent"), down_intents=a.top(since, until, "intent", "down"),
        down_articles=a.top(since, until, "article", "down"), unanswered=unanswered or [], growing=growing,
        growing_computed=growing_computed,
        drift=drift.weekly(a, since, until, mix, settings.train.oos_label), drift_version=version or "")


def largest_unanswered(reviews, days: int, now: float | None = None) -> list[dict]:
    """The largest groups of unanswered (fallback) messages of the last `days` still new in the review queue
    (`reviews`: bot.review.store.ReviewStore), as the report shows them."""
    from bot.review.store import Filters

    since = (now or time.time()) - days * 86400
    groups = reviews.page(Filters(kind="fallback", status="new", since=since, sort="frequent"),
                          limit=UNANSWERED).groups
    return [{"group_id": g["id"], "size": g["size"], "text": g["text"]} for g in groups]


def unanswered_and_growing(db, folder, days: int) -> tuple[list[dict], list[dict]]:
    """The largest groups of unanswered messages, and the clusters of them growing fastest (clustered with the
    model-free hashing embedder: the report loads no model)."""
    from bot.review.desk import ReviewDesk
    from bot.review.unanswered import (
        GROWTH_SINCE,
        HashingEmbedder,
        growing_clusters,
        intent_examples,
    )

    desk = ReviewDesk(db, folder)
    desk.sync()
    now = time.time()
    s = folder.settings
    messages = desk.reviews.unanswered(now - GROWTH_SINCE, s.review.cluster_max)
    growing = growing_clusters(messages, HashingEmbedder().encode,
                               intent_examples(folder.intents, s.server.smalltalk_intents), s.review, now)
    return largest_unanswered(desk.reviews, days, now), growing
