"""Zendesk ticket export: JSON lines (the Admin Center "full JSON export", one ticket per line) or a JSON
document such as an API page `{"tickets": [...]}`, each ticket carrying its `comments`.

Ticket fields used: id, requester_id, description, tags, comments. Comment fields: author_id, public,
plain_body / body / html_body. The requester's comments are the customer's; other authors' public
comments are agent replies; private comments (internal notes) are skipped.
"""

from __future__ import annotations

from typing import Iterator

from training.transcripts import Reading
from training.transcripts.dialogs import AGENT, CUSTOMER, Dialog, Turn, html_text, tag_label


def read(reading: Reading) -> Iterator[Dialog]:
    source = reading.open()
    prefix = reading.settings.tag_label_prefix
    for line, ticket in source.json_records(("tickets", "results")):
        if not isinstance(ticket, dict) or "id" not in ticket:
            raise source.error(line, "not a Zendesk ticket: expected an object with an 'id'")
        comments = ticket.get("comments")
        if comments is None:  # a ticket list without comments: the description is the first comment
            comments = [{"author_id": ticket.get("requester_id"), "public": True,
                         "body": ticket.get("description") or ""}] if ticket.get("description") else []
        if not isinstance(comments, list):
            raise source.error(line, f"ticket {ticket['id']}: 'comments' must be a list")
        requester = ticket.get("requester_id")
        turns = []
        for comment in comments:
            if not isinstance(comment, dict):
                raise source.error(line, f"ticket {ticket['id']}: a comment is not an object")
            if comment.get("public", True) is False:
                continue  # internal note: never seen by the customer
            text = comment.get("plain_body") or comment.get("body") or html_text(comment.get("html_body") or "")
            author = comment.get("author_id")
            role = CUSTOMER if author is not None and author == requester else AGENT
            turns.append(Turn(role=role, text=str(text), line=line))
        yield Dialog(id=str(ticket["id"]), turns=tuple(turns), line=line,
                     label=tag_label(ticket.get("tags"), prefix))
