"""Model versions on disk: each a folder written atomically; a pointer file names the serving one.

models/
  CURRENT            the serving version's name (replaced atomically)
  HISTORY            promoted versions, oldest first (rollback walks back through it)
  <version>/         weights, tokenizer, labels, calibration, metrics, settings, data hash
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator


class ModelRegistry:
    def __init__(self, models_path: Path):
        self.root = Path(models_path)

    @contextmanager
    def new_version(self, data_hash: str) -> Iterator[Path]:
        """Yield a scratch folder; it becomes a version only if the block completes."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        name = f"{stamp}-{data_hash[:8]}"
        while (self.root / name).exists():
            name = f"{stamp}-{data_hash[:8]}-{uuid.uuid4().hex[:4]}"
        scratch = self.root / f".tmp-{uuid.uuid4().hex}"
        scratch.mkdir()
        try:
            yield scratch
            (scratch / "VERSION").write_text(name + "\n")
            os.rename(scratch, self.root / name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

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


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    with open(tmp) as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
