"""Analytics: what each figure means (the one place it is defined) and the rollups that keep it fast on a large log.

The unit of a rate is stated with it (`Rate.of`), and the figures of a period that share a denominator add up
to 100 %: every turn has exactly one route, every settled conversation exactly one outcome.

Rollups are tables beside the conversation log, kept up to date incrementally from the turn and feedback ids
seen last (`Analytics.refresh`): per UTC day × model version × route × intent (turns, latency, thumbs), per day ×
model version × knowledge article (answers from it, thumbs),
a latency histogram per day × route, and one row per conversation (its outcome). A page reads only these.
Beside them, the ISO weeks in which drift started an early retrain (kept across restarts, never rebuilt).
This module is the only one that reads or writes them, on either engine (`core.engine`): every statement is written
once, the fold's with the few fragments the engines spell differently (`core.dialect`).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from bot.dialogue.router import ROUTES
from core.dialect import POSTGRESQL, SQLITE, Dialect
from core.engine import Database, migrate, on_both

OUTCOMES = ("contained", "handed_off", "returned", "abandoned")

# What every figure counts, over what. The README's analytics section says the same; a test keeps them in step.
DEFINITIONS: dict[str, tuple[str, str]] = {
    "containment": ("settled conversations with no handoff, no return within analytics.return_window and not "
                    "abandoned", "settled conversations"),
    "handoff": ("settled conversations handed to a person (asked for, routed there, or too many fallbacks)",
                "settled conversations"),
    "returned": ("settled conversations, not handed off, that the customer came back to within "
                 "analytics.return_window after a pause of analytics.session_gap, or (a verified customer) followed "
                 "by another conversation of theirs within analytics.return_window", "settled conversations"),
    "abandonment": ("settled conversations, neither handed off nor returned to, whose last answer was a fallback",
                    "settled conversations"),
    "fallback_turns": ("turns answered with a fallback", "turns"),
    "fallback_conversations": ("conversations with at least one fallback answer", "conversations started"),
    "clarification": ("turns answered with a clarifying question", "turns"),
    "thumbs_up": ("thumbs up", "ratings given"),
    "thumbs_down": ("thumbs down", "ratings given"),
    "rated": ("answers rated (up or down)", "template and knowledge answers"),
    "route_share": ("turns of one route", "turns"),
    "latency": ("time from the message reaching the router to its answer, p50 and p95", "turns"),
    "below_threshold": ("turns whose top intent was below the serving model's answer threshold", "turns"),
    "out_of_scope": ("turns the intent model called out of scope (train.oos_label)", "turns"),
    "jensen_shannon": ("Jensen–Shannon distance (base 2, 0 to 1) of the mix of intents recognised to the mix of "
                       "intents the serving model was trained on, out-of-scope left out of both",
                       "turns with a recognised intent; the model version's training examples"),
}

CHUNK = 50_000  # turns folded into the rollups per transaction: the chat's writes wait at most one chunk (~1 s)
LATENCY_BASE = 1.1  # latency histogram buckets grow by 10 %: a percentile is known to within 5 %
SCHEMA = """
create table if not exists analytics_state (key text primary key, value text not null);
create table if not exists analytics_daily (
    day text not null, model_version text not null, route text not null, intent text not null,
    turns integer not null default 0, latency_ms {real} not null default 0,
    up integer not null default 0, down integer not null default 0, low_confidence integer not null default 0,
    primary key (day, model_version, route, intent)
);
create table if not exists analytics_articles (
    day text not null, model_version text not null, article text not null,
    turns integer not null default 0, up integer not null default 0, down integer not null default 0,
    primary key (day, model_version, article)
);
create table if not exists analytics_latency (
    day text not null, route text not null, bucket integer not null, turns integer not null,
    primary key (day, route, bucket)
);
create table if not exists analytics_conversations (
    id text primary key, day text not null, started {real} not null, last_at {real} not null,
    model_version text not null, turns integer not null, fallbacks integer not null, outcome text not null
);
create index if not exists analytics_conversations_last on analytics_conversations(last_at);
create table if not exists analytics_outcomes (
    day text not null, model_version text not null, outcome text not null,
    conversations integer not null, with_fallback integer not null,
    primary key (day, model_version, outcome)
);
create table if not exists analytics_versions (
    model_version text primary key, first_seen {real} not null, last_seen {real} not null, turns integer not null
);
create table if not exists drift_retrains (week text primary key, started {real} not null);
create table if not exists analytics_computed (name text primary key, computed {real} not null, value text not null);
"""
_TABLES = ("analytics_daily", "analytics_articles", "analytics_latency", "analytics_conversations", "analytics_outcomes",
           "analytics_versions")
# SQLite computes a turn's latency bucket with `latency_bucket` (a Python function); PostgreSQL with the same formula
BUCKET = (f"create or replace function sb_bucket(ms double precision) returns integer language sql immutable"
          f" as 'select floor(ln(greatest(ms, 0) + 1) / ln({LATENCY_BASE}))::integer'")
# Version 1 is the schema main's code made (without a schema_version row), left as it is.
FIRST = on_both(SCHEMA)
MIGRATIONS = [{**FIRST, "postgresql": f"{FIRST['postgresql']};{BUCKET}"}]


def _fold(d: Dialect) -> dict[str, str]:
    """The fold's statements in one engine's spelling; each reads its ? in this order: daily..versions, touched,
    *_feedback (after, upto), customers (window), conversations (window, gap, window, upto). A SELECT feeding an
    upsert ends in WHERE or HAVING true: SQLite's parser needs that to tell the upsert's ON from a join's."""
    day, title = d.utc_day, d.json_text
    low_confidence = d.contains("decision", """'"low_confidence"'""")
    per_day = ("select day, model_version, outcome, count(*) as n, count(*) filter (where fallbacks > 0) as f"
               " from analytics_conversations where id in (select id from touched) group by 1, 2, 3")
    return {
        "daily": "insert into analytics_daily (day, model_version, route, intent, turns, latency_ms, low_confidence)"
                 f" select {day('created')}, coalesce(model_version, ''), route, coalesce(intent, ''), count(*),"
                 " coalesce(sum(latency_ms), 0),"
                 f" count(*) filter (where {low_confidence})"
                 " from turns where id > ? and id <= ? group by 1, 2, 3, 4 having true"
                 " on conflict (day, model_version, route, intent) do update set"
                 " turns = analytics_daily.turns + excluded.turns,"
                 " latency_ms = analytics_daily.latency_ms + excluded.latency_ms,"
                 " low_confidence = analytics_daily.low_confidence + excluded.low_confidence",
        "articles": "insert into analytics_articles (day, model_version, article, turns)"  # a knowledge answer's first source
                    f" select {day('created')}, coalesce(model_version, ''), {title('sources', 0, 'title')}, count(*)"
                    " from turns where id > ? and id <= ? and route = 'knowledge'"
                    f" and {title('sources', 0, 'title')} is not null group by 1, 2, 3 having true"
                    " on conflict (day, model_version, article) do update set"
                    " turns = analytics_articles.turns + excluded.turns",
        "latency": "insert into analytics_latency (day, route, bucket, turns)"
                   f" select {day('created')}, route, sb_bucket(latency_ms), count(*) from turns"
                   " where id > ? and id <= ? and latency_ms is not null group by 1, 2, 3 having true"
                   " on conflict (day, route, bucket) do update set turns = analytics_latency.turns + excluded.turns",
        "versions": "insert into analytics_versions (model_version, first_seen, last_seen, turns)"
                    " select coalesce(model_version, ''), min(created), max(created), count(*) from turns"
                    " where id > ? and id <= ? group by 1 having true on conflict (model_version) do update set"
                    f" first_seen = {d.least('analytics_versions.first_seen', 'excluded.first_seen')},"
                    f" last_seen = {d.greatest('analytics_versions.last_seen', 'excluded.last_seen')},"
                    " turns = analytics_versions.turns + excluded.turns",
        "touched": "insert into touched select distinct conversation_id from turns where id > ? and id <= ?"
                   " on conflict do nothing",
        "customers": "insert into touched select a.id from touched k"
                     " join conversations c on c.id = k.id and c.customer_hash is not null"
                     " join conversations o on o.customer_hash = c.customer_hash and o.created < c.created"
                     " and o.id != c.id"
                     " join analytics_conversations a on a.id = o.id and a.last_at >= c.created - ? where true"
                     " on conflict do nothing",
        "outcomes_out": "update analytics_outcomes set conversations = conversations - old.n,"
                        f" with_fallback = with_fallback - old.f from ({per_day}) as old"
                        " where analytics_outcomes.day = old.day and analytics_outcomes.model_version = old.model_version"
                        " and analytics_outcomes.outcome = old.outcome",
        "conversations": "insert into analytics_conversations"
                         " (id, day, started, last_at, model_version, turns, fallbacks, outcome)"
                         " select id, day, started, last_at, model_version, turns, fallbacks,"
                         " case when handed_off then 'handed_off'"
                         " when came_back or exists (select 1 from conversations c join conversations o"
                         " on o.customer_hash = c.customer_hash and o.id != c.id where c.id = s.id"
                         " and o.created > s.last_at and o.created <= s.last_at + ?) then 'returned'"
                         " when abandoned then 'abandoned' else 'contained' end from ("
                         f" select conversation_id as id, {day('min(created)')} as day, min(created) as started,"
                         " max(created) as last_at,"
                         " coalesce(max(case when n = 1 then model_version end), '') as model_version,"
                         " count(*) as turns, count(*) filter (where route = 'fallback') as fallbacks,"
                         " count(*) filter (where route = 'handoff') > 0 as handed_off,"
                         " count(*) filter (where gap >= ? and gap <= ?) > 0 as came_back,"
                         " count(*) filter (where last = 1 and route = 'fallback') > 0 as abandoned"
                         " from (select t.conversation_id, t.created, t.route, t.model_version,"
                         " t.created - lag(t.created) over w as gap, row_number() over w as n,"
                         " row_number() over (partition by t.conversation_id order by t.id desc) as last"
                         f" from touched k {d.ordered_join} turns t on t.conversation_id = k.id"  # touched first: the index
                         " where t.id <= ? window w as (partition by t.conversation_id order by t.id)) as x"
                         " group by conversation_id) as s where true on conflict (id) do update set"
                         " day = excluded.day, started = excluded.started, last_at = excluded.last_at,"
                         " model_version = excluded.model_version, turns = excluded.turns,"
                         " fallbacks = excluded.fallbacks, outcome = excluded.outcome",
        "outcomes_in": "insert into analytics_outcomes (day, model_version, outcome, conversations, with_fallback)"
                       f" {per_day} having true on conflict (day, model_version, outcome) do update set"
                       " conversations = analytics_outcomes.conversations + excluded.conversations,"
                       " with_fallback = analytics_outcomes.with_fallback + excluded.with_fallback",
        "daily_feedback": "insert into analytics_daily (day, model_version, route, intent, up, down)"
                          f" select {day('t.created')}, coalesce(t.model_version, ''), t.route,"
                          " coalesce(t.intent, ''), count(*) filter (where f.rating = 'up'),"
                          " count(*) filter (where f.rating = 'down') from feedback f join turns t on t.id = f.turn_id"
                          " where f.id > ? and f.id <= ? group by 1, 2, 3, 4 having true"
                          " on conflict (day, model_version, route, intent) do update set"
                          " up = analytics_daily.up + excluded.up, down = analytics_daily.down + excluded.down",
        "articles_feedback": "insert into analytics_articles (day, model_version, article, up, down)"
                             f" select {day('t.created')}, coalesce(t.model_version, ''),"
                             f" {title('t.sources', 0, 'title')}, count(*) filter (where f.rating = 'up'),"
                             " count(*) filter (where f.rating = 'down') from feedback f join turns t on t.id = f.turn_id"
                             f" where f.id > ? and f.id <= ? and t.route = 'knowledge'"
                             f" and {title('t.sources', 0, 'title')} is not null group by 1, 2, 3 having true"
                             " on conflict (day, model_version, article) do update set"
                             " up = analytics_articles.up + excluded.up, down = analytics_articles.down + excluded.down",
    }


FOLD = {d.name: _fold(d) for d in (SQLITE, POSTGRESQL)}


def day_of(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d")


def week_of(day: str) -> str:
    y, w, _ = date.fromisoformat(day).isocalendar()
    return f"{y}-W{w:02d}"


def latency_bucket(ms: float | None) -> int:
    return -1 if ms is None else int(math.log(max(float(ms), 0.0) + 1.0, LATENCY_BASE))


def bucket_ms(bucket: int) -> float:
    """The geometric middle of a histogram bucket, in milliseconds."""
    return LATENCY_BASE ** (bucket + 0.5) - 1.0


@dataclass(frozen=True)
class Rate:
    """A share with its numerator and denominator named: 7 of 10 settled conversations."""

    name: str
    count: int
    total: int

    @property
    def value(self) -> float | None:
        return self.count / self.total if self.total else None

    @property
    def counts(self) -> str:
        return DEFINITIONS[self.name][0]

    @property
    def per(self) -> str:
        return DEFINITIONS[self.name][1]

    def __str__(self) -> str:
        return "–" if self.value is None else f"{100 * self.value:.1f} % ({self.count} of {self.total} {self.per})"


@dataclass
class Figures:
    """One period's (or one model version's) numbers; every rate's denominator is in it."""

    turns: int = 0
    routes: dict[str, int] = field(default_factory=lambda: {r: 0 for r in ROUTES})
    conversations: int = 0  # started in the period
    pending: int = 0  # started, not yet settled (a return may still come)
    outcomes: dict[str, int] = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    with_fallback: int = 0
    up: int = 0
    down: int = 0
    rateable: int = 0
    latency: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # bucket -> turns

    @property
    def settled(self) -> int:
        return sum(self.outcomes.values())

    def rate(self, name: str) -> Rate:
        outcome = {"containment": "contained", "handoff": "handed_off", "returned": "returned",
                   "abandonment": "abandoned"}
        if name in outcome:
            return Rate(name, self.outcomes[outcome[name]], self.settled)
        if name == "fallback_turns":
            return Rate(name, self.routes["fallback"], self.turns)
        if name == "clarification":
            return Rate(name, self.routes["clarify"], self.turns)
        if name == "fallback_conversations":
            return Rate(name, self.with_fallback, self.conversations)
        if name in ("thumbs_up", "thumbs_down"):
            return Rate(name, self.up if name == "thumbs_up" else self.down, self.up + self.down)
        if name == "rated":
            return Rate(name, self.up + self.down, self.rateable)
        raise KeyError(name)

    def route_shares(self) -> dict[str, Rate]:
        return {r: Rate("route_share", n, self.turns) for r, n in self.routes.items()}

    def outcome_shares(self) -> dict[str, Rate]:
        names = {"contained": "containment", "handed_off": "handoff", "returned": "returned",
                 "abandoned": "abandonment"}
        return {o: Rate(names[o], n, self.settled) for o, n in self.outcomes.items()}

    def percentile(self, q: float) -> float | None:
        """Latency (ms) at quantile q from the histogram, or None without timed turns."""
        total = sum(self.latency.values())
        if not total:
            return None
        seen = 0
        for bucket in sorted(self.latency):
            seen += self.latency[bucket]
            if seen >= q * total:
                return round(bucket_ms(bucket), 1)
        return None

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"turns": self.turns, "conversations": self.conversations, "settled": self.settled,
                               "pending": self.pending}
        for name in ("containment", "handoff", "returned", "abandonment", "fallback_turns",
                     "fallback_conversations", "clarification", "thumbs_down"):
            v = self.rate(name).value
            row[name] = None if v is None else round(v, 4)
        row["latency_p50_ms"], row["latency_p95_ms"] = self.percentile(0.5), self.percentile(0.95)
        return row


@dataclass(frozen=True)
class Promotion:
    """A model version that started serving: when its first turn was logged, and the retrain run that promoted it."""

    version: str
    at: float
    run: int | None = None


class Analytics:
    """The rollup tables of the shared database, and the figures read from them."""

    def __init__(self, db: Database, return_window_h: float = 24.0, session_gap_min: float = 30.0):
        """`db`: the bot's database on either engine (core.engine.open_database)."""
        self.db, self.engine = db, db.dialect.name
        self.window, self.gap = return_window_h * 3600, session_gap_min * 60
        migrate(db, "bot.analytics.figures", MIGRATIONS)
        if self.engine == "sqlite":  # there, a Python function (PostgreSQL's is SQL, made by MIGRATIONS)
            db.conn.create_function("sb_bucket", 1, latency_bucket, deterministic=True)

    # keeping the rollups current
    def refresh(self) -> int:
        """Fold turns and ratings logged since the last refresh into the rollups; returns how many turns.

        Safe to run from several processes: each chunk reads the watermark and moves it in one transaction, one
        process at a time."""
        done = 0
        while True:
            folded, finished = self.refresh_once()
            done += folded
            if finished:
                return done

    def refresh_once(self) -> tuple[int, bool]:
        """Fold at most one chunk of turns (one transaction); returns (turns folded, whether the rollups are current).
        The server calls this once per database-thread task, so chat writes go in between chunks."""
        if not self.db.has_table("turns"):
            return 0, True
        with self.db.transaction():
            self.db.serialise("supportbot analytics fold")
            if self._state("definition") != self._definition():  # counted another way: from scratch
                for table in _TABLES:
                    self.db.execute(f"drop table if exists {table}")
                self.db.execute("delete from analytics_state")
                for statement in FIRST[self.engine].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self._set_state("definition", self._definition())
            seen_feedback = int(self._state("feedback_id") or 0)
            top_feedback = self.db.execute("select coalesce(max(id), 0) from feedback").fetchone()[0]
            seen = int(self._state("turn_id") or 0)
            top = self.db.execute("select coalesce(max(id), 0) from turns").fetchone()[0]
            upto = min(top, seen + CHUNK)
            if upto > seen:
                self._fold_turns(seen, upto)
                self._set_state("turn_id", str(upto))
            if upto == top and top_feedback > seen_feedback:
                self._fold_feedback(seen_feedback, top_feedback)
                self._set_state("feedback_id", str(top_feedback))
        return upto - seen, upto == top

    def _definition(self) -> str:
        return json.dumps({"window": self.window, "gap": self.gap, "version": 4})

    def _fold_turns(self, after: int, upto: int) -> None:
        sql = FOLD[self.engine]
        for name in ("daily", "articles", "latency", "versions"):
            self.db.execute(sql[name], [after, upto])
        # A conversation's row is a function of all its turns: recompute the rows of those touched.
        self.db.execute("create temp table if not exists touched (id text primary key)")
        self.db.execute("delete from touched")
        self.db.execute(sql["touched"], [after, upto])
        self.db.execute(sql["customers"], [self.window])  # a verified customer's new conversation is a return
        self.db.execute(sql["outcomes_out"])  # take out what the touched conversations counted before ...
        self.db.execute(sql["conversations"], [self.window, self.gap, self.window, upto])
        self.db.execute(sql["outcomes_in"])  # ... and put in what they count now

    def _fold_feedback(self, after: int, upto: int) -> None:
        for name in ("daily_feedback", "articles_feedback"):
            self.db.execute(FOLD[self.engine][name], [after, upto])

    def _state(self, key: str) -> str | None:
        row = self.db.execute("select value from analytics_state where key = ?", [key]).fetchone()
        return row[0] if row else None

    def _set_state(self, key: str, value: str) -> None:
        self.db.execute("insert into analytics_state (key, value) values (?, ?)"
                        " on conflict (key) do update set value = excluded.value", [key, value])

    # the early retrains drift started: at most one per ISO week, whatever restarts or processes there are
    def claim_drift_retrain(self, week: str) -> bool:
        """Record that drift starts a retrain in `week`; False when one was already started in it."""
        with self.db.transaction():
            return self.db.execute("insert into drift_retrains (week, started) values (?, ?) on conflict do nothing",
                                   [week, time.time()]).rowcount == 1

    def release_drift_retrain(self, week: str) -> None:
        """Forget the week's claim (its retrain could not be started)."""
        with self.db.transaction():
            self.db.execute("delete from drift_retrains where week = ?", [week])

    def last_drift_retrain(self) -> str:
        """The latest ISO week drift started a retrain in, or ''."""
        return self.db.execute("select coalesce(max(week), '') from drift_retrains").fetchone()[0]

    # results too slow to compute on a page view (the clusters growing fastest), kept as JSON with their time
    def store_computed(self, name: str, value: Any, computed: float | None = None) -> None:
        with self.db.transaction():
            self.db.execute("insert into analytics_computed (name, computed, value) values (?, ?, ?) on conflict (name)"
                            " do update set computed = excluded.computed, value = excluded.value",
                            [name, time.time() if computed is None else computed, json.dumps(value)])

    def computed(self, name: str) -> tuple[float, Any] | None:
        """(when, value) as last stored, or None."""
        row = self.db.execute("select computed, value from analytics_computed where name = ?", [name]).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    # reading figures (the rollups only)
    def figures(self, since: str, until: str, now: float | None = None, by: str = "") -> dict[str, Figures]:
        """Figures of the UTC days since..until (inclusive, YYYY-MM-DD), keyed by `by`: "" (one total), "day",
        "week" or "model_version". Conversations count in the day they started; a rating in its turn's day."""
        return self.breakdown(since, until, now, (by,))[by]

    def breakdown(self, since: str, until: str, now: float | None = None,
                  keys: Iterable[str] = ("", "day", "week", "model_version")) -> dict[str, dict[str, Figures]]:
        """`figures` for several `by`s from one read of the rollups."""
        now = time.time() if now is None else now
        pick = {"": lambda d, v: "", "day": lambda d, v: d, "week": lambda d, v: week_of(d),
                "model_version": lambda d, v: v}
        keys = tuple(keys)
        out: dict[str, dict[str, Figures]] = {k: defaultdict(Figures) for k in keys}

        def each(d: str, version: str, with_version: bool = True) -> Iterable[Figures]:
            for k in keys:
                if with_version or k != "model_version":
                    yield out[k][pick[k](d, version)]

        for d, version, route, turns, up, down in self.db.execute(
                "select day, model_version, route, sum(turns), sum(up), sum(down) from analytics_daily"
                " where day >= ? and day <= ? group by 1, 2, 3", [since, until]):
            for f in each(d, version):
                f.turns += turns
                f.routes[route] = f.routes.get(route, 0) + turns
                f.up, f.down = f.up + up, f.down + down
                if route in ("template", "knowledge"):
                    f.rateable += turns
        for d, version, outcome, n, fallbacks in self.db.execute(
                "select day, model_version, outcome, sum(conversations), sum(with_fallback) from analytics_outcomes"
                " where day >= ? and day <= ? group by 1, 2, 3", [since, until]):
            for f in each(d, version):
                f.conversations += n
                f.outcomes[outcome] += n
                f.with_fallback += fallbacks
        # Conversations that went quiet less than return_window ago are pending: out of the outcomes.
        for d, version, outcome, n in self.db.execute(
                "select day, model_version, outcome, count(*) from analytics_conversations where last_at > ?"
                " and day >= ? and day <= ? group by 1, 2, 3", [now - self.window, since, until]):
            for f in each(d, version):
                f.outcomes[outcome] -= n
                f.pending += n
        for d, bucket, n in self.db.execute(  # the histogram is per day and route, not per model version
                "select day, bucket, sum(turns) from analytics_latency where day >= ? and day <= ? and bucket >= 0"
                " group by 1, 2", [since, until]):
            for f in each(d, "", with_version=False):
                f.latency[bucket] += n
        return {k: dict(sorted(v.items())) for k, v in out.items()}

    def top(self, since: str, until: str, column: str, measure: str = "turns", limit: int = 10) -> list[tuple[str, int, int]]:
        """(intent or article, the measure's sum, turns) ordered by the measure: top intents, most thumbs-down."""
        if column not in ("intent", "article", "model_version") or measure not in ("turns", "down", "up"):
            raise ValueError(f"no ranking by {column} and {measure}")
        table = "analytics_articles" if column == "article" else "analytics_daily"
        return [tuple(r) for r in self.db.execute(
            f"select {column}, sum({measure}) as m, sum(turns) from {table} where day >= ? and day <= ?"
            f" and {column} != '' group by 1 having sum({measure}) > 0 order by m desc, 1 limit ?", [since, until, limit])]

    def intent_mix(self, since: str, until: str) -> list[tuple[str, str, int, int]]:
        """(day, intent, turns, turns below the answer threshold) of every day and intent ('' = none), for drift."""
        return [tuple(r) for r in self.db.execute(
            "select day, intent, sum(turns), sum(low_confidence) from analytics_daily where day >= ? and day <= ?"
            " group by 1, 2", [since, until])]

    def versions(self) -> list[dict[str, Any]]:
        rows = self.db.execute("select model_version, first_seen, last_seen, turns from analytics_versions"
                               " order by first_seen").fetchall()
        return [dict(zip(("version", "first_seen", "last_seen", "turns"), r)) for r in rows]

    def promotions(self, runs: Iterable[dict[str, Any]] = ()) -> list[Promotion]:
        """Every model version after the first to serve, at its first logged turn; `runs` (the retrain run
        log) names the run that promoted it."""
        by_candidate = {r.get("candidate"): r.get("id") for r in runs if r.get("outcome") == "promoted"}
        return [Promotion(v["version"], v["first_seen"], by_candidate.get(v["version"]))
                for v in self.versions()[1:] if v["version"]]

    def latency_series(self, since: str, until: str) -> dict[str, tuple[float | None, float | None]]:
        return {d: (f.percentile(0.5), f.percentile(0.95)) for d, f in self.figures(since, until, by="day").items()}


def period(days: int, now: float | None = None) -> tuple[str, str]:
    """The last `days` UTC days, today included: (since, until) as YYYY-MM-DD."""
    today = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc).date()
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def days_between(since: str, until: str) -> list[str]:
    start, end = date.fromisoformat(since), date.fromisoformat(until)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def parse_since(text: str) -> int:
    """'7d', '2w' or '30' -> days."""
    t = text.strip().lower()
    mult = 7 if t.endswith("w") else 1
    t = t.rstrip("dw")
    if not t.isdigit() or not 1 <= int(t) * mult <= 3660:
        raise ValueError(f"--since {text!r}: expected a number of days like 7d, or weeks like 2w (at most 10 years)")
    return int(t) * mult
