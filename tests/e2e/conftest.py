"""The `demo_bot` session fixture: a real `run_bot.py demo` server of the demo store bot.

Trained with the real packaged MiniLM and its knowledge base ingested, in a temporary state folder;
started once per test session, stopped at the end. Set SUPPORTBOT_E2E_PREPARED to the state folder of
an earlier `run_bot.py demo` to start from a copy of it (no training when the intents are unchanged).
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
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from servers import ready as _ready, stop, wait_until_ready  # noqa: F401 (_ready: used by test_review_browser)

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 1800  # training the demo model on a busy 2-core machine
PREPARED = "SUPPORTBOT_E2E_PREPARED"


@dataclass
class DemoBot:
    url: str  # base URL, e.g. http://127.0.0.1:PORT
    state_dir: Path
    db_path: Path
    admin_token: str
    allowed_origin: str  # http://127.0.0.1:<free port> for a test host page the tests serve themselves
    log_path: Path

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


@pytest.fixture(scope="session")
def demo_bot(tmp_path_factory) -> DemoBot:
    state = tmp_path_factory.mktemp("demo-bot")
    port, origin = free_port(), f"http://127.0.0.1:{free_port()}"
    bot = DemoBot(url=f"http://127.0.0.1:{port}", state_dir=state, db_path=state / "supportbot.db",
                  admin_token=secrets.token_urlsafe(16), allowed_origin=origin, log_path=state / "server.log")
    if os.environ.get(PREPARED):
        _copy_state(Path(os.environ[PREPARED]), state)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SUPPORTBOT_ADMIN_TOKEN": bot.admin_token, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, str(ROOT / "run_bot.py"), "demo", "--port", str(port),
        "--set", f'state_dir="{state}"', "--set", f'server.allowed_origins=["{origin}"]',
        # One fine-tuning run, not two: the small-data refit on all examples doubles the demo's training and is
        # measured in benchmarks/bench_intents.py, not here (tests/training/test_classifier.py covers it).
        "--set", "train.refit_below=0",
        # Tests chat faster than a person: keep the limiter on, with room for them.
        "--set", "server.rate_limit=200", "--set", "server.rate_burst=400",
        "--set", "server.new_conversation_rate=200", "--set", "server.new_conversation_burst=400",
        "--set", "server.handoff_rate=200", "--set", "server.handoff_burst=400",
    ]
    with open(bot.log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=state, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(bot.url, server, bot.log_path, READY_TIMEOUT_S)
        yield bot
    finally:
        stop(server)
