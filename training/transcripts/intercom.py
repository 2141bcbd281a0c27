"""Intercom conversation export: JSON lines or a JSON document (`{"conversations": [...]}` or a list) of
conversations as the REST API returns them.

Used fields: id, source {author {type}, body}, conversation_parts {conversation_parts: [{part_type,
body, author {type}}]}, tags {tags: [{name}]}. Authors of type user, lead or contact are the customer;
admin, bot, team and operator are agents. Notes (private) and parts without a body are skipped.
"""

from __future__ import annotations

from typing import Iterator

from training.transcripts import Reading
from training.transcripts.dialogs import AGENT, CUSTOMER, Dialog, Turn, html_text, tag_label

CUSTOMER_TYPES = ("user", "lead", "contact")
AGENT_TYPES = ("admin", "bot", "team", "operator")
PRIVATE_PARTS = ("note", "note_and_reopen")


def read(reading: Reading) -> Iterator[Dialog]:
    source = reading.open()
    prefix = reading.settings.tag_label_prefix
    for line, conv in source.json_records(("conversations", "data")):
        if not isinstance(conv, dict) or "id" not in conv:
            raise source.error(line, "not an Intercom conversation: expected an object with an 'id'")
        parts = []
        if isinstance(conv.get("source"), dict):
            parts.append(conv["source"])
        listed = conv.get("conversation_parts") or {}
        listed = listed.get("conversation_parts", []) if isinstance(listed, dict) else listed
        if not isinstance(listed, list):
            raise source.error(line, f"conversation {conv['id']}: 'conversation_parts' must be a list")
        parts.extend(listed)
        turns = []
        for part in parts:
            if not isinstance(part, dict) or part.get("part_type") in PRIVATE_PARTS or not part.get("body"):
                continue
            kind = str((part.get("author") or {}).get("type", "")).lower()
            if kind in CUSTOMER_TYPES:
                role = CUSTOMER
            elif kind in AGENT_TYPES:
                role = AGENT
            else:
                raise source.error(line, f"conversation {conv['id']}: unknown author type {kind!r}")
            turns.append(Turn(role=role, text=html_text(str(part["body"])), line=line))
        tags = conv.get("tags") or {}
        tags = tags.get("tags", []) if isinstance(tags, dict) else tags
        yield Dialog(id=str(conv["id"]), turns=tuple(turns), line=line, label=tag_label(tags, prefix))
