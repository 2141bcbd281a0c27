"""Retrain runs: a lock so two never overlap, and a log of every run (start, end, data counts, outcome).

The lock is a file created exclusively (O_EXCL) holding the holder's pid and start time. A run killed with
`kill -9` leaves it behind; the next run sees that its pid is gone and takes it over. The log is the
`retrain_runs` table, on SQLite or PostgreSQL (`core.engine`); this module holds all of its SQL.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.engine import Database, migrate, on_both

# Version 1 is the table main's code made with sqlite_utils (without a schema_version row), left as it is.
SCHEMA = """
CREATE TABLE IF NOT EXISTS retrain_runs (
    id {id}, started {real} NOT NULL, ended {real}, pid INTEGER, trigger TEXT,
    outcome TEXT NOT NULL DEFAULT 'running', candidate TEXT, base TEXT, counts TEXT, detail TEXT
)
"""
MIGRATIONS = [on_both(SCHEMA)]
COLUMNS = ("id", "started", "ended", "pid", "trigger", "outcome", "candidate", "base", "counts", "detail")


class RetrainBusy(RuntimeError):
    """Another retrain holds the lock."""


@dataclass(frozen=True)
class Holder:
    pid: int
    started: float

    def describe(self) -> str:
        return f"pid {self.pid}, started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(self.started))}"


class RetrainLock:
    """`with RetrainLock(path):` — refuses (RetrainBusy, naming the holder) while a live process holds it."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def holder(self) -> Holder | None:
        try:
            data = json.loads(self.path.read_text())
            return Holder(int(data["pid"]), float(data["started"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def __enter__(self) -> "RetrainLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is not None and _alive(holder.pid):
                    raise RetrainBusy(f"a retrain is already running ({holder.describe()}); lock {self.path}") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone (killed, crashed, machine restarted)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "started": time.time()}, f)
            return self
        raise RetrainBusy(f"could not take the retrain lock {self.path}")

    def __exit__(self, *exc) -> None:
        holder = self.holder()
        if holder is not None and holder.pid == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLog:
    """The `retrain_runs` table: one row per run, opened at the start and closed with its outcome."""

    def __init__(self, db: Database):
        self.db = db
        migrate(db, "training.runs", MIGRATIONS)

    def start(self, trigger: str) -> int:
        with self.db.transaction():
            return self.db.execute(
                "insert into retrain_runs (started, pid, trigger, outcome) values (?, ?, ?, 'running') returning id",
                [time.time(), os.getpid(), trigger]).fetchall()[0][0]

    def finish(self, run_id: int, outcome: str, candidate: str = "", base: str = "",
               counts: dict | None = None, detail: str = "") -> None:
        with self.db.transaction():
            self.db.execute(
                "update retrain_runs set ended = ?, outcome = ?, candidate = ?, base = ?, counts = ?, detail = ?"
                " where id = ?", [time.time(), outcome, candidate, base, json.dumps(counts or {}), detail, run_id])

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self.db.execute(f"select {', '.join(COLUMNS)} from retrain_runs where id = ?", [run_id]).fetchall()
        return _run(rows[0]) if rows else None

    def settle(self, run_id: int, outcome: str, note: str) -> None:
        """A held run decided by a person: its outcome (approved, rejected) and who, added to its detail."""
        with self.db.transaction():
            self.db.execute("update retrain_runs set outcome = ?, detail = detail || ? where id = ? and outcome = 'held'",
                            [outcome, f"; {note}", run_id])

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first; a run still marked running whose process is gone is reported as killed."""
        rows = self.db.execute(f"select {', '.join(COLUMNS)} from retrain_runs order by id desc limit ?",
                               [limit]).fetchall()
        return [_run(r) for r in rows]


def _run(row) -> dict[str, Any]:
    run = dict(zip(COLUMNS, row))
    run["counts"] = json.loads(run["counts"] or "{}")
    if run["outcome"] == "running" and run["pid"] != os.getpid() and not _alive(run["pid"]):
        run["outcome"] = "killed"
    return run
