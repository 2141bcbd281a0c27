"""Turns of interleaved conversations parked in a temporary SQLite file, read back grouped.

Exports are often sorted by time, not by conversation, and Twitter threads are linked by reply ids that
may point anywhere in the file: rebuilding conversations needs random access, which a disk-backed table
gives with bounded memory (a 200 MB export does not have to fit in RAM).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from core.sqlite import ScratchDatabase


class DuplicateRow(ValueError):
    """Two rows share an id that must be unique (e.g. a tweet id)."""

    def __init__(self, id: str, rows: list[Any]):
        self.id, self.rows = id, rows
        super().__init__(f"duplicate id {id}")


class Spool:
    """Append rows keyed by conversation (and optionally linked to a parent row); read them back grouped."""

    def __init__(self) -> None:
        self.db = ScratchDatabase(prefix="supportbot-import-")
        self.db.execute("create table rows (seq integer primary key, conv text, id text, parent text, data text)")
        self.db.execute("begin")  # one transaction while rows are added (a commit per row would cost a write each)
        self.seq = 0

    def add(self, conv: str, data: Any, id: str = "", parent: str = "") -> None:
        self.seq += 1
        self.db.execute("insert into rows values (?, ?, ?, ?, ?)", [self.seq, conv, id, parent, json.dumps(data)])

    def conversations(self) -> Iterator[tuple[str, list[Any]]]:
        """(conversation key, rows in insertion order), conversations in order of first appearance."""
        self._index("create index conv_seq on rows (conv, seq)")
        firsts = self.db.execute("select conv from rows group by conv order by min(seq)")
        for (conv,) in firsts:
            rows = self.db.execute("select data from rows where conv = ? order by seq", [conv]).fetchall()
            yield conv, [json.loads(d) for (d,) in rows]

    def threads(self) -> Iterator[tuple[str, list[Any]]]:
        """Reply trees: (root id, rows depth-first, siblings in insertion order) for every row whose parent
        is empty or absent from the spool, in order of the roots' appearance."""
        self._index("create index id_ on rows (id)", "create index parent_ on rows (parent)")
        dup = self.db.execute("select id from rows group by id having count(*) > 1 limit 1").fetchone()
        if dup is not None:
            rows = self.db.execute("select data from rows where id = ? order by seq", [dup[0]]).fetchall()
            raise DuplicateRow(dup[0], [json.loads(d) for (d,) in rows])
        roots = self.db.execute(
            "select id from rows r where parent = '' or not exists (select 1 from rows p where p.id = r.parent) "
            "order by seq").fetchall()
        for (root,) in roots:
            rows = self.db.execute(
                "with recursive thread(id) as (select ? union select r.id from rows r join thread t on r.parent = t.id) "
                "select rows.seq, rows.id, rows.parent, rows.data from rows join thread using (id)", [root]).fetchall()
            children: dict[str, list[tuple[int, str, str]]] = {}
            for seq, id_, parent, data in rows:
                children.setdefault(parent, []).append((seq, id_, data))
            ordered, stack = [], [(0, root, None)]
            data_of = {id_: data for _, id_, _, data in rows}
            while stack:
                _, node, _ = stack.pop()
                ordered.append(json.loads(data_of[node]))
                kids = sorted(children.get(node, ()), reverse=True)
                stack.extend(kids)
            yield root, ordered

    def _index(self, *statements: str) -> None:
        if self.db.conn.in_transaction:
            self.db.execute("commit")
        for statement in statements:
            self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
