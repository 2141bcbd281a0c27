"""The bots the tests share, as plain helpers (their fixtures stay in the conftest.py files):

- the test app of tests/bot (the tiny bot with its doubles): its admin token and its test server class;
- the demo bot the end-to-end tests serve (tests/e2e/conftest.py): a client for it, a query on its database on
  either engine, a copy of its state, the chat turns each of its worker processes answered.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestServer

from bot.web.protocol import AppRunner

ROOT = Path(__file__).resolve().parents[2]  # the repository: run_bot.py, examples/
ADMIN = "test-admin-token"  # the test app's admin token (tests/bot/conftest.py: make_client)


async def app_ready(client) -> bool:
    """Whether the test app behind an aiohttp test client answers /readyz ready."""
    return (await client.get("/readyz")).status == 200


class JsonErrorServer(TestServer):
    """The test server with `serve`'s runner: aiohttp's own protocol refusals in JSON too."""

    async def _make_runner(self, **kwargs):
        return AppRunner(self.app, **kwargs)


@dataclass
class DemoBot:
    url: str  # base URL, e.g. http://127.0.0.1:PORT
    state_dir: Path
    database: str  # the SQLite file's path or the PostgreSQL URL
    admin_token: str
    allowed_origin: str  # http://127.0.0.1:<free port> for a test host page the tests serve themselves
    log_path: Path
    clean_state: Path | None = None  # sqlite_demo_bot: a copy of its state taken when it became ready

    def chat(self, message: str, convo: dict | None = None, **extra) -> dict:
        """POST /api/chat; continues `convo` (a previous reply) when given."""
        body = {"message": message, **extra}
        if convo:
            body.update(conversation_id=convo["conversation_id"], token=convo["token"])
        return self.request("POST", "/api/chat", body)

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        return self.request(method, path, body, {"Authorization": f"Bearer {self.admin_token}"})

    def rows(self, sql: str, args: list | tuple = ()) -> list[tuple]:
        return query(self.database, sql, args)


def query(database: str, sql: str, args: list | tuple = ()) -> list[tuple]:
    """A query on a bot's database, either engine (the stores' own interface: `?` placeholders)."""
    from core.engine import open_database

    db = open_database(database)
    try:
        return [tuple(row) for row in db.execute(sql, list(args)).fetchall()]
    finally:
        db.close()


def copy_state(source: Path, state: Path) -> None:
    """Models and index as files; the database through SQLite's backup (consistent even if in use)."""
    for name in ("models", "index"):
        if (source / name).is_dir():
            shutil.copytree(source / name, state / name, dirs_exist_ok=True)
    with sqlite3.connect(source / "supportbot.db") as src, sqlite3.connect(state / "supportbot.db") as dst:
        src.backup(dst)


def chat_turns_per_worker(state: Path) -> dict[int, float]:
    """Worker pid -> the chat turns it has answered, from its own prometheus_client multiprocess file
    (state/metrics/<supervisor pid>/counter_<worker pid>.db, removed when the server stops)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = {}
    for file in sorted((state / "metrics").glob("*/counter_*.db")):
        with tempfile.TemporaryDirectory() as alone:  # the collector reads a folder: one worker's file in it
            shutil.copy(file, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            pid = int(file.stem.split("_")[1])
            counts[pid] = sum(sample.value for metric in registry.collect() if metric.name == "supportbot_chat_turns"
                              for sample in metric.samples)
    return counts
