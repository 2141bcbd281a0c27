"""The `demo_bot` session fixture: a real `run_bot.py demo` server of the demo store bot, on each engine.

`sqlite_demo_bot`: trained with the real packaged MiniLM and its knowledge base ingested, in a temporary state
folder, on today's SQLite file, one process. `postgres_demo_bot`: the same bot served by `run_bot.py demo
--workers 2` with `database.url` on a throwaway PostgreSQL server (tests/conftest.py), started from the SQLite
bot's state as it was when it became ready (models and index copied, the database moved by `run_bot.py db copy
--to URL`, as a user would), so it does not train again. `demo_bot` is either, by parameter (`sqlite`,
`postgres-2workers`): a test that takes it runs on both. Each is started once per test session, stopped at the end.
Set SUPPORTBOT_E2E_PREPARED to the state folder of an earlier `run_bot.py demo` to start from a copy of it (no
training when the intents are unchanged).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import ready as _ready, stop, wait_until_ready  # noqa: F401 (_ready: used by test_review_browser)

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 1800  # training the demo model on a busy 2-core machine
PREPARED = "SUPPORTBOT_E2E_PREPARED"
SETTINGS = [  # the demo's settings in these tests, the same on both engines (the trained data's hash depends on them)
    # One fine-tuning run, not two: the small-data refit on all examples doubles the demo's training and is
    # measured in benchmarks/bench_intents.py, not here (tests/training/test_classifier.py covers it).
    "--set", "train.refit_below=0",
    # Tests chat faster than a person: keep the limiter on, with room for them.
    "--set", "server.rate_limit=200", "--set", "server.rate_burst=400",
    "--set", "server.new_conversation_rate=200", "--set", "server.new_conversation_burst=400",
    "--set", "server.handoff_rate=200", "--set", "server.handoff_burst=400",
]


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
    from core.engine import close, open_database

    db = open_database(database)
    try:
        return [tuple(row) for row in db.execute(sql, list(args)).fetchall()]
    finally:
        close(db)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_state(source: Path, state: Path) -> None:
    """Models and index as files; the database through SQLite's backup (consistent even if in use)."""
    for name in ("models", "index"):
        if (source / name).is_dir():
            shutil.copytree(source / name, state / name, dirs_exist_ok=True)
    with sqlite3.connect(source / "supportbot.db") as src, sqlite3.connect(state / "supportbot.db") as dst:
        src.backup(dst)


@contextmanager
def _served(state: Path, database_url: str = "", workers: int = 1):
    """`run_bot.py demo` on `state` until the block ends (ready on every worker)."""
    port, origin = free_port(), f"http://127.0.0.1:{free_port()}"
    bot = DemoBot(url=f"http://127.0.0.1:{port}", state_dir=state,
                  database=database_url or str(state / "supportbot.db"), admin_token=secrets.token_urlsafe(16),
                  allowed_origin=origin, log_path=state / "server.log")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SUPPORTBOT_ADMIN_TOKEN": bot.admin_token, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, str(ROOT / "run_bot.py"), "demo", "--port", str(port),
        "--set", f"state_dir={json.dumps(str(state))}", "--set", f'server.allowed_origins=["{origin}"]', *SETTINGS,
        *(["--workers", str(workers)] if workers > 1 else []),
        *(["--set", f"database.url={json.dumps(database_url)}"] if database_url else []),
    ]
    with open(bot.log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=state, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(bot.url, server, bot.log_path, READY_TIMEOUT_S, workers)
        yield bot
    finally:
        stop(server)


@pytest.fixture(scope="session")
def sqlite_demo_bot(tmp_path_factory) -> DemoBot:
    """The demo on its SQLite file, one process: exactly `run_bot.py demo` as a fresh clone runs it."""
    state = tmp_path_factory.mktemp("demo-bot")
    if os.environ.get(PREPARED):
        _copy_state(Path(os.environ[PREPARED]), state)
    with _served(state) as bot:
        # before any test has chatted: what the PostgreSQL demo starts from, so no conversation leaks into it
        bot.clean_state = tmp_path_factory.mktemp("demo-bot-ready")
        _copy_state(state, bot.clean_state)
        yield bot


@pytest.fixture(scope="session")
def postgres_demo_bot(sqlite_demo_bot, postgres_server_url, tmp_path_factory) -> DemoBot:
    """The same demo with `--workers 2` on PostgreSQL, moved there from the SQLite demo's ready state."""
    from tests.support.postgres import new_database

    url = new_database(postgres_server_url, f"demo_{uuid.uuid4().hex[:12]}")
    state = tmp_path_factory.mktemp("demo-bot-pg")
    _copy_state(sqlite_demo_bot.clean_state, state)
    copied = subprocess.run([sys.executable, str(ROOT / "run_bot.py"), "db", "copy", "--to", url,
                             "--set", f"state_dir={json.dumps(str(state))}", *SETTINGS],
                            cwd=state, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert copied.returncode == 0, copied.stdout + copied.stderr
    (state / "supportbot.db").rename(state / "copied-to-postgres.db")  # the bot can only be using PostgreSQL now
    versions = sorted(p.name for p in (state / "models").iterdir())
    with _served(state, database_url=url, workers=2) as bot:
        serving = bot.request("GET", "/readyz")["model_version"]
        assert serving == sqlite_demo_bot.request("GET", "/readyz")["model_version"], "the PostgreSQL demo retrained"
        assert sorted(p.name for p in (state / "models").iterdir()) == versions, "the PostgreSQL demo retrained"
        yield bot
        assert len(turns := chat_turns_per_worker(state)) == 2 and all(turns), f"turns answered per worker: {turns}"
    assert not (state / "supportbot.db").exists(), "a part of the PostgreSQL demo wrote an SQLite database"


def chat_turns_per_worker(state: Path) -> list[float]:
    """The chat turns each running worker process has answered, from its own prometheus_client multiprocess file
    (under state/metrics/, removed when the server stops)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = []
    for file in sorted((state / "metrics").glob("*/counter_*.db")):
        with tempfile.TemporaryDirectory() as alone:  # the collector reads a folder: one worker's file in it
            shutil.copy(file, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            counts.append(sum(sample.value for metric in registry.collect() if metric.name == "supportbot_chat_turns"
                              for sample in metric.samples))
    return counts


ENGINES = {"sqlite": "sqlite_demo_bot", "postgres-2workers": "postgres_demo_bot"}  # test id -> fixture


@pytest.fixture(scope="session", params=list(ENGINES))
def demo_bot(request) -> DemoBot:
    """The demo bot on each engine: a test that takes it runs on SQLite, then on PostgreSQL with two workers."""
    return request.getfixturevalue(ENGINES[request.param])
