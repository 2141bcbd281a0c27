"""Bot servers the tests start as processes: start one with its output in a log file, wait until every worker
answers /readyz ready, stop it as a person would (Ctrl-C). `serving` does all three around a block."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.support.waiting import wait_until


def readyz(url: str) -> dict | None:
    """The body of a ready answer of /readyz, else None (on a new connection, so the kernel picks one of the
    workers)."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return json.load(response) if response.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def ready(url: str) -> bool:
    return readyz(url) is not None


def log_tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else f"(no log at {log})"


def start(command: list[str], log: Path, **popen) -> subprocess.Popen:
    """The process of `command` (a server, or another long run a test watches), its stdout and stderr in `log`;
    `popen`: Popen's other arguments (env, cwd)."""
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)


def wait_until_ready(url: str, server: subprocess.Popen, log: Path, timeout_s: float, workers: int = 1) -> None:
    """Until every one of the server's `workers` has answered /readyz ready; fails the test with the server's log
    as soon as it exits, or when it is not ready in time."""
    seen: set[int] = set()

    def all_ready() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"the bot at {url} exited (code {server.returncode}) before it was ready:\n"
                                 f"{log_tail(log)}")
        body = readyz(url)
        if body:
            seen.add(body.get("worker", 0))
        return len(seen) >= workers

    wait_until(all_ready, timeout_s, f"the bot at {url} to be ready on each of its {workers} worker processes",
               interval_s=0.2, details=lambda: f"workers seen ready: {sorted(seen)}; its log:\n{log_tail(log)}")


def stop(server: subprocess.Popen, timeout_s: float = 20) -> int:
    """Ctrl-C, as a person would; killed if it has not stopped within `timeout_s`. Returns its exit code."""
    server.send_signal(signal.SIGINT)
    try:
        return server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


@contextmanager
def serving(command: list[str], url: str, log: Path, timeout_s: float, workers: int = 1,
            stop_timeout_s: float = 20, **popen) -> Iterator[subprocess.Popen]:
    """The server of `command` answering at `url` on all its `workers` until the block ends, then stopped."""
    server = start(command, log, **popen)
    try:
        wait_until_ready(url, server, log, timeout_s, workers)
        yield server
    finally:
        stop(server, stop_timeout_s)
