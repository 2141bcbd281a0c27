"""A turn is committed before its answer is sent: it survives killing the server right after."""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from core.sqlite import connect
from tests.support.ports import free_port
from tests.support.servers import start, wait_until_ready

pytestmark = pytest.mark.integration  # the server runs in a process of its own, killed with SIGKILL
SCRIPT = Path(__file__).with_name("runtime_doubles.py")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_turn_survives_sigkill_right_after_the_response(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[2])}
    server = start([sys.executable, str(SCRIPT), str(tmp_path), str(port)], tmp_path / "server.log", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, server, tmp_path / "server.log", 60)
        first = post(base + "/api/chat", {"message": "Where is my order AB12345?"})
        last = post(base + "/api/chat", {"message": "hello", "conversation_id": first["conversation_id"],
                                         "token": first["token"]})
        server.send_signal(signal.SIGKILL)
    finally:
        server.kill()
        server.wait()
    db = connect(tmp_path / "supportbot.db")
    rows = db.execute("select id, answer, decision from turns where conversation_id = ? order by id",
                      [first["conversation_id"]]).fetchall()
    assert [r[0] for r in rows] == [first["turn_id"], last["turn_id"]]
    assert rows[-1][1] == last["answer"] and json.loads(rows[-1][2])["route"] == "smalltalk"
