"""Retraining, one owner: the schedule, the trigger, the run, its lock and its log.

Everyone who retrains comes through here. The server's `Retraining` starts a retrain process on its schedule
(every `retrain.interval` hours, when at least `retrain.min_new_examples` labelled examples arrived since the
serving model was trained), on the drift alert, and when `POST /admin/retrain` or the review page's button asks
(`trigger`); `status` is what they all show. The process is `python -m bot.retraining` (`retrain_command`),
never the web worker, and it runs `run`, as `run_bot.py retrain` does in its own process. training.retrain
takes the lock (two runs never overlap, whoever started them) and writes the run log; the model slot's watch
(or /admin/reload) picks up a version the gate promoted, without a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from bot.folder.bot_folder import BotFolder

log = logging.getLogger("supportbot.schedule")
ReadRuns = Callable[[int], Awaitable[list[dict[str, Any]]]]  # the newest runs of the log, on the database thread


class AlreadyRunning(RuntimeError):
    """A retrain is running (this server's process, or one the run log shows); `pid` is its process."""

    def __init__(self, pid: int | None):
        super().__init__(f"a retrain is already running (pid {pid})")
        self.pid = pid


def retrain_command(folder: BotFolder, trigger: str) -> list[str]:
    """The retrain process: the installed package's module entry point (never a file path), on the same bot
    folder and overrides."""
    command = [sys.executable, "-m", "bot.retraining", "--bot", str(folder.path), "--quiet", "--trigger", trigger]
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


class Retraining:
    """A server's retrains: started on the interval when there is enough new data, on a trigger, one at a time."""

    def __init__(self, folder: BotFolder, read_runs: ReadRuns | None = None, command: list[str] | None = None):
        self.folder = folder
        self.read_runs = read_runs  # None: only this server's own process counts (no run log to read)
        self.command = command  # a test's stand-in for the retrain process
        self.process: asyncio.subprocess.Process | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.last_check: dict[str, Any] = {}

    @property
    def running(self) -> bool:
        """This server's retrain process is running."""
        return self.process is not None and self.process.returncode is None

    async def status(self, runs: int = 1) -> dict[str, Any]:
        """The schedule, this server's process (running or its exit code) and the newest `runs` runs of the log;
        a run the log shows running (another worker's, or a `run_bot.py retrain`) counts as running here too."""
        s = self.folder.settings.retrain
        status = {"interval_hours": s.interval, "min_new_examples": s.min_new_examples, "running": self.running,
                  "pid": self.process.pid if self.running else None, "started": self.started,
                  "finished": self.finished,
                  "last_exit_code": None if self.process is None or self.running else self.process.returncode,
                  "last_check": self.last_check}
        log_runs = await self.read_runs(runs) if self.read_runs is not None else []
        status.update(runs=log_runs, last_run=log_runs[0] if log_runs else None)
        if not status["running"] and log_runs and log_runs[0]["outcome"] == "running":
            status.update(running=True, pid=log_runs[0]["pid"], started=log_runs[0]["started"])
        if log_runs and log_runs[0]["outcome"] == "held":
            status["held"] = await asyncio.to_thread(self._held, log_runs[0])
        return status

    def _held(self, run: dict[str, Any]) -> dict[str, Any]:
        """The newest run's held candidate: what a person approves, with the answers it would change."""
        from training.registry import ModelRegistry

        gate = ModelRegistry(self.folder.settings.models_path).record(run["candidate"], "gate") or {}
        return {"run": run["id"], "candidate": run["candidate"], "compared": gate.get("compared", ""),
                "reasons": gate.get("reasons", []), "changes": gate.get("unconfirmed", [])}

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
        if (await self.status())["running"]:
            return False
        new = await asyncio.to_thread(new_examples, self.folder)
        wanted = self.folder.settings.retrain.min_new_examples
        self.last_check = {"at": time.time(), "new_examples": new}
        if new < wanted:
            log.info("scheduled retrain skipped: %d new examples (needs %d)", new, wanted)
            return False
        await self.trigger("schedule")
        return True

    async def trigger(self, trigger: str) -> int:
        """Start a retrain process now (`trigger` says who asked: schedule, drift, admin, review); its pid.
        Raises AlreadyRunning while one runs."""
        status = await self.status()
        if status["running"]:
            raise AlreadyRunning(status["pid"])
        return await self._start(trigger)

    async def _start(self, trigger: str) -> int:
        """Start the retrain process; its output goes to retrain.log in the state folder."""
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
        log.info("retrain process %d ended: %s (exit code %d)", self.process.pid, ending(code), code)


def run(folder: BotFolder, trigger: str = "cli", progress: bool = True, say: Callable[[str], Any] = print):
    """One gated retrain in this process: all examples (intents.yaml's synced into the store first) plus the
    new ones, the candidate gated against the serving model and promoted only if it is not worse; the customer
    messages it would decide differently flagged for review. Says what happened; returns training.retrain's
    Outcome."""
    from bot.database import open_bot_database
    from bot.dialogue.conversations import ConversationLog
    from bot.training_run import train_settings
    from training.finetune import choose_device
    from training.redact import Redactor
    from training.registry import ModelRegistry
    from training.retrain import retrain
    from training.runs import RunLog
    from training.store import ExampleStore

    settings = folder.settings
    choose_device(settings.train.device, settings.train.processes)  # too few devices: refused before anything
    db = open_bot_database(settings)
    try:
        store = ExampleStore(db)
        store.add(folder.seed_examples())
        if not store.examples(split="test"):  # the first gate: carve its golden set now, as `models golden` does
            moved = _carve(store, folder)
            say(f"golden set: {moved} examples set aside (retrain.golden_share {settings.retrain.golden_share}), never "
                "trained on from now, the gate's yardstick")
        conversations = ConversationLog(db, Redactor(settings.privacy))
        outcome = retrain(
            store.examples(), train_settings(folder, db, say), settings.retrain, ModelRegistry(settings.models_path),
            RunLog(db), settings.state_path / "retrain.lock",
            shadow_messages=conversations.recent_messages(settings.retrain.shadow_turns), trigger=trigger,
            progress=progress,
        )
        c = outcome.comparison
        shadow = c.get("shadow", [])
        flagged = conversations.flag_turns(
            "shadow", {s["turn_id"]: f"{outcome.candidate}: {s['serving']} -> {s['candidate']}" for s in shadow})
    finally:
        db.close()
    counts = c["counts"]
    say(f"candidate {outcome.candidate} ({outcome.start} start; {counts['train']} examples, {counts['new']} new"
        + (f", new intents: {', '.join(counts['new_intents'])}" if counts["new_intents"] else "") + ")")
    verdict = "promoted" if outcome.promoted else "held" if outcome.held else "refused"
    say(f"{verdict}: {c['compared']}; " + "; ".join(c["reasons"]))
    if outcome.held:
        say(f"approve it (or reject it) in the review workspace, or: run_bot.py models approve {outcome.run_id} "
            f"--bot {folder.path}")
    say(f"shadow: {len(shadow)} of the last {settings.retrain.shadow_turns} customer messages would be decided "
        f"differently; {flagged} flagged for review")
    say(f"details: run_bot.py models diff {c.get('parent') or outcome.candidate} {outcome.candidate} --bot {folder.path}")
    return outcome


def carve_golden(folder: BotFolder) -> tuple[int, int]:
    """Set aside a stratified share (`retrain.golden_share`) of the labelled examples as the golden set (split
    test): never trained on, the gate's yardstick. Returns how many moved and the golden set's size."""
    from bot.database import open_bot_database
    from training.store import ExampleStore

    db = open_bot_database(folder.settings)
    try:
        store = ExampleStore(db)
        store.add(folder.seed_examples())
        moved = _carve(store, folder)
        return moved, len(store.examples(split="test"))
    finally:
        db.close()


def _carve(store, folder: BotFolder) -> int:
    return store.carve_test_split(folder.settings.retrain.golden_share, folder.settings.train.seed)


def compare_versions(folder: BotFolder, a: str, b: str) -> tuple[dict, dict]:
    """Version `b` judged against `a` by the gate on the gate's data as it is now (`run_bot.py models diff`):
    the gate's comparison and the counts of the data it compared on."""
    from bot.database import open_bot_database
    from training import gate
    from training.classifier import IntentClassifier
    from training.registry import ModelRegistry
    from training.retrain import collect_examples
    from training.store import ExampleStore

    s = folder.settings
    registry = ModelRegistry(s.models_path)
    serving, candidate = (IntentClassifier.load(registry.path(v)) for v in (a, b))
    data = collect_examples(ExampleStore(open_bot_database(s)).examples(), s.train, registry.path(a), s.retrain)
    if not data.gate:
        raise ValueError("no gate data to compare on: carve a golden set with `run_bot.py models golden`")
    return gate.compare(candidate, serving, data.gate, s.train.oos_label, s.retrain), data.counts


PROMOTED, REFUSED, HELD = 0, 3, 4  # the retrain process's exit codes; anything else: it failed (see its log)


def exit_code(outcome) -> int:
    """The retrain process's exit code for training.retrain's Outcome."""
    return PROMOTED if outcome.promoted else HELD if outcome.held else REFUSED


def ending(code: int) -> str:
    """A retrain process's exit code in words, for logs and pages."""
    return {PROMOTED: "the candidate was promoted and serves now",
            REFUSED: "the gate refused the candidate, the serving model stays",
            HELD: "the candidate waits for approval in the review workspace, the serving model stays",
            }.get(code, "it failed (see retrain.log)")


def settle_held(folder: BotFolder, run_id: int, approve: bool, who: str) -> str:
    """A person's decision on a held candidate (gate.hold_unconfirmed): approved, it is promoted (a running
    server's model watch serves it); rejected, the serving model stays. Refused (ValueError) when the run is not
    held or the model serving now is not the one the candidate was compared with. Returns what happened."""
    from bot.database import open_bot_database
    from training.registry import ModelRegistry
    from training.runs import RunLog

    db = open_bot_database(folder.settings)
    try:
        runs = RunLog(db)
        run = runs.run(run_id)
        if run is None or run["outcome"] != "held":
            raise ValueError(f"retrain run {run_id} is not waiting for approval"
                             + (f" (it was {run['outcome']})" if run else ""))
        registry = ModelRegistry(folder.settings.models_path)
        if approve:
            gate = registry.record(run["candidate"], "gate") or {}
            if gate.get("parent") != registry.current_version():
                raise ValueError(f"the model serving now is not the one candidate {run['candidate']} was compared "
                                 "with: retrain again")
            registry.promote(run["candidate"])
        runs.settle(run_id, "approved" if approve else "rejected", f"{'approved' if approve else 'rejected'} by {who}")
    finally:
        db.close()
    return (f"candidate {run['candidate']} approved by {who}: it serves now" if approve else
            f"candidate {run['candidate']} rejected by {who}: the serving model stays")


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.retraining --bot FOLDER [--set S.F=V ...] [--trigger WHO] [--quiet]`: the process the
    server starts (people use `run_bot.py retrain`, which runs the same `run`)."""
    parser = argparse.ArgumentParser(prog="python -m bot.retraining", description=main.__doc__)
    parser.add_argument("--bot", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--trigger", default="schedule")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        outcome = run(BotFolder.load(args.bot, args.overrides), args.trigger, progress=not args.quiet,
                      say=lambda line: print(line, flush=True))
    except (ValueError, FileNotFoundError) as e:  # as run_bot.py says them
        print(f"error: {e}", file=sys.stderr)
        return 2
    return exit_code(outcome)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
