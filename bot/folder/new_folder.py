"""New bot folders: written in a scratch folder beside the target, checked to load, then renamed into place, so a
failed start leaves nothing behind. Started from a transcript file (`import --into`) or a Rasa project
(bot.folder.rasa_migration)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from bot.folder import intents_file
from bot.folder.bot_folder import BotFolder

TRANSCRIPT_HEADER = """\
Intents of {name}, started from {transcript}.
`run_bot.py intents accept` adds the intents proposed from the transcripts here; give each an
`answer:` (and drop `route: knowledge`) or add help articles to knowledge/ for them."""


def write_folder(into: Path, write: Callable[[Path], None]) -> None:
    """Run `write(staging)` in a scratch folder beside `into`, check the result loads, then rename it to `into`;
    refuses to touch an existing non-empty folder."""
    into = Path(into)
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise ValueError(f"{into} already exists and is not empty: give a new folder for the bot")
    into.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{into.name}-", dir=into.parent))
    try:
        write(staging)
        BotFolder.load(staging)  # what we wrote must load
        if into.exists():
            into.rmdir()
        os.replace(staging, into)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def from_transcript(into: Path, transcript: Path, overrides: Sequence[str] = ()) -> BotFolder:
    """A new bot folder (bot.toml, an intents.yaml with no intents yet, knowledge/, transcripts/) holding a copy of
    `transcript`."""
    into, transcript = Path(into), Path(transcript)
    if not transcript.is_file():
        raise FileNotFoundError(f"{transcript}: no such transcript file")

    def write(staging: Path) -> None:
        (staging / "bot.toml").write_text(
            f"# supportbot settings. Every setting and its default: python run_bot.py settings --bot {into}\n"
            f"name = {json.dumps(into.name)}\n", encoding="utf-8")
        intents_file.create(staging / "intents.yaml", {}, {},
                            TRANSCRIPT_HEADER.format(name=into.name, transcript=transcript.name))
        (staging / "knowledge").mkdir()
        (staging / "transcripts").mkdir()
        shutil.copy2(transcript, staging / "transcripts" / transcript.name)

    write_folder(into, write)
    return BotFolder.load(into, overrides)
