"""Bot servers the end-to-end tests start as processes: wait until ready, stop cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def ready(url: str) -> bool:
    return _readyz(url) is not None


def _readyz(url: str) -> dict | None:
    """The body of a ready answer of /readyz (on a new connection, so the kernel picks one of the workers)."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return json.load(response) if response.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_until_ready(url: str, server: subprocess.Popen, log: Path, timeout_s: float, workers: int = 1) -> None:
    """Until every one of the server's `workers` has answered /readyz ready; fails the test with the server's
    log when it exits or is not ready in time."""
    deadline = time.monotonic() + timeout_s
    seen: set[int] = set()
    while len(seen) < workers:
        if server.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:]
            pytest.fail(f"the bot at {url} did not become ready on {workers - len(seen)} of its {workers} worker "
                        f"processes (exit code {server.poll()}):\n{tail}")
        body = _readyz(url)
        if body:
            seen.add(body.get("worker", 0))
        time.sleep(0.2 if body else 0.5)


def stop(server: subprocess.Popen) -> None:
    """Ctrl-C, as a person would; killed if it has not stopped within 20 s."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
