"""The conversation log: conversations, turns (with the whole decision), feedback, handoffs and flags.

User text is redacted before it is written. Slot values that contain personal data (an e-mail the bot
asked for) are never written: they live in this process's memory only, for the conversation's sake.
Methods are synchronous and all-or-nothing; the web app calls them from its database thread, and on PostgreSQL the
chat's turns from several threads (one turn of a conversation at a time). The tables live
in the bot's database on either engine (`core.engine`); all of their SQL is in this module.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any, Sequence

from bot.dialogue.router import FLAGS, RATEABLE_ROUTES, Conversation, Reply
from core.dialect import TYPES
from core.engine import Database, migrate, on_both
from training.redact import Redactor

RATINGS = ("up", "down")
TURN_COLUMNS = ("conversation_id, created, message, answer, route, intent, confidence, quick_replies, sources,"
                " decision, model_version, latency_ms")
PRIVATE_SLOT_CONVERSATIONS = 10_000  # conversations whose personal slot values are kept in memory

# Version 1 is the schema main's code made (without a schema_version row): CREATE ... IF NOT EXISTS leaves such a
# database's tables and rows as they are.
SCHEMA = """
create table if not exists conversations (
    id text primary key, token_hash text not null, created {real} not null, updated {real} not null,
    handoff integer not null default 0, failures integer not null default 0,
    pending text, slots text not null default '{{}}', turns integer not null default 0, customer_hash text
);
create table if not exists turns (
    id {id}, conversation_id text not null references conversations(id), created {real} not null,
    message text not null, answer text not null, route text not null, intent text, confidence {real},
    quick_replies text not null, sources text not null, decision text not null, model_version text,
    latency_ms {real}
);
create index if not exists conversations_customer on conversations(customer_hash, created);
create index if not exists turns_conversation on turns(conversation_id);
create index if not exists turns_route on turns(route);
create table if not exists feedback (
    id {id}, turn_id {ref} not null references turns(id),
    conversation_id text not null references conversations(id), rating text not null, comment text,
    created {real} not null
);
create table if not exists handoffs (
    id {id}, conversation_id text not null references conversations(id),
    turn_id {ref} references turns(id), reason text not null, created {real} not null, released {real}
);
create index if not exists handoffs_open on handoffs(conversation_id, released);
create table if not exists flags (
    id {id}, turn_id {ref} not null references turns(id),
    conversation_id text not null references conversations(id), kind text not null, detail text,
    created {real} not null, resolved {real}
);
create index if not exists flags_kind on flags(kind, resolved);
create index if not exists flags_turn on flags(turn_id);
create table if not exists storage_probe (id {id}, data {blob})
"""


def _first_sqlite(db: Database) -> None:
    """Version 1 on SQLite: a log from before verified customers gets their column first (its index needs it)."""
    if db.has_table("conversations") and "customer_hash" not in db.columns("conversations"):
        db.execute("alter table conversations add column customer_hash text")
    for statement in filter(str.strip, SCHEMA.format(**TYPES["sqlite"]).split(";")):
        db.execute(statement)


MIGRATIONS = [{**on_both(SCHEMA), "sqlite": _first_sqlite}]


class UnknownConversation(LookupError):
    """No conversation (or turn) with that id: HTTP 404."""


class ForeignConversation(PermissionError):
    """The id exists but the token does not match: HTTP 403."""


class ConversationMoved(RuntimeError):
    """Another server process recorded a turn of this conversation after it was read: read it again and
    answer the message from the newer state (nothing of this turn was written)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConversationLog:
    """Owns the conversation tables of the shared database."""

    def __init__(self, db: Database, redactor: Redactor):
        """`db`: the bot's database on either engine (core.engine.open_database)."""
        self.db, self.redactor = db, redactor
        migrate(db, "bot.dialogue.conversations", MIGRATIONS)
        self._private: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._private_lock = threading.Lock()  # turns of different conversations may be written from several threads

    # conversations
    def new(self, customer: str | None = None) -> tuple[Conversation, str]:
        """A conversation id and its secret token, of a verified customer's keyed hash (or none); written with
        its first turn."""
        return Conversation(id=uuid.uuid4().hex, customer=customer), secrets.token_urlsafe(24)

    def open(self, conversation_id: str, token: str | None) -> Conversation:
        row = self.db.execute(
            "select token_hash, handoff, failures, pending, slots, turns, customer_hash from conversations"
            " where id = ?",
            [conversation_id]
        ).fetchone()
        if row is None:
            raise UnknownConversation(f"no conversation {conversation_id!r}")
        if not token or not hmac.compare_digest(row[0], _hash(token)):
            raise ForeignConversation("the token does not match this conversation")
        with self._private_lock:
            private = self._private.get(conversation_id, {})
        slots = {**json.loads(row[4]), **private}
        return Conversation(conversation_id, bool(row[1]), row[2], json.loads(row[3]) if row[3] else None, slots,
                            row[5], row[6])

    def record_turn(self, convo: Conversation, message: str, reply: Reply, new_token: str | None = None) -> int:
        """Store the turn, the conversation's new state, its flags and a new handoff; returns the turn id.
        `ConversationMoved` when another process recorded a turn since `convo` was read (nothing written): the
        update of the conversation's row only applies to the turn count that was read, and on PostgreSQL it waits for
        the row lock of a concurrent turn and then sees that turn's count, so of two racing turns one is refused."""
        now = time.time()
        redact = self.redactor.redact
        public = {k: v for k, v in convo.slots.items() if redact(v) == v}
        private = {k: v for k, v in convo.slots.items() if k not in public}
        d = reply.decision
        state = [now, int(convo.handoff), convo.failures, json.dumps(convo.pending) if convo.pending else None,
                 json.dumps(public)]
        turn = [now, redact(message), redact(reply.answer), d.route, d.intent, d.confidence,
                json.dumps([{"label": q.label, "value": q.value} for q in reply.quick_replies]),
                json.dumps([{"title": s.title, "url": s.url, "doc_id": s.doc_id} for s in d.sources]),
                json.dumps(d.to_json()), d.model_version, d.latency_ms]
        for kind in d.flags:
            if kind not in FLAGS:
                raise ValueError(f"unknown flag {kind!r}; expected one of {FLAGS}")
        # The one engine branch of this store: on PostgreSQL a turn is one statement (writable CTEs, which SQLite
        # lacks), so that the chat pays one round trip; SQLite's transaction costs no round trips.
        postgres = self.db.dialect.name == "postgresql"
        record = self._record_in_one_statement if postgres else self._record_in_a_transaction
        turn_id = record(convo, new_token, state, turn, d.flags, d.reason)
        self._remember(convo.id, private)
        convo.turns += 1
        return turn_id

    def _record_in_a_transaction(self, convo: Conversation, new_token: str | None, state: list, turn: list,
                                 flags: Sequence[str], reason: str) -> int:
        now = state[0]
        with self.db.transaction():
            if new_token is not None:
                self.db.execute(
                    "insert into conversations (id, token_hash, created, updated, customer_hash) values (?, ?, ?, ?, ?)",
                    [convo.id, _hash(new_token), now, now, convo.customer],
                )
            if self.db.execute(
                "update conversations set updated = ?, handoff = ?, failures = ?, pending = ?, slots = ?,"
                " turns = turns + 1 where id = ? and turns = ?", [*state, convo.id, convo.turns],
            ).rowcount == 0:
                raise ConversationMoved(f"conversation {convo.id} has a newer turn")
            turn_id = self.db.insert(f"insert into turns ({TURN_COLUMNS}) values (?,?,?,?,?,?,?,?,?,?,?,?)",
                                     [convo.id, *turn])
            for kind in flags:
                self._flag(turn_id, convo.id, kind, reason, now)
            if "handoff" in flags:
                self.db.execute(
                    "insert into handoffs (conversation_id, turn_id, reason, created) values (?, ?, ?, ?)",
                    [convo.id, turn_id, reason, now],
                )
        return turn_id

    def _record_in_one_statement(self, convo: Conversation, new_token: str | None, state: list, turn: list,
                                 flags: Sequence[str], reason: str) -> int:
        """PostgreSQL: the same writes as one statement (one round trip, its own transaction). The first part
        writes the conversation's state (a new one with its first turn counted, or an existing one only at the
        turn count read: no row, and nothing else written, when another turn came first); the turn, its flags and
        a handoff are inserted from the row it returns."""
        now = state[0]
        if new_token is None:
            first = ("update conversations set updated = ?, handoff = ?, failures = ?, pending = ?, slots = ?,"
                     " turns = turns + 1 where id = ? and turns = ? returning id")
            first_args = [*state, convo.id, convo.turns]
        else:
            first = ("insert into conversations (updated, handoff, failures, pending, slots, id, token_hash,"
                     " created, customer_hash, turns) values (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) returning id")
            first_args = [*state, convo.id, _hash(new_token), now, convo.customer]
        row = self.db.execute(
            f"with c as ({first}),"
            f" t as (insert into turns ({TURN_COLUMNS}) select c.id, ?,?,?,?,?,?,?,?,?,?,? from c returning id),"
            " f as (insert into flags (turn_id, conversation_id, kind, detail, created)"
            "  select t.id, ?, k.kind, ?, ? from t, unnest(cast(? as text[])) with ordinality as k(kind, n)"
            "  order by k.n),"
            " h as (insert into handoffs (conversation_id, turn_id, reason, created)"
            "  select ?, t.id, ?, ? from t where ?)"
            " select id from t",
            [*first_args, *turn, convo.id, reason, now, list(flags), convo.id, reason, now, "handoff" in flags],
        ).fetchone()
        if row is None:
            raise ConversationMoved(f"conversation {convo.id} has a newer turn")
        return row[0]

    def history(self, conversation_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "select id, message, answer, quick_replies, sources, route, created, decision from turns"
            " where conversation_id = ? order by id", [conversation_id],
        ).fetchall()
        return [
            {"turn_id": r[0], "message": r[1], "answer": r[2], "quick_replies": json.loads(r[3]),
             "sources": json.loads(r[4]), "route": r[5], "created": r[6],
             "rateable": r[5] in RATEABLE_ROUTES and json.loads(r[7]).get("slot") is None}
            for r in rows
        ]

    # feedback and handoffs
    def feedback(self, conversation_id: str, turn_id: int, rating: str, comment: str = "") -> None:
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {rating!r}")
        turn = self.db.execute(
            "select 1 from turns where id = ? and conversation_id = ?", [turn_id, conversation_id]
        ).fetchone()
        if turn is None:
            raise UnknownConversation(f"no turn {turn_id} in this conversation")
        now = time.time()
        with self.db.transaction():
            self.db.execute(
                "insert into feedback (turn_id, conversation_id, rating, comment, created) values (?, ?, ?, ?, ?)",
                [turn_id, conversation_id, rating, self.redactor.redact(comment), now],
            )
            if rating == "down":
                self._flag(turn_id, conversation_id, "negative_feedback", "the user rated the answer down", now)

    def open_handoffs(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "select h.conversation_id, h.turn_id, h.reason, h.created, c.turns from handoffs h"
            " join conversations c on c.id = h.conversation_id where h.released is null order by h.id"
        ).fetchall()
        return [{"conversation_id": r[0], "turn_id": r[1], "reason": r[2], "created": r[3], "turns": r[4]}
                for r in rows]

    def open_handoff_count(self) -> int:
        return self.db.execute("select count(*) from handoffs where released is null").fetchone()[0]

    def release(self, conversation_id: str) -> bool:
        """Give the conversation back to the bot; False if it was not waiting for a person."""
        with self.db.transaction():
            cur = self.db.execute(
                "update conversations set handoff = 0, failures = 0, pending = null where id = ? and handoff = 1",
                [conversation_id],
            )
            self.db.execute(
                "update handoffs set released = ? where conversation_id = ? and released is null",
                [time.time(), conversation_id],
            )
        return cur.rowcount > 0

    def probe(self) -> None:
        """A small write and its removal: does the database take writes (disk space, permissions)?"""
        with self.db.transaction():
            self.db.execute("insert into storage_probe (data) values (?)", [os.urandom(4096)])
            self.db.execute("delete from storage_probe")

    def stats(self) -> dict[str, Any]:
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "conversations": one("select count(*) from conversations"),
            "turns": one("select count(*) from turns"),
            "routes": dict(self.db.execute("select route, count(*) from turns group by route").fetchall()),
            "open_handoffs": one("select count(*) from handoffs where released is null"),
            "open_flags": dict(self.db.execute(
                "select kind, count(*) from flags where resolved is null group by kind").fetchall()),
            "feedback": dict(self.db.execute("select rating, count(*) from feedback group by rating").fetchall()),
        }

    def recent_messages(self, limit: int) -> list[tuple[int, str]]:
        """The latest customer messages (turn id, stored text), newest first: for shadow scoring."""
        return self.db.execute(
            "select id, message from turns where message != '' order by id desc limit ?", [limit]).fetchall()

    def clarification_answers(self, limit: int = 1000) -> tuple[int, int]:
        """Of the latest `limit` clarifying questions: (how many, how many the customer answered by picking one
        of its choices, i.e. the conversation's next message is a quick reply `/intent`)."""
        rows = self.db.execute(
            "select (select n.message from turns n where n.conversation_id = t.conversation_id and n.id > t.id"
            " order by n.id limit 1) from turns t where t.route = 'clarify' order by t.id desc limit ?",
            [limit]).fetchall()
        return len(rows), sum(1 for (after,) in rows if after is not None and after.startswith("/"))

    def flag_turns(self, kind: str, details: dict[int, str]) -> int:
        """Flag logged turns for review (e.g. what a candidate model would change); returns how many."""
        now = time.time()
        with self.db.transaction():
            rows = self.db.execute(
                f"select id, conversation_id from turns where id in ({','.join('?' * len(details))})",
                list(details)).fetchall() if details else []
            for turn_id, conversation_id in rows:
                self._flag(turn_id, conversation_id, kind, details[turn_id], now)
        return len(rows)

    def _flag(self, turn_id: int, conversation_id: str, kind: str, detail: str, now: float) -> None:
        if kind not in FLAGS:
            raise ValueError(f"unknown flag {kind!r}; expected one of {FLAGS}")
        self.db.execute(
            "insert into flags (turn_id, conversation_id, kind, detail, created) values (?, ?, ?, ?, ?)",
            [turn_id, conversation_id, kind, detail, now],
        )

    def _remember(self, conversation_id: str, private: dict[str, str]) -> None:
        with self._private_lock:
            self._private.pop(conversation_id, None)
            if private:
                self._private[conversation_id] = private
                while len(self._private) > PRIVATE_SLOT_CONVERSATIONS:
                    self._private.popitem(last=False)
