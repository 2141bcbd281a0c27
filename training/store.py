"""Training-example store: labelled and unlabelled utterances with their source, in SQLite.

Duplicates by normalised text are stored once. Writes are all-or-nothing per call.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import sqlite_utils

from knowledge.database import transaction

SOURCES = ("seed", "file", "transcript", "review", "conversation", "cluster")
SPLITS = ("", "train", "test")


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

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        self.table = db["examples"]
        if not self.table.exists():
            self.table.create(
                {
                    "id": int,
                    "text": str,
                    "norm": str,
                    "intent": str,
                    "source": str,
                    "split": str,
                    "provenance": str,
                    "label_method": str,
                    "created": float,
                },
                pk="id",
                not_null={"text", "norm", "source"},
                defaults={"split": "", "provenance": "", "label_method": ""},
            )
            self.table.create_index(["norm"], unique=True)
            self.table.create_index(["intent"])

    def add(self, examples: Iterable[Example]) -> AddResult:
        """Insert new examples in one transaction; known texts are counted, not stored again."""
        result = AddResult()
        now = time.time()
        with transaction(self.db):
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
        rows = self.table.rows_where(" and ".join(where) or None, args, order_by="id")
        return [_example(r) for r in rows]

    def label(self, ids: Iterable[int], intent: str, method: str) -> int:
        """Give examples an intent (accepting a proposed cluster, a review correction)."""
        ids = list(ids)
        with transaction(self.db):
            for i in ids:
                self.db.execute(
                    "update examples set intent = ?, label_method = ? where id = ?", [intent, method, i]
                )
        return len(ids)

    def rename_intent(self, old: str, new: str) -> int:
        with transaction(self.db):
            cur = self.db.execute("update examples set intent = ? where intent = ?", [new, old])
        return cur.rowcount

    def counts(self) -> Counter[str]:
        """Labelled examples per intent."""
        rows = self.db.execute("select intent, count(*) from examples where intent is not null group by intent")
        return Counter(dict(rows.fetchall()))

    def has_provenance(self, provenance: str) -> bool:
        return self.db.execute("select 1 from examples where provenance = ? limit 1", [provenance]).fetchone() is not None


def _example(row: dict) -> Example:
    return Example(
        text=row["text"], intent=row["intent"], source=row["source"], split=row["split"] or "",
        provenance=row["provenance"] or "", label_method=row["label_method"] or "", id=row["id"],
    )
