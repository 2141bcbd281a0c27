"""Training-example store: labelled and unlabelled utterances with their source, the imported files, and the
intent proposals, on SQLite or PostgreSQL (`core.engine`). All of their SQL is in this module.

Duplicates by normalised text are stored once. Writes are all-or-nothing per call.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from core.engine import Database, migrate, on_both

SOURCES = ("seed", "file", "transcript", "review", "conversation", "cluster")
SPLITS = ("", "train", "test")


# Version 1 is the schema main's code made with sqlite_utils (without a schema_version row): its CREATE ... IF NOT
# EXISTS leaves such a database's tables and rows as they are (and adds the provenance index older ones lack).
EXAMPLES_SCHEMA = """
CREATE TABLE IF NOT EXISTS examples (
    id {id}, text TEXT NOT NULL, norm TEXT NOT NULL, intent TEXT, source TEXT NOT NULL,
    split TEXT DEFAULT '', provenance TEXT DEFAULT '', label_method TEXT DEFAULT '', created {real}
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_examples_norm ON examples (norm);
CREATE INDEX IF NOT EXISTS idx_examples_intent ON examples (intent);
CREATE INDEX IF NOT EXISTS idx_examples_provenance ON examples (provenance);
CREATE TABLE IF NOT EXISTS imports (
    id {id}, path TEXT NOT NULL, sha256 TEXT, format TEXT NOT NULL, created {real}, report TEXT
)
"""
PROPOSALS_SCHEMA = """
CREATE TABLE IF NOT EXISTS intent_proposals (
    id {id}, name TEXT NOT NULL, members TEXT NOT NULL, examples TEXT, status TEXT NOT NULL DEFAULT 'open',
    intent TEXT DEFAULT '', created {real}
)
"""
EXAMPLE_MIGRATIONS = [on_both(EXAMPLES_SCHEMA)]
PROPOSAL_MIGRATIONS = [on_both(PROPOSALS_SCHEMA)]
EXAMPLE_COLUMNS = "id, text, intent, source, split, provenance, label_method"
IMPORT_COLUMNS = ("id", "path", "sha256", "format", "created", "report")
PROPOSAL_COLUMNS = "id, name, members, examples, status, intent, created"


@dataclass(frozen=True)
class Example:
    """One utterance; `intent` is None while it is unlabelled."""

    text: str
    intent: str | None
    source: str = "seed"
    split: str = ""  # "" = let training choose; "test" = held out for evaluation only
    provenance: str = ""  # e.g. "transcripts/export.csv:42"
    label_method: str = ""  # how the label was obtained: explicit, template-match, review, ...
    id: int | None = field(default=None, compare=False)


@dataclass
class AddResult:
    added: int = 0
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)  # same text, another intent already stored


def normalise(text: str) -> str:
    """Lower-case, collapse whitespace, drop surrounding punctuation: the duplicate key."""
    text = re.sub(r"\s+", " ", text.strip().lower())
    return text.strip(" .!?,;:'\"")


class ExampleStore:
    """Examples table access; the only module that writes training examples."""

    def __init__(self, db: Database):
        self.db = db
        migrate(db, "training.examples", EXAMPLE_MIGRATIONS)

    def add(self, examples: Iterable[Example]) -> AddResult:
        """Insert new examples in one transaction; known texts are counted, not stored again."""
        with self.db.transaction():
            return self.insert(examples)

    def insert(self, examples: Iterable[Example]) -> AddResult:
        """`add` without its own transaction: for callers that group several writes in one `db.transaction()`."""
        result = AddResult()
        now = time.time()
        for ex in examples:
            if ex.source not in SOURCES:
                raise ValueError(f"unknown example source {ex.source!r}; expected one of {SOURCES}")
            if ex.split not in SPLITS:
                raise ValueError(f"unknown split {ex.split!r}; expected one of {SPLITS}")
            norm = normalise(ex.text)
            if not norm:
                continue
            row = self.db.execute("select intent from examples where norm = ?", [norm]).fetchone()
            if row is not None:
                result.duplicates += 1
                if ex.intent and row[0] and row[0] != ex.intent:
                    result.conflicts.append(f"{ex.text!r}: stored as {row[0]}, not {ex.intent}")
                continue
            self.db.execute(
                "insert into examples (text, norm, intent, source, split, provenance, label_method, created)"
                " values (?, ?, ?, ?, ?, ?, ?, ?)",
                [ex.text.strip(), norm, ex.intent or None, ex.source, ex.split, ex.provenance,
                 ex.label_method, now],
            )
            result.added += 1
        return result

    def carve_test_split(self, share: float, seed: int) -> int:
        """Move a stratified `share` of each intent's labelled examples to split 'test' (a golden set never
        trained on); intents with 4 or more examples give at least one. Returns how many moved."""
        import random

        rng = random.Random(seed)
        rows = self.db.execute("select id, intent from examples where intent is not null and split = ''"
                               " order by id").fetchall()
        by_intent: dict[str, list[int]] = {}
        for row_id, intent in rows:
            by_intent.setdefault(intent, []).append(row_id)
        chosen = []
        for ids in by_intent.values():
            k = round(share * len(ids)) or (1 if len(ids) >= 4 else 0)
            chosen += rng.sample(ids, k)
        with self.db.transaction():
            for row_id in chosen:
                self.db.execute("update examples set split = 'test' where id = ?", [row_id])
        return len(chosen)

    def examples(self, *, labelled: bool | None = True, split: str | None = None) -> list[Example]:
        """Stored examples; `labelled=None` returns both labelled and unlabelled ones."""
        where, args = [], []
        if labelled is True:
            where.append("intent is not null")
        elif labelled is False:
            where.append("intent is null")
        if split is not None:
            where.append("split = ?")
            args.append(split)
        where = f" where {' and '.join(where)}" if where else ""
        rows = self.db.execute(f"select {EXAMPLE_COLUMNS} from examples{where} order by id", args).fetchall()
        return [_example(r) for r in rows]

    def label(self, ids: Iterable[int], intent: str, method: str) -> int:
        """Give examples an intent (accepting a proposed cluster, a review correction)."""
        ids = list(ids)
        with self.db.transaction():
            for i in ids:
                self.db.execute(
                    "update examples set intent = ?, label_method = ? where id = ?", [intent, method, i]
                )
        return len(ids)

    def rename_intent(self, old: str, new: str) -> int:
        with self.db.transaction():
            cur = self.db.execute("update examples set intent = ? where intent = ?", [new, old])
        return cur.rowcount

    def counts(self) -> Counter[str]:
        """Labelled examples per intent."""
        rows = self.db.execute("select intent, count(*) from examples where intent is not null group by intent")
        return Counter(dict(rows.fetchall()))

    def find(self, text: str) -> Example | None:
        """The stored example with this text (by its normalised form), if any."""
        row = self.db.execute(f"select {EXAMPLE_COLUMNS} from examples where norm = ?", [normalise(text)]).fetchone()
        return None if row is None else _example(row)

    def remove(self, ids: Iterable[int]) -> int:
        """Delete examples (undoing a review decision that added them); call inside the caller's `db.transaction()`."""
        return sum(self.db.execute("delete from examples where id = ?", [i]).rowcount for i in ids)

    def relabel(self, example_id: int, intent: str | None, method: str) -> None:
        """`label` for one example without its own transaction (a review action groups its writes)."""
        self.db.execute("update examples set intent = ?, label_method = ? where id = ?", [intent, method, example_id])

    def count_since(self, sources: Iterable[str], since: float) -> int:
        """Labelled examples from these sources stored after a time (e.g. reviewed since the model was trained)."""
        sources = list(sources)
        marks = ", ".join("?" for _ in sources)
        return self.db.execute(
            f"select count(*) from examples where intent is not null and source in ({marks}) and created > ?",
            [*sources, since]).fetchone()[0]

    def sample_per_intent(self, per_intent: int) -> list[Example]:
        """The first `per_intent` labelled examples of each intent (by id): what the bot knows, in small."""
        rows = self.db.execute(f"select {EXAMPLE_COLUMNS} from (select {EXAMPLE_COLUMNS}, row_number() over"
                               f" (partition by intent order by id) as n from examples where intent is not null) e"
                               f" where n <= ? order by id", [per_intent]).fetchall()
        return [_example(r) for r in rows]

    def labelled_from(self, sources: Iterable[str], after_id: int = 0, methods: Iterable[str] = ()) -> list[Example]:
        """Labelled examples from these sources or labelled by these methods (reviewed ones, for the memory of
        reviewed answers), by id."""
        where, args = _from(sources, methods)
        rows = self.db.execute(f"select {EXAMPLE_COLUMNS} from examples where intent is not null and {where} "
                               f"and id > ? order by id", [*args, after_id]).fetchall()
        return [_example(r) for r in rows]

    def state_of(self, sources: Iterable[str], methods: Iterable[str] = ()) -> tuple:
        """What changes whenever a labelled example from these sources (or labelled by these methods) is added,
        removed or relabelled: their count, highest id and a checksum of their labels (cheap enough to ask every
        second)."""
        where, args = _from(sources, methods)
        row = self.db.execute(f"select count(*), coalesce(max(id), 0), coalesce(sum(length(intent) * id), 0) "
                              f"from examples where intent is not null and {where}", args).fetchone()
        return tuple(row)

    def has_provenance(self, provenance: str) -> bool:
        return self.db.execute("select 1 from examples where provenance = ? limit 1", [provenance]).fetchone() is not None

    def has_text(self, text: str) -> bool:
        """Whether an example with this normalised text is stored (the duplicate key of `add`)."""
        norm = normalise(text)
        return self.db.execute("select 1 from examples where norm = ? limit 1", [norm]).fetchone() is not None

    def ids_for(self, texts: Iterable[str]) -> dict[str, int]:
        """Example id of each stored text, keyed by its normalised form."""
        found = {}
        for text in texts:
            norm = normalise(text)
            row = self.db.execute("select id from examples where norm = ?", [norm]).fetchone()
            if row is not None:
                found[norm] = row[0]
        return found

    def unlabelled(self, exclude: Iterable[int] = (), limit: int | None = None) -> list[Example]:
        """Unlabelled examples, newest first, leaving out the ids in `exclude` (e.g. dropped proposals)."""
        skip = set(exclude)
        rows = self.db.execute(f"select {EXAMPLE_COLUMNS} from examples where intent is null order by id desc")
        out = []
        for row in rows:
            if row[0] in skip:
                continue
            out.append(_example(row))
            if limit is not None and len(out) >= limit:
                break
        return out

    def record_import(self, path: str, sha256: str, format: str, report: str) -> int:
        """Remember an imported file (call inside the import's transaction); returns the record id."""
        return self.db.execute(
            "insert into imports (path, sha256, format, created, report) values (?, ?, ?, ?, ?) returning id",
            [path, sha256, format, time.time(), report],
        ).fetchall()[0][0]

    def imports(self) -> list[dict]:
        """Imported files, oldest first: path, sha256, format, created, report (JSON)."""
        rows = self.db.execute(f"select {', '.join(IMPORT_COLUMNS)} from imports order by id").fetchall()
        return [dict(zip(IMPORT_COLUMNS, row)) for row in rows]


def _example(row) -> Example:
    """An Example from a row of EXAMPLE_COLUMNS."""
    row_id, text, intent, source, split, provenance, label_method = row
    return Example(text=text, intent=intent, source=source, split=split or "", provenance=provenance or "",
                   label_method=label_method or "", id=row_id)


PROPOSAL_STATUSES = ("open", "accepted", "merged", "dropped")


@dataclass(frozen=True)
class Proposal:
    """A proposed new intent: a cluster of unlabelled examples waiting for a person's decision."""

    id: int
    name: str
    members: tuple[int, ...]  # example ids
    examples: tuple[str, ...]  # representative texts, most typical first
    status: str = "open"
    intent: str = ""  # the intent its examples were given when accepted
    created: float = 0.0

    @property
    def size(self) -> int:
        return len(self.members)


class ProposalStore:
    """The `intent_proposals` table. Methods do not open transactions: wrap them in `db.transaction()`
    together with the example labelling or intents.yaml write they belong to."""

    def __init__(self, db: Database):
        self.db = db
        migrate(db, "training.proposals", PROPOSAL_MIGRATIONS)

    def replace_open(self, proposals: Iterable[tuple[str, Iterable[int], Iterable[str]]]) -> list[int]:
        """Drop the open proposals and store these (name, member ids, representative texts) instead."""
        self.db.execute("delete from intent_proposals where status = 'open'")
        now, ids = time.time(), []
        for name, members, examples in proposals:
            ids.append(self.db.execute(
                "insert into intent_proposals (name, members, examples, status, intent, created)"
                " values (?, ?, ?, 'open', '', ?) returning id",
                [name, json.dumps(sorted(int(m) for m in members)), json.dumps(list(examples)), now],
            ).fetchall()[0][0])
        return ids

    def proposals(self, status: str | None = "open") -> list[Proposal]:
        """Proposals with this status (None = all), oldest first."""
        where = " where status = ?" if status else ""
        rows = self.db.execute(f"select {PROPOSAL_COLUMNS} from intent_proposals{where} order by id",
                               [status] if status else []).fetchall()
        return [_proposal(r) for r in rows]

    def get(self, proposal_id: int) -> Proposal:
        row = self.db.execute(f"select {PROPOSAL_COLUMNS} from intent_proposals where id = ?", [proposal_id]).fetchone()
        if row is None:
            raise ValueError(f"no intent proposal {proposal_id}; see `run_bot.py intents list`")
        return _proposal(row)

    def update(self, proposal_id: int, *, name: str | None = None, members: Iterable[int] | None = None,
               examples: Iterable[str] | None = None, status: str | None = None, intent: str | None = None) -> None:
        if status is not None and status not in PROPOSAL_STATUSES:
            raise ValueError(f"unknown proposal status {status!r}; expected one of {PROPOSAL_STATUSES}")
        values = {"name": name, "status": status, "intent": intent,
                  "members": None if members is None else json.dumps(sorted(int(m) for m in members)),
                  "examples": None if examples is None else json.dumps(list(examples))}
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            sets = ", ".join(f"{k} = ?" for k in values)
            self.db.execute(f"update intent_proposals set {sets} where id = ?", [*values.values(), proposal_id])

    def label_members(self, proposal: Proposal, intent: str, method: str = "cluster") -> list[int]:
        """Give the still-unlabelled member examples `intent`; returns their ids (what an undo unlabels)."""
        labelled = []
        for example_id in proposal.members:
            cur = self.db.execute(
                "update examples set intent = ?, label_method = ? where id = ? and intent is null",
                [intent, method, example_id],
            )
            if cur.rowcount:
                labelled.append(example_id)
        return labelled

    def dropped_members(self) -> set[int]:
        """Example ids a person already rejected as a new intent (left out of later clustering)."""
        rows = self.db.execute("select members from intent_proposals where status = 'dropped'").fetchall()
        return {m for (members,) in rows for m in json.loads(members)}


def _from(sources: Iterable[str], methods: Iterable[str]) -> tuple[str, list[str]]:
    """`(source in (...) or label_method in (...))` and its arguments."""
    sources, methods = list(sources), list(methods)
    parts = [f"{column} in ({', '.join('?' for _ in values)})"
             for column, values in (("source", sources), ("label_method", methods)) if values]
    return f"({' or '.join(parts) or 'false'})", [*sources, *methods]


def _proposal(row) -> Proposal:
    """A Proposal from a row of PROPOSAL_COLUMNS."""
    row_id, name, members, examples, status, intent, created = row
    return Proposal(id=row_id, name=name, members=tuple(json.loads(members)), examples=tuple(json.loads(examples or "[]")),
                    status=status, intent=intent or "", created=created or 0.0)
