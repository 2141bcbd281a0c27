"""Model versions on disk: each a folder written atomically; a pointer file names the serving one.

models/
  CURRENT            the serving version's name (replaced atomically)
  HISTORY            promoted versions, oldest first (rollback walks back through it)
  <version>/         weights, tokenizer, labels, calibration, metrics, settings, data hash
"""

from __future__ import annotations

import json

import os
import shutil
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

SCRATCH = ".tmp-"  # a version being written; renamed to its name when complete
OWNER = ".writer-pid"  # in a scratch folder: the process writing it


class ModelRegistry:
    def __init__(self, models_path: Path):
        self.root = Path(models_path)

    @contextmanager
    def new_version(self, data_hash: str) -> Iterator[Path]:
        """Yield a scratch folder; it becomes a version only if the block completes."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_scratch()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{data_hash[:8]}"
        while (self.root / name).exists():
            name = f"{stamp}-{data_hash[:8]}-{uuid.uuid4().hex[:4]}"
        scratch = self.root / f"{SCRATCH}{uuid.uuid4().hex}"
        scratch.mkdir()
        (scratch / OWNER).write_text(f"{os.getpid()}\n")
        try:
            yield scratch
            (scratch / "VERSION").write_text(name + "\n")
            (scratch / OWNER).unlink()
            os.rename(scratch, self.root / name)
            self.written = name  # names sort by time only to the second: the caller asks, it does not guess
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def clean_scratch(self) -> list[str]:
        """Remove scratch folders (and pointer temp files) that runs killed mid-write left behind: those whose
        writing process is gone. A run still writing keeps its own."""
        removed = []
        if not self.root.is_dir():
            return removed
        for p in self.root.iterdir():
            if p.name.startswith(SCRATCH) and p.is_dir() and not _alive(p / OWNER):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
            elif p.name.startswith((".CURRENT.", ".HISTORY.")) and p.is_file() and _older_than(p, 3600):
                p.unlink(missing_ok=True)
                removed.append(p.name)
        return removed

    def pointer_problem(self) -> str | None:
        """What is wrong with models/CURRENT, said plainly with the versions there are; None when it serves one."""
        pointer = self.root / "CURRENT"
        have = self.versions()
        listing = f"versions here: {', '.join(have)}" if have else "there are no versions yet: run train first"
        if not pointer.is_file():
            return f"no model is promoted: {pointer} does not exist ({listing})"
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            return f"{pointer} cannot be read ({e}); {listing}"
        if not name:
            return f"{pointer} is empty; it should name one model version ({listing})"
        if not (self.root / name / "VERSION").is_file():
            what = "an unfinished or foreign folder" if (self.root / name).is_dir() else "no version here"
            return f"{pointer} names {name!r}, which is {what} ({listing}); promote or roll back to fix it"
        return None

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / "VERSION").is_file())

    def latest(self) -> str | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def current_version(self) -> str | None:
        pointer = self.root / "CURRENT"
        if not pointer.is_file():
            return None
        name = pointer.read_text().strip()
        return name if (self.root / name / "VERSION").is_file() else None

    def current_path(self) -> Path | None:
        name = self.current_version()
        return self.root / name if name else None

    def path(self, version: str) -> Path:
        if version not in self.versions():
            raise FileNotFoundError(f"no model version {version!r} in {self.root} (have: {', '.join(self.versions()) or 'none'})")
        return self.root / version

    def record(self, version: str, name: str) -> dict | None:
        """One of a version's JSON records (`metrics`, `data`, `calibration`, `gate`), or None when it has none."""
        file = self.path(version) / f"{name}.json"
        return json.loads(file.read_text()) if file.is_file() else None

    def promote(self, version: str) -> None:
        """Point serving at `version`: write the new pointer, then rename it over the old one."""
        self.path(version)
        _atomic_write(self.root / "CURRENT", version + "\n")
        history = self._history()
        if not history or history[-1] != version:
            _atomic_write(self.root / "HISTORY", "".join(f"{v}\n" for v in [*history, version]))

    def rollback(self) -> str:
        """Serve the version promoted before the current one."""
        current = self.current_version()
        earlier = [v for v in self._history() if v != current and v in self.versions()]
        if not earlier:
            raise ValueError("no earlier model version to roll back to")
        previous = earlier[-1]
        _atomic_write(self.root / "CURRENT", previous + "\n")
        _atomic_write(self.root / "HISTORY", "".join(f"{v}\n" for v in self._history() if v != current))
        return previous

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` versions; the serving one always stays."""
        current = self.current_version()
        doomed = [v for v in self.versions()[:-keep] if v != current]
        for v in doomed:
            shutil.rmtree(self.root / v)
        return doomed

    def _history(self) -> list[str]:
        file = self.root / "HISTORY"
        return file.read_text().split() if file.is_file() else []


def _alive(owner_file: Path) -> bool:
    """Is the process that wrote this scratch folder still running? No owner file: a pre-owner-file run, stale."""
    try:
        pid = int(owner_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    with open(tmp) as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
