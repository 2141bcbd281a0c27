"""The review queue's tables: groups of near-identical flagged messages, their entries, and every action.

The conversation log writes `flags`; `ReviewStore.sync()` reads what is new since its watermark and files
each flagged turn (and a random audit sample of confident answers) into the group of its normalised text,
so one decision settles all of them; a group keeps its status when the message comes again (an ignored
message stays ignored). Queue pages read `review_groups` only, newest or most frequent first, with keyset
pagination over indexes: no request scans every turn. Methods are synchronous; the web app runs them in its
database thread. The tables live in the bot's database on either engine (`core.engine`); all of their SQL is
in this module.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from core.engine import Database, migrate, on_both

KINDS = ("low_confidence", "fallback", "clarification", "negative_feedback", "handoff", "audit",
         "shadow")  # shadow: a retrain candidate would decide the turn differently (training/retrain.py)
STATUSES = ("new", "done", "ignored")
SORTS = ("suggested", "newest", "frequent")  # suggested: bot.review.selection's order
CONFIDENT_ROUTES = ("template", "knowledge")
SYNC_BATCH = 5000

# Version 1 is the schema main's code made (without a schema_version row), left as it is. PostgreSQL gets SQLite's
# instr() (as strpos, inlined by the planner), so that the queue's queries are one text on both engines.
SCHEMA = """
create table if not exists review_groups (
    id {id}, key text not null unique, text text not null, status text not null default 'new',
    size integer not null default 0, kinds text not null default ',', first_seen {real} not null,
    last_seen {real} not null, last_turn_id {ref} not null, intent text, route text, model_version text,
    decision text, decided_by text, decided {real}
);
create index if not exists review_groups_newest on review_groups(status, last_seen, id);
create index if not exists review_groups_frequent on review_groups(status, size, id);
create index if not exists review_groups_all_newest on review_groups(last_seen, id);
create table if not exists review_entries (
    id {id}, group_id {ref} not null references review_groups(id), turn_id {ref} not null,
    kind text not null, created {real} not null, unique(turn_id, kind)
);
create index if not exists review_entries_group on review_entries(group_id, turn_id);
create table if not exists review_actions (
    id {id}, group_id {ref} references review_groups(id), bulk_id text, action text not null,
    actor text not null, created {real} not null, before text not null, after text not null, undone {real},
    undone_by text
);
create index if not exists review_actions_group on review_actions(group_id, id);
create index if not exists review_actions_bulk on review_actions(bulk_id);
create table if not exists review_state (key text primary key, value {ref} not null)
"""
INSTR = ("create or replace function instr(haystack text, needle text) returns integer language sql immutable"
         " as 'select strpos(haystack, needle)'")
FIRST = on_both(SCHEMA)
MIGRATIONS = [{**FIRST, "postgresql": f"{FIRST['postgresql']};{INSTR}"}]


def group_key(text: str) -> str:
    """Near-identical messages share a key: case, punctuation, spacing and digits (order numbers) ignored."""
    text = re.sub(r"\d+", " ", text.lower())
    text = re.sub(r"[^\w]+", " ", text)
    return " ".join(text.split())


def audited(turn_id: int, rate: float) -> bool:
    """Whether a confident turn is in the audit sample: a fixed pseudo-random draw per turn (re-syncs agree)."""
    if rate <= 0:
        return False
    digest = hashlib.blake2b(str(turn_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64 < rate


@dataclass(frozen=True)
class Filters:
    kind: str = ""
    status: str = "new"  # "" = any
    since: float | None = None  # last seen on or after (epoch seconds)
    until: float | None = None  # last seen before
    intent: str = ""
    route: str = ""
    model_version: str = ""
    text: str = ""
    sort: str = "suggested"

    def __post_init__(self) -> None:
        if self.kind and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if self.status and self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}")

    def where(self) -> tuple[list[str], list[Any]]:
        where, args = [], []
        for column, value in (("status", self.status), ("intent", self.intent), ("route", self.route),
                              ("model_version", self.model_version)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if self.kind:
            where.append("instr(kinds, ?) > 0")
            args.append(f",{self.kind},")
        if self.since is not None:
            where.append("last_seen >= ?")
            args.append(self.since)
        if self.until is not None:
            where.append("last_seen < ?")
            args.append(self.until)
        if self.text:
            where.append("instr(lower(text), ?) > 0")
            args.append(self.text.lower())
        return where, args

    def query(self) -> dict[str, str]:
        """As URL query parameters (for links that keep the filters)."""
        out = {k: str(v) for k, v in self.__dict__.items() if v not in ("", None) and k not in ("since", "until")}
        for k in ("since", "until"):
            v = getattr(self, k)
            if v is not None:
                out[k] = time.strftime("%Y-%m-%d", time.gmtime(v))
        return out

    @classmethod
    def from_query(cls, query: Any) -> "Filters":
        """From URL query parameters or a form (what `query` writes; `q` or `text` for the text), as the review
        pages and `run_bot.py review` take them; a bad value is a ValueError naming the parameter."""
        def day(name: str, end: bool = False) -> float | None:
            value = (query.get(name) or "").strip()
            if not value:
                return None
            try:
                t = calendar.timegm(time.strptime(value, "%Y-%m-%d"))
            except ValueError:
                raise ValueError(f"{name}: expected a date like 2026-12-01") from None
            return t + 86400 if end else t

        return cls(kind=query.get("kind", ""), status=query.get("status", "new"), since=day("since"),
                   until=day("until", end=True), intent=query.get("intent", ""), route=query.get("route", ""),
                   model_version=query.get("model_version", ""), text=query.get("q", query.get("text", "")),
                   sort=query.get("sort", "suggested") or "suggested")


@dataclass
class Page:
    groups: list[dict[str, Any]]
    next_cursor: str | None
    counts: dict[str, int] = field(default_factory=dict)


GROUP_COLUMNS = ("id", "text", "status", "size", "kinds", "first_seen", "last_seen", "last_turn_id", "intent",
                 "route", "model_version", "decision", "decided_by", "decided")


def confirmed_answers(db: Database) -> list[tuple[str, str]]:
    """(customer message, document id) of the knowledge answers reviewers confirmed (not undone): questions
    the knowledge base tunes its fusion and threshold on beside its own (knowledge/base.py `calibrate`)."""
    if not (db.has_table("review_groups") and db.has_table("turns")):
        return []
    rows = db.execute(
        "select t.message, t.decision from review_groups g join turns t on t.id = g.last_turn_id"
        " where g.status = 'done' and g.decision = 'confirm' and g.route = 'knowledge' order by g.id").fetchall()
    pairs = []
    for message, decision in rows:
        sources = json.loads(decision or "{}").get("sources") or []
        if sources and sources[0].get("doc_id"):
            pairs.append((message, sources[0]["doc_id"]))
    return pairs


class ReviewStore:
    """Owns the review tables of the shared database."""

    def __init__(self, db: Database, audit_rate: float = 0.02):
        """`db`: the bot's database on either engine (core.engine.open_database)."""
        self.db, self.audit_rate = db, audit_rate
        # The one engine branch of this store: the queue counts' cache, which needs SQLite's `pragma data_version`
        # (PostgreSQL has no cheap counterpart: it counts every time).
        self.postgres = db.dialect.name == "postgresql"
        migrate(db, "bot.review.store", MIGRATIONS)
        self._writes = 0  # bumped by every write, so cached counts are never stale
        self._counts: tuple | None = None

    # filing flagged turns
    def sync(self, batches: int | None = None) -> dict[str, int]:
        """File the flags and audited turns written since the last call into groups, at most `batches` of
        SYNC_BATCH rows (None: all); returns how many, and `more` = 1 when rows were left for the next call."""
        filed = {"flags": 0, "audits": 0, "clarifications": 0, "more": 0}

        def file_flags(rows: list) -> None:
            self._file([row[1:] for row in rows])
            filed["flags"] += len(rows)

        def file_audits(rows: list) -> None:
            sample = [row for row in rows if row[4] in CONFIDENT_ROUTES and audited(row[0], self.audit_rate)]
            flagged = {turn_id for (turn_id,) in self._where_in(
                "select distinct turn_id from flags where turn_id in ({})", [row[0] for row in sample])}
            audits = [(turn_id, "audit", *rest) for turn_id, *rest, _ in sample if turn_id not in flagged]
            self._file(audits)
            filed["audits"] += len(audits)

        used, finished = self._each_batch(
            "flag", "select f.id, f.turn_id, f.kind, f.created, t.message, t.intent, t.route, t.model_version"
            " from flags f join turns t on t.id = f.turn_id where f.id > ? order by f.id limit ?", file_flags, batches)
        if finished:
            _, finished = self._each_batch(
                "turn", "select t.id, t.created, t.message, t.intent, t.route, t.model_version, t.conversation_id"
                " from turns t where t.id > ? order by t.id limit ?", file_audits,
                None if batches is None else batches - used)
        filed["more"] = int(not finished)
        return filed

    def _each_batch(self, key: str, query: str, file: Callable[[list], None], limit: int | None) -> tuple[int, bool]:
        """Rows past `key`'s watermark, SYNC_BATCH at a time, each batch filed in one transaction that moves the
        watermark past it (skipped when another process moved it first), at most `limit` batches (None: all).
        Returns the batches used and whether every row was reached."""
        used = 0
        while True:
            last = self._state(key)
            rows = self.db.execute(query, [last, SYNC_BATCH]).fetchall()
            if not rows:
                return used, True
            if limit is not None and used >= limit:
                return used, False
            used += 1
            with self.db.transaction():
                if self._moved_on(key, last):
                    continue
                file(rows)
                self._set_state(key, rows[-1][0])

    def clarification_picks(self, after_turn: int) -> list[tuple[int, int, str, str]]:
        """(pick turn id, asked turn id, the message that was asked back, the intent picked) after a turn id."""
        rows = self.db.execute(
            "select t.id, t.conversation_id, t.intent from turns t where t.id > ? and t.message like '/%'"
            " and t.intent is not null and t.route != 'clarify' order by t.id", [after_turn]).fetchall()
        picks = []
        for turn_id, conversation_id, intent in rows:
            prev = self.db.execute(
                "select id, message, route from turns where conversation_id = ? and id < ? order by id desc limit 1",
                [conversation_id, turn_id]).fetchone()
            if prev and prev[2] == "clarify" and not t_is_pick(prev[1]):
                picks.append((turn_id, prev[0], prev[1], intent))
        return picks

    def _file(self, rows: list[tuple]) -> None:
        """File (turn id, kind, created, message, intent, route, model version) rows, in turn order, into the
        groups of their messages' keys, inside the sync's transaction (one syncer at a time): a group takes the
        newest turn's text and labels, counts each turn once and lists each kind once. A few statements per batch,
        not per row: on PostgreSQL each statement is a round trip."""
        rows = [(group_key(row[3]), *row) for row in rows]
        rows = [row for row in rows if row[0]]
        if not rows:
            return
        self._writes += 1
        keys = sorted({row[0] for row in rows})
        groups = {key: {"id": id_, "last_seen": last_seen, "kinds": kinds, "newest": None, "size": 0, "added": 0}
                  for key, id_, last_seen, kinds in self._where_in(
                      "select key, id, last_seen, kinds from review_groups where key in ({})", keys)}
        new = {}  # key -> the first row of a group that does not exist yet
        for row in rows:
            if row[0] not in groups:
                new.setdefault(row[0], row)
        self.db.executemany("insert into review_groups (key, text, first_seen, last_seen, last_turn_id, intent,"
                            " route, model_version) values (?, ?, ?, ?, ?, ?, ?, ?)",
                            [(key, message, created, created, turn_id, intent, route, version)
                             for key, turn_id, _, created, message, intent, route, version in new.values()])
        for key, id_ in self._where_in("select key, id from review_groups where key in ({})", list(new)):
            groups[key] = {"id": id_, "last_seen": new[key][3], "kinds": ",", "newest": None, "size": 0, "added": 0}
        entries = self._where_in("select group_id, turn_id, kind from review_entries where turn_id in ({})",
                                 sorted({row[1] for row in rows}))
        filed = {(turn_id, kind) for _, turn_id, kind in entries}
        counted = {(group_id, turn_id) for group_id, turn_id, _ in entries}
        added = []
        for key, turn_id, kind, created, message, intent, route, version in rows:
            group = groups[key]
            if created >= group["last_seen"]:
                group["last_seen"], group["newest"] = created, (created, turn_id, message, intent, route, version)
            if (turn_id, kind) in filed:
                continue
            filed.add((turn_id, kind))
            added.append((group["id"], turn_id, kind, created))
            group["added"] += 1
            if (group["id"], turn_id) not in counted:
                counted.add((group["id"], turn_id))
                group["size"] += 1
            if f",{kind}," not in group["kinds"]:
                group["kinds"] += f"{kind},"
        self.db.executemany("insert into review_entries (group_id, turn_id, kind, created) values (?, ?, ?, ?)",
                            added)
        self.db.executemany("update review_groups set last_seen = ?, last_turn_id = ?, text = ?, intent = ?,"
                            " route = ?, model_version = ? where id = ?",
                            [(*g["newest"], g["id"]) for g in groups.values() if g["newest"]])
        self.db.executemany("update review_groups set size = size + ?, kinds = ? where id = ?",
                            [(g["size"], g["kinds"], g["id"]) for g in groups.values() if g["added"]])

    def _where_in(self, sql: str, values: list) -> list[tuple]:
        """`sql`'s rows for `values` in its `in ({})`, a thousand values a statement."""
        out = []
        for start in range(0, len(values), 1000):
            part = values[start:start + 1000]
            out += self.db.execute(sql.format(", ".join("?" * len(part))), part).fetchall()
        return out

    def _moved_on(self, key: str, last: int) -> bool:
        """Inside the transaction, one worker at a time: whether another already filed what was read after `last`."""
        self.db.serialise("supportbot review sync")
        return self._state(key) != last

    def _state(self, key: str) -> int:
        row = self.db.execute("select value from review_state where key = ?", [key]).fetchone()
        return row[0] if row else 0

    def _set_state(self, key: str, value: int) -> None:
        self.db.execute("insert into review_state (key, value) values (?, ?)"
                        " on conflict(key) do update set value = excluded.value", [key, value])

    def watermark(self, key: str) -> int:
        return self._state(key)

    def set_watermark(self, key: str, value: int) -> None:
        self._set_state(key, value)

    # reading the queue
    def candidates(self, filters: Filters, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` groups of the selection with their last turn's confidence (for the suggested order)."""
        where, args = filters.where()
        sql = (f"select g.id, g.text, g.size, t.confidence from (select id, text, size, last_turn_id, last_seen"
               f" from review_groups{' where ' + ' and '.join(where) if where else ''}"
               f" order by last_seen desc, id desc limit ?) g left join turns t on t.id = g.last_turn_id"
               f" order by g.last_seen desc, g.id desc")
        rows = self.db.execute(sql, [*args, limit]).fetchall()
        return [dict(zip(("id", "text", "size", "confidence"), r)) for r in rows]

    def page(self, filters: Filters, cursor: str | None = None, limit: int = 50,
             order: list[int] | None = None) -> Page:
        """A page of the selection. The suggested sort pages through `order` (group ids, see `candidates`); without
        one (no embedder to compute it with) it is the newest first."""
        ordered = filters.sort == "suggested" and order is not None
        if cursor and not re.fullmatch(r"\d+" if ordered else r"-?[\d.e+-]+:\d+", cursor):
            raise ValueError(f"{cursor[:40]!r} is not a next_cursor of this sort")
        if ordered:
            return self._ordered_page(filters, order, int(cursor or 0), limit)
        where, args = filters.where()
        column = "size" if filters.sort == "frequent" else "last_seen"
        if cursor:
            value, _, last_id = cursor.partition(":")
            where.append(f"({column} < ? or ({column} = ? and id < ?))")
            v = float(value) if column == "last_seen" else int(float(value))
            args += [v, v, int(last_id)]
        sql = (f"select {', '.join(GROUP_COLUMNS)} from review_groups"
               f"{' where ' + ' and '.join(where) if where else ''} order by {column} desc, id desc limit ?")
        rows = [dict(zip(GROUP_COLUMNS, r)) for r in self.db.execute(sql, [*args, limit + 1]).fetchall()]
        more = len(rows) > limit
        rows = self._shown(rows[:limit])
        cursor = f"{rows[-1][column]!r}:{rows[-1]['id']}" if more and rows else None
        return Page(rows, cursor, self.counts(filters.status))

    def _ordered_page(self, filters: Filters, order: list[int], offset: int, limit: int) -> Page:
        ids = order[offset:offset + limit]
        rows = {r[0]: dict(zip(GROUP_COLUMNS, r)) for r in self._where_in(
            f"select {', '.join(GROUP_COLUMNS)} from review_groups where id in ({{}})", ids)} if ids else {}
        groups = self._shown([rows[i] for i in ids if i in rows])
        more = offset + limit < len(order)
        return Page(groups, str(offset + limit) if more else None, self.counts(filters.status))

    def _shown(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in rows:
            r["kinds"] = [k for k in r["kinds"].split(",") if k]
            turn = self.db.execute("select confidence from turns where id = ?", [r["last_turn_id"]]).fetchone()
            r["confidence"] = turn[0] if turn else None
        return rows

    def counts(self, status: str = "new") -> dict[str, int]:
        """Groups per flag kind (and in all) with this status ("" = any); on SQLite counted again only after a
        write (this store's own, or another connection's: SQLite's data_version); on PostgreSQL, whose other
        workers' writes it cannot see as cheaply, every time."""
        if self.postgres:
            return self._count(status)
        version = (self._writes, self.db.execute("pragma data_version").fetchone()[0], status)
        if self._counts is not None and self._counts[0] == version:
            return dict(self._counts[1])
        counts = self._count(status)
        self._counts = (version, counts)
        return dict(counts)

    def _count(self, status: str) -> dict[str, int]:
        cols = ", ".join(f"count(*) filter (where instr(kinds, ',{k},') > 0)" for k in KINDS)
        sql = f"select count(*), {cols} from review_groups" + (" where status = ?" if status else "")
        row = self.db.execute(sql, [status] if status else []).fetchone()
        return {"all": row[0] or 0, **{k: v or 0 for k, v in zip(KINDS, row[1:])}}

    def group_ids(self, filters: Filters) -> list[int]:
        """Every group in the filtered selection (bulk actions act on all of it, not one page)."""
        where, args = filters.where()
        sql = "select id from review_groups" + (f" where {' and '.join(where)}" if where else "") + " order by id"
        return [r[0] for r in self.db.execute(sql, args).fetchall()]

    def group(self, group_id: int) -> dict[str, Any] | None:
        row = self.db.execute(f"select {', '.join(GROUP_COLUMNS)} from review_groups where id = ?",
                              [group_id]).fetchone()
        if row is None:
            return None
        g = dict(zip(GROUP_COLUMNS, row))
        g["kinds"] = [k for k in g["kinds"].split(",") if k]
        return g

    def members(self, group_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """The group's turns, newest first: turn id, when, message, kinds."""
        kinds = self.db.dialect.string_agg("e.kind", "','")
        rows = self.db.execute(
            f"select e.turn_id, max(e.created), {kinds},"
            " t.message from review_entries e join turns t on t.id = e.turn_id where e.group_id = ?"
            " group by e.turn_id, t.message order by e.turn_id desc"
            " limit ?", [group_id, limit]).fetchall()
        return [{"turn_id": r[0], "created": r[1], "kinds": r[2].split(","), "message": r[3]} for r in rows]

    def turn(self, turn_id: int) -> dict[str, Any] | None:
        cols = ("id", "conversation_id", "created", "message", "answer", "route", "intent", "confidence",
                "sources", "decision", "model_version", "latency_ms")
        row = self.db.execute(f"select {', '.join(cols)} from turns where id = ?", [turn_id]).fetchone()
        if row is None:
            return None
        t = dict(zip(cols, row))
        t["decision"] = json.loads(t["decision"])
        t["sources"] = json.loads(t["sources"])
        t["feedback"] = [{"rating": r[0], "comment": r[1], "created": r[2]} for r in self.db.execute(
            "select rating, comment, created from feedback where turn_id = ? order by id", [turn_id]).fetchall()]
        return t

    def context(self, conversation_id: str, around: int, before: int = 5, after: int = 5) -> dict[str, Any]:
        """Turns of the conversation around one turn (older ones load on request: `before` from an id)."""
        older = self.db.execute(
            "select id, created, message, answer, route, intent from turns where conversation_id = ? and id < ?"
            " order by id desc limit ?", [conversation_id, around, before + 1]).fetchall()
        newer = self.db.execute(
            "select id, created, message, answer, route, intent from turns where conversation_id = ? and id >= ?"
            " order by id limit ?", [conversation_id, around, after + 1]).fetchall()
        keys = ("turn_id", "created", "message", "answer", "route", "intent")
        turns = [dict(zip(keys, r)) for r in reversed(older[:before])] + [dict(zip(keys, r)) for r in newer]
        return {"turns": turns, "more_before": len(older) > before}

    def in_queue(self, conversation_id: str) -> bool:
        """Whether any turn of the conversation reached the queue (only those conversations are shown)."""
        return self.db.execute(
            "select 1 from review_entries e join turns t on t.id = e.turn_id where t.conversation_id = ? limit 1",
            [conversation_id]).fetchone() is not None

    # decisions and their record
    def set_status(self, group_id: int, status: str, decision: str | None, actor: str | None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        self._writes += 1
        self.db.execute("update review_groups set status = ?, decision = ?, decided_by = ?, decided = ? where id = ?",
                        [status, decision, actor, time.time() if actor else None, group_id])

    def set_intent(self, group_id: int, intent: str | None) -> None:
        """The intent a reviewer gave the group (shown and filtered on, like the bot's own)."""
        self._writes += 1
        self.db.execute("update review_groups set intent = ? where id = ?", [intent, group_id])

    def record(self, group_id: int | None, action: str, actor: str, before: dict, after: dict,
               bulk_id: str | None = None) -> int:
        return self.db.insert(
            "insert into review_actions (group_id, bulk_id, action, actor, created, before, after)"
            " values (?, ?, ?, ?, ?, ?, ?)",
            [group_id, bulk_id, action, actor, time.time(), json.dumps(before), json.dumps(after)])

    def action(self, action_id: int) -> dict[str, Any] | None:
        rows = list(self.actions(where="id = ?", args=[action_id]))
        return rows[0] if rows else None

    def actions(self, group_id: int | None = None, bulk_id: str | None = None, where: str = "", args=(),
                limit: int = 200) -> Iterator[dict[str, Any]]:
        cols = ("id", "group_id", "bulk_id", "action", "actor", "created", "before", "after", "undone", "undone_by")
        clauses, params = ([where], list(args)) if where else ([], [])
        if group_id is not None:
            clauses.append("group_id = ?")
            params.append(group_id)
        if bulk_id is not None:
            clauses.append("bulk_id = ?")
            params.append(bulk_id)
        sql = (f"select {', '.join(cols)} from review_actions" + (f" where {' and '.join(clauses)}" if clauses else "")
               + " order by id desc limit ?")
        for r in self.db.execute(sql, [*params, limit]).fetchall():
            a = dict(zip(cols, r))
            a["before"], a["after"] = json.loads(a["before"]), json.loads(a["after"])
            yield a

    def mark_undone(self, action_id: int, actor: str) -> None:
        self.db.execute("update review_actions set undone = ?, undone_by = ? where id = ?", [time.time(), actor, action_id])

    def unanswered(self, since: float, limit: int) -> list[dict[str, Any]]:
        """Messages the bot could not answer since a time, newest first: fallback, low confidence, thumbs-down,
        or marked out of scope by a reviewer; one per group."""
        rows = self.db.execute(
            "select id, text, last_turn_id, size, decision, first_seen, last_seen from review_groups"
            " where last_seen >= ? and status != 'ignored' and (instr(kinds, ',fallback,') > 0"
            " or instr(kinds, ',low_confidence,') > 0 or instr(kinds, ',negative_feedback,') > 0"
            " or decision = 'out_of_scope') order by last_seen desc limit ?", [since, limit]).fetchall()
        keys = ("group_id", "text", "turn_id", "size", "decision", "first_seen", "last_seen")
        return [dict(zip(keys, r)) for r in rows]


def t_is_pick(message: str) -> bool:
    """A quick-reply value (`/intent`), not something the customer typed."""
    return message.startswith("/")
