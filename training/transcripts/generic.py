"""Generic transcripts: CSV/TSV or JSON lines, one turn per row (conversation id, role, text, time, label).

Columns are found by common names or mapped with `--columns field=column` / `transcripts.columns`.
Rows of a conversation need not be contiguous (exports sorted by time are regrouped through a spool).
"""

from __future__ import annotations

from typing import Any, Iterator

from training.transcripts import Reading
from training.transcripts.dialogs import AGENT, CUSTOMER, SYSTEM, Dialog, Turn
from training.transcripts.spool import Spool

SYNONYMS = {
    "conversation_id": ("conversation_id", "conversation", "conv_id", "dialog_id", "dialogue_id", "chat_id",
                        "ticket_id", "thread_id", "session_id", "case_id"),
    "role": ("role", "speaker", "author", "sender", "from", "participant", "direction", "author_type"),
    "text": ("text", "message", "body", "content", "utterance", "msg"),
    "time": ("time", "timestamp", "created_at", "date", "datetime", "sent_at"),
    "label": ("label", "intent", "category", "topic"),
}
REQUIRED = ("conversation_id", "role", "text")


def read(reading: Reading) -> Iterator[Dialog]:
    source = reading.open()
    name = source.path.name.lower().removesuffix(".gz")
    rows = _json_rows(source, reading) if name.endswith((".json", ".jsonl", ".ndjson")) else _csv_rows(source, reading, name)
    roles = Roles(reading)
    with Spool() as spool:
        for line, conv, role, text, label in rows:
            if not conv:
                raise source.error(line, "empty conversation id")
            spool.add(conv, [line, roles.of(role, source, line), text, label])
        for conv, turns in spool.conversations():
            labels = {t[3] for t in turns if t[3]}
            yield Dialog(
                id=conv, line=turns[0][0], label=labels.pop() if len(labels) == 1 else None,
                turns=tuple(Turn(role=r, text=t, line=ln, label=lb or None) for ln, r, t, lb in turns),
            )


class Roles:
    """Role value -> customer / agent / system, from the settings' role lists."""

    def __init__(self, reading: Reading):
        s = reading.settings
        self.map = {**{r.lower(): SYSTEM for r in s.ignored_roles}, **{r.lower(): AGENT for r in s.agent_roles},
                    **{r.lower(): CUSTOMER for r in s.customer_roles}}
        self.settings = s

    def of(self, value: str, source, line: int) -> str:
        role = self.map.get(str(value).strip().lower())
        if role is None:
            raise source.error(line, f"unknown role {value!r}: add it to transcripts.customer_roles, agent_roles "
                                     f"or ignored_roles (customer roles now: {', '.join(self.settings.customer_roles[:5])}, ...)")
        return role


def _resolve(available: list[str], mapping: dict[str, str], source, line: int) -> dict[str, str]:
    """field -> actual column/key name; errors name the missing field and what is there."""
    lower = {a.strip().lower(): a for a in available}
    found = {}
    for field in SYNONYMS:
        if field in mapping:
            if mapping[field] not in available and mapping[field].lower() not in lower:
                raise source.error(line, f"column {mapping[field]!r} (mapped to {field}) is missing; "
                                         f"the file has: {', '.join(available)}")
            found[field] = mapping[field] if mapping[field] in available else lower[mapping[field].lower()]
            continue
        for name in SYNONYMS[field]:
            if name in lower:
                found[field] = lower[name]
                break
    missing = [f for f in REQUIRED if f not in found]
    if missing:
        raise source.error(line, f"missing column {', '.join(missing)} (the file has: {', '.join(available)}); "
                                 f"map it with --columns {missing[0]}=COLUMN")
    return found


def _csv_rows(source, reading: Reading, name: str) -> Iterator[tuple[int, str, str, str, str]]:
    rows = source.csv_rows("\t" if name.endswith(".tsv") else ",")
    header_line, header = next(rows, (0, None))
    if header is None:
        return
    cols = _resolve(header, reading.settings.column_map(reading.columns), source, header_line)
    index = {field: header.index(col) for field, col in cols.items()}
    for line, row in rows:
        if len(row) != len(header):
            raise source.error(line, f"row has {len(row)} fields, the header has {len(header)} "
                                     "(a missing column, or an unquoted comma?)")
        yield (line, row[index["conversation_id"]].strip(), row[index["role"]], row[index["text"]],
               row[index["label"]].strip() if "label" in index else "")


def _json_rows(source, reading: Reading) -> Iterator[tuple[int, str, str, str, str]]:
    mapping = reading.settings.column_map(reading.columns)
    cols: dict[str, str] | None = None
    for line, record in source.json_records(("turns", "messages", "data")):
        if not isinstance(record, dict):
            raise source.error(line, f"expected a JSON object per turn, found {type(record).__name__}")
        if cols is None or any(c not in record for f, c in cols.items() if f in REQUIRED):
            cols = _resolve(list(record), mapping, source, line)
        yield (line, _str(record.get(cols["conversation_id"])), _str(record.get(cols["role"])),
               _str(record.get(cols["text"])), _str(record.get(cols["label"])) if "label" in cols else "")


def _str(value: Any) -> str:
    return "" if value is None else str(value).strip() if not isinstance(value, str) else value
