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
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until_ready(url: str, server: subprocess.Popen, log: Path, timeout_s: float) -> None:
    """Fails the test with the server's log when it exits or is not ready in time."""
    deadline = time.monotonic() + timeout_s
    while not ready(url):
        if server.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:]
            pytest.fail(f"the bot at {url} did not become ready (exit code {server.poll()}):\n{tail}")
        time.sleep(0.5)


def wait_for_workers(url: str, workers: int, server: subprocess.Popen, log: Path, timeout_s: float = 300) -> None:
    """With `--workers N`: until /readyz, each on a new connection (the kernel picks a worker), has come back
    ready from every worker; the test fails with the server's log otherwise."""
    if workers == 1:
        return
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < workers:
        if server.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:]
            pytest.fail(f"only workers {sorted(seen)} of {workers} at {url} became ready (exit code {server.poll()}):"
                        f"\n{tail}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                seen.add(json.load(response)["worker"])
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)


def stop(server: subprocess.Popen) -> None:
    """Ctrl-C, as a person would; killed if it has not stopped within 20 s."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
