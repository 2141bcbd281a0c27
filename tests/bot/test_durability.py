"""A turn is committed before its answer is sent: it survives killing the server right after."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from core.sqlite import connect

SCRIPT = Path(__file__).with_name("runtime_doubles.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_turn_survives_sigkill_right_after_the_response(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[2])}
    server = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path), str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.1)
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
