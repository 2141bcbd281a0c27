"""Customer Support on Twitter (Kaggle `twcs.csv`): threads rebuilt from the reply links.

Columns tweet_id, author_id, inbound, created_at, text, response_tweet_id, in_response_to_tweet_id;
`inbound` True = the customer. A thread starts at a tweet that answers nothing in the file.
"""

from __future__ import annotations

from typing import Iterator

from training.transcripts import Reading
from training.transcripts.dialogs import AGENT, CUSTOMER, Dialog, Turn
from training.transcripts.spool import DuplicateRow, Spool

REQUIRED = ("tweet_id", "inbound", "text", "in_response_to_tweet_id")


def read(reading: Reading) -> Iterator[Dialog]:
    source = reading.open()
    rows = source.csv_rows()
    header_line, header = next(rows, (0, None))
    if header is None:
        return
    cols = {c.strip().lower(): i for i, c in enumerate(header)}
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise source.error(header_line, f"missing column {', '.join(missing)} (the file has: {', '.join(header)}); "
                                        "is this the Twitter customer-support CSV?")
    with Spool() as spool:
        for line, row in rows:
            if len(row) != len(header):
                raise source.error(line, f"row has {len(row)} fields, the header has {len(header)}")
            tweet_id = _id(row[cols["tweet_id"]])
            if not tweet_id:
                raise source.error(line, "empty tweet_id")
            inbound = row[cols["inbound"]].strip().lower()
            if inbound not in ("true", "false", "1", "0"):
                raise source.error(line, f"inbound must be True or False, not {row[cols['inbound']]!r}")
            role = CUSTOMER if inbound in ("true", "1") else AGENT
            parent = _id(row[cols["in_response_to_tweet_id"]])
            spool.add("", [line, role, row[cols["text"]]], id=tweet_id, parent=parent)
        try:
            for root, tweets in spool.threads():
                yield Dialog(id=root, line=tweets[0][0],
                             turns=tuple(Turn(role=r, text=t, line=ln) for ln, r, t in tweets))
        except DuplicateRow as e:
            lines = ", ".join(str(r[0]) for r in e.rows)
            raise source.error(e.rows[-1][0], f"tweet_id {e.id} appears more than once (lines {lines})") from None


def _id(value: str) -> str:
    """Tweet ids as written by pandas may carry a '.0'."""
    value = value.strip()
    return value[:-2] if value.endswith(".0") else value
