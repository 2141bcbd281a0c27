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
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.bots import ROOT, DemoBot, chat_turns_per_worker, copy_state
from tests.support.ports import free_port
from tests.support.servers import serving
from tests.support.waiting import wait_until

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
    with serving(command, bot.url, bot.log_path, READY_TIMEOUT_S, workers, cwd=state, env=env):
        yield bot


@pytest.fixture(scope="session")
def sqlite_demo_bot(tmp_path_factory) -> DemoBot:
    """The demo on its SQLite file, one process: exactly `run_bot.py demo` as a fresh clone runs it."""
    state = tmp_path_factory.mktemp("demo-bot")
    if os.environ.get(PREPARED):
        copy_state(Path(os.environ[PREPARED]), state)
    with _served(state) as bot:
        # before any test has chatted: what the PostgreSQL demo starts from, so no conversation leaks into it
        bot.clean_state = tmp_path_factory.mktemp("demo-bot-ready")
        copy_state(state, bot.clean_state)
        yield bot


@pytest.fixture(scope="session")
def postgres_demo_bot(sqlite_demo_bot, postgres_server_url, tmp_path_factory) -> DemoBot:
    """The same demo with `--workers 2` on PostgreSQL, moved there from the SQLite demo's ready state."""
    from tests.support.postgres import new_database

    url = new_database(postgres_server_url, f"demo_{uuid.uuid4().hex[:12]}")
    state = tmp_path_factory.mktemp("demo-bot-pg")
    copy_state(sqlite_demo_bot.clean_state, state)
    copied = subprocess.run([sys.executable, str(ROOT / "run_bot.py"), "db", "copy", "--to", url,
                             "--set", f"state_dir={json.dumps(str(state))}", *SETTINGS],
                            cwd=state, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert copied.returncode == 0, copied.stdout + copied.stderr
    (state / "supportbot.db").rename(state / "copied-to-postgres.db")  # the bot can only be using PostgreSQL now
    versions = sorted(p.name for p in (state / "models").iterdir())
    with _served(state, database_url=url, workers=2) as bot:
        version = bot.request("GET", "/readyz")["model_version"]
        assert version == sqlite_demo_bot.request("GET", "/readyz")["model_version"], "the PostgreSQL demo retrained"
        assert sorted(p.name for p in (state / "models").iterdir()) == versions, "the PostgreSQL demo retrained"
        yield bot

        def each_worker_answered() -> bool:  # the tests' turns may all have gone to one (a single test, say)
            bot.chat("hello")  # on a new connection: either worker
            return len(turns := chat_turns_per_worker(state)) == 2 and all(turns.values())

        wait_until(each_worker_answered, 60, "a chat turn answered by each of the two workers",
                   details=lambda: f"turns answered per worker pid: {chat_turns_per_worker(state)}")
    assert not (state / "supportbot.db").exists(), "a part of the PostgreSQL demo wrote an SQLite database"


ENGINES = {"sqlite": "sqlite_demo_bot", "postgres-2workers": "postgres_demo_bot"}  # test id -> fixture


@pytest.fixture(scope="session", params=list(ENGINES))
def demo_bot(request) -> DemoBot:
    """The demo bot on each engine: a test that takes it runs on SQLite, then on PostgreSQL with two workers."""
    return request.getfixturevalue(ENGINES[request.param])
