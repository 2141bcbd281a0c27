"""`serve --workers N`: N server processes listening on one port, started and kept running by this one.

Each worker is a whole server (its own model, index and database connection) whose socket is opened with
SO_REUSEPORT once it is loaded, so the kernel spreads connections over the workers that can answer. What must hold across them is kept where all of
them see it: a conversation's state in the database (a turn saved over a newer one is refused and answered
again, `bot.dialogue.conversations.ConversationMoved`), rate limits in a shared file (`bot.serving.limits`), the serving
model in the registry's pointer (every worker watches it), the knowledge index's generation in the database,
and the counters of `/metrics` in prometheus_client's multiprocess files. Jobs of which the bot needs one —
the retraining schedule, the drift watch, the first analytics fold — run in worker 0 only.

The supervisor restarts a worker that exits (a crash, `kill -9`, memory) with the same number, forwards
Ctrl-C and SIGTERM to all of them, and gives up when a worker keeps dying at start.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("supportbot.workers")
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for it
FAST_FAILURES = 5  # a worker dying this many times in a row within STARTUP_S of its start: give up
STARTUP_S = 30.0
STOP_S = 20.0  # after Ctrl-C, seconds the workers get to finish before they are killed


def check_port_free(host: str, port: int) -> None:
    """Fail like a single server would when the port is taken: SO_REUSEPORT alone would share it silently."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's own socket: TIME_WAIT is no owner
        try:
            s.bind((host, port))
        except OSError as e:
            raise OSError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def prepare_metrics_dir(state: Path) -> Path:
    """A fresh folder for this supervisor's workers' metric files (another server on the same state folder, as
    during an upgrade, keeps its own; removed when this one stops)."""
    folder = state / "metrics" / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def supervise(n: int, target: Callable[[int], None], host: str, port: int, metrics_dir: Path) -> int:
    """Run `target(index)` in n processes until interrupted; restart any that exits on its own."""
    check_port_free(host, port)
    given = os.environ.get(METRICS_DIR_ENV)
    os.environ[METRICS_DIR_ENV] = str(metrics_dir)  # read by prometheus_client when a worker imports it
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter each: no torch threads or locks forked
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    workers: dict[int, tuple[multiprocessing.Process, float]] = {}
    failures = dict.fromkeys(range(n), 0)
    try:
        for i in range(n):
            workers[i] = _start(ctx, target, i)
        while not stopping:
            time.sleep(0.2)
            for i, (process, started) in list(workers.items()):
                if process.is_alive() or stopping:
                    continue
                _metrics_dead(process.pid)
                failures[i] = failures[i] + 1 if time.monotonic() - started < STARTUP_S else 1
                if failures[i] >= FAST_FAILURES:
                    log.error("worker %d exited %d times right after starting (last exit code %s); stopping",
                              i, failures[i], process.exitcode)
                    return 1
                log.warning("worker %d (pid %d) exited with code %s; starting it again", i, process.pid,
                            process.exitcode)
                workers[i] = _start(ctx, target, i)
        log.info("stopping %d workers", len(workers))
        return 0
    finally:
        for process, _ in workers.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_S
        for process, _ in workers.values():
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if given is None:
            os.environ.pop(METRICS_DIR_ENV, None)
        else:
            os.environ[METRICS_DIR_ENV] = given


def _start(ctx, target: Callable[[int], None], index: int) -> tuple[multiprocessing.Process, float]:
    process = ctx.Process(target=target, args=(index,), name=f"supportbot-worker-{index}")
    process.start()
    log.info("worker %d started (pid %d)", index, process.pid)
    return process, time.monotonic()


def _metrics_dead(pid: int | None) -> None:
    """Its gauges no longer count; its counters do (Prometheus expects counters never to go back)."""
    if pid is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
