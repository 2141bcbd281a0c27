"""The retraining schedule: every `retrain.interval` hours, when at least `retrain.min_new_examples` labelled
examples arrived since the serving model was trained, start `run_bot.py retrain` as its own process — never
in the web worker. The retrain lock keeps two runs from overlapping, whoever started them; the model slot's
watch (or /admin/reload) picks up a version the gate promoted, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

from bot.folder.bot_folder import BotFolder

log = logging.getLogger("supportbot.schedule")
RUN_BOT = Path(__file__).resolve().parents[1] / "run_bot.py"


def retrain_command(folder: BotFolder, trigger: str) -> list[str]:
    command = [sys.executable, str(RUN_BOT), "retrain", "--bot", str(folder.path), "--quiet", "--trigger", trigger]
    for override in folder.overrides:
        command += ["--set", override]
    return command


def new_examples(folder: BotFolder) -> int:
    """Labelled, trainable examples the serving model has not seen (reads the database: call in a thread)."""
    from bot.database import open_bot_database
    from training.registry import ModelRegistry
    from training.retrain import collect_examples
    from training.store import ExampleStore

    s = folder.settings
    db = open_bot_database(s)
    try:
        serving = ModelRegistry(s.models_path).current_path()
        return len(collect_examples(ExampleStore(db).examples(), s.train, serving, s.retrain).new)
    finally:
        db.close()


class Schedule:
    """Starts retrain processes: on the interval when there is enough new data, or when an admin asks."""

    def __init__(self, folder: BotFolder, command: list[str] | None = None):
        self.folder = folder
        self.command = command  # a test's stand-in for run_bot.py retrain
        self.process: asyncio.subprocess.Process | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.last_check: dict[str, Any] = {}

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def status(self) -> dict[str, Any]:
        s = self.folder.settings.retrain
        return {"interval_hours": s.interval, "min_new_examples": s.min_new_examples, "running": self.running,
                "pid": self.process.pid if self.running else None, "started": self.started,
                "finished": self.finished,
                "last_exit_code": None if self.process is None or self.running else self.process.returncode,
                "last_check": self.last_check}

    async def run(self) -> None:
        """The schedule itself: a task of the web app, cancelled when it stops."""
        while True:
            await asyncio.sleep(self.folder.settings.retrain.interval * 3600)
            try:
                await self.tick()
            except Exception as e:  # a failed check must not end the schedule
                log.error("retrain schedule check failed: %s", e)

    async def tick(self) -> bool:
        """Start a retrain if none is running and enough new examples arrived; True when one started."""
        if self.running:
            return False
        new = await asyncio.to_thread(new_examples, self.folder)
        wanted = self.folder.settings.retrain.min_new_examples
        self.last_check = {"at": time.time(), "new_examples": new}
        if new < wanted:
            log.info("scheduled retrain skipped: %d new examples (needs %d)", new, wanted)
            return False
        await self.start("schedule")
        return True

    async def start(self, trigger: str) -> int:
        """Start a retrain process now; its output goes to retrain.log in the state folder."""
        if self.running:
            raise RuntimeError(f"a retrain is already running (pid {self.process.pid})")
        state = self.folder.settings.state_path
        state.mkdir(parents=True, exist_ok=True)
        with open(state / "retrain.log", "ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *(self.command or retrain_command(self.folder, trigger)), stdout=out, stderr=out,
                stdin=asyncio.subprocess.DEVNULL)
        self.started, self.finished = time.time(), None
        log.info("retrain started (%s, pid %d)", trigger, self.process.pid)
        asyncio.get_running_loop().create_task(self._reap())
        return self.process.pid

    async def _reap(self) -> None:
        """Wait for the process, stopping it after `retrain.timeout` (the lock's pid check frees its lock)."""
        try:
            code = await asyncio.wait_for(self.process.wait(), self.folder.settings.retrain.timeout)
        except asyncio.TimeoutError:
            log.error("retrain process %d ran past retrain.timeout, stopped", self.process.pid)
            self.process.kill()
            code = await self.process.wait()
        self.finished = time.time()
        log.info("retrain process %d ended with exit code %d (0 promoted, 3 refused by the gate)",
                 self.process.pid, code)
