"""Moving a bot's state from its SQLite file to PostgreSQL (`run_bot.py db copy --to postgresql://...`).

The target is migrated by the stores themselves, then every table of the source is copied in the order of the
target's foreign keys, identity sequences are moved past the copied ids, and each table's row count is compared
with the source's; all of it in one transaction on the target, so a failure leaves it as it was. The source is
read in one read transaction (a consistent snapshot, even while a server writes it) and never changed, except
that its stores' migrations run first, as on any start. SQLite's FTS5 keyword index is not copied: PostgreSQL's
keyword columns are computed from the copied chunks.
"""

from __future__ import annotations

from graphlib import TopologicalSorter
from typing import Callable

from bot.database import migrate_stores
from core.engine import Database, PostgresDatabase
from knowledge.store import KnowledgeStore

BATCH = 5000  # rows per round trip
NOT_COPIED = ("kb_fts", "schema_version")  # SQLite's FTS5 index (and its shadow tables); each side's own versions
FILLED_AFTER = {"kb_chunks": {"terms": "''", "body_terms": "''"}}  # computed on the target once the rows are in


class TargetNotEmpty(ValueError):
    """The target already holds rows of the bot's tables: nothing was written."""


def copy_state(source: Database, target: PostgresDatabase,
               progress: Callable[[str, int], None] = lambda table, rows: None) -> dict[str, int]:
    """Copy every table of `source` (SQLite) into the empty `target`; returns the rows per table, each checked
    against the source's count as it is copied (`progress` is told then)."""
    migrate_stores(source)
    source.execute("BEGIN")  # one snapshot of the source for the whole copy
    try:
        tables = _source_tables(source)
        with target.transaction():
            _refuse_rows(target, tables)
            migrate_stores(target)
            counts = {}
            for table in _in_dependency_order(target, tables):
                _copy_table(source, target, table)
                counts[table] = _same_count(source, target, table)
                progress(table, counts[table])
            KnowledgeStore(target).index_copied_chunks()
            _reset_sequences(target)
    finally:
        source.execute("ROLLBACK")
    return counts


def _source_tables(source: Database) -> list[str]:
    rows = source.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                          " ORDER BY name").fetchall()
    return [name for (name,) in rows if not any(name == n or name.startswith(n + "_") for n in NOT_COPIED)]


def _target_tables(target: PostgresDatabase) -> set[str]:
    rows = target.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                          " AND table_type = 'BASE TABLE'")
    return {name for (name,) in rows}


def _refuse_rows(target: PostgresDatabase, tables: list[str]) -> None:
    present = _target_tables(target)
    for table in tables:
        if table in present:
            n = target.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            if n:
                raise TargetNotEmpty(f"the target database is not empty ({table} has {n} rows): db copy only copies "
                                     "into an empty database; nothing was written")


def _in_dependency_order(target: PostgresDatabase, tables: list[str]) -> list[str]:
    missing = sorted(set(tables) - _target_tables(target))
    if missing:  # a table no store knows: copying the rest would lose it
        raise RuntimeError(f"the source has tables no store creates on PostgreSQL: {', '.join(missing)}; nothing "
                           "was written")
    needs: dict[str, set[str]] = {t: set() for t in tables}
    for table, referenced in target.execute(
            "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c"
            " WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace"):
        if table in needs and referenced in needs and referenced != table:
            needs[table].add(referenced)
    return list(TopologicalSorter(needs).static_order())


def _same_count(source: Database, target: PostgresDatabase, table: str) -> int:
    count = f'SELECT count(*) FROM "{table}"'
    n, copied = source.execute(count).fetchone()[0], target.execute(count).fetchone()[0]
    if copied != n:
        raise RuntimeError(f"{table}: {copied} rows in the target, {n} in the source; nothing was written")
    return n


def _copy_table(source: Database, target: PostgresDatabase, table: str) -> None:
    source_columns = {r[1] for r in source.execute(f'PRAGMA table_info("{table}")').fetchall()}
    target_columns = [r[0] for r in target.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = ? ORDER BY ordinal_position", [table])]
    filled = FILLED_AFTER.get(table, {})
    columns = [c for c in target_columns if c in source_columns and c not in filled]
    values = ", ".join(["?"] * len(columns) + list(filled.values()))
    insert = f'INSERT INTO "{table}" ({_names([*columns, *filled])}) VALUES ({values})'
    cursor = source.execute(f'SELECT {_names(columns)} FROM "{table}" ORDER BY rowid')
    while rows := cursor.fetchmany(BATCH):
        target.executemany(insert, rows)


def _names(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _reset_sequences(target: PostgresDatabase) -> None:
    """Identity columns continue after the copied ids (rows were inserted with their ids)."""
    for table, column in target.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall():
        target.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), (SELECT coalesce(max(\"{column}\"), 0) + 1"
                       f" FROM \"{table}\"), false)", [table, column])
