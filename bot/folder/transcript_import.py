"""A bot's past transcripts imported into its example store (`run_bot.py import`): the files of its transcripts/
folder or one named file, labelled against the bot's own intents and answers, one embedder shared by every file
and built only when a file needs it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from bot.folder.bot_folder import BotFolder
from training.importer import ImportReport, Progress


def transcript_files(folder: BotFolder) -> list[Path]:
    """The files of the bot's transcripts/ folder (hidden ones left out), each imported on its own."""
    paths = sorted(p for p in folder.transcripts_dir.glob("*") if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise FileNotFoundError(f"no transcript files in {folder.transcripts_dir}: give a PATH")
    return paths


class TranscriptImport:
    """Imports into one bot's database; a dry run of a bot that has no database yet uses a scratch one in memory,
    so it creates nothing."""

    def __init__(self, folder: BotFolder, embedder: Callable[[], object], dry_run: bool = False):
        from bot.database import open_bot_database
        from core.sqlite import connect
        from training.store import ExampleStore

        settings = folder.settings
        self.folder, self.dry_run, self.embedder = folder, dry_run, _Once(embedder)
        fresh = dry_run and not settings.on_postgres and not settings.db_path.exists()
        self.db = connect(None) if fresh else open_bot_database(settings)
        self.store = ExampleStore(self.db)

    def run(self, path: Path, fmt: str = "auto", columns: tuple[str, ...] = (), cluster: bool = True,
            progress: Progress | None = None) -> ImportReport:
        from training.importer import import_transcripts

        folder, settings = self.folder, self.folder.settings
        return import_transcripts(
            path, fmt, self.store, settings=settings.transcripts, privacy=settings.privacy,
            answers={name: i.answer for name, i in folder.intents.items() if i.answer},
            intents=set(folder.intents), embedder=self.embedder, columns=columns,
            root=folder.path, dry_run=self.dry_run, cluster=cluster, progress=progress,
        )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "TranscriptImport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Once:
    """A factory that builds its object on the first call only (the embedder, shared by several imports)."""

    def __init__(self, make):
        self.make, self.made = make, None

    def __call__(self):
        if self.made is None:
            self.made = self.make()
        return self.made
