"""Transcript formats: one reader module per format, each turning a file into `Dialog`s.

`read_dialogs(reading, fmt)` picks the reader; `detect_format(path)` guesses it from the file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from training.transcripts.dialogs import Dialog
from training.transcripts.settings import TranscriptSettings
from training.transcripts.source import SourceFile, TranscriptError

FORMATS = {
    "generic": "CSV/TSV or JSON lines of turns: conversation_id, role, text[, time][, label] (map with --columns)",
    "twitter": "Customer Support on Twitter CSV (tweet_id, author_id, inbound, ..., in_response_to_tweet_id)",
    "abcd": "ABCD JSON dialogs ('original' turns; scenario flow/subflow as labels)",
    "rasa": "a Rasa project folder or NLU YAML file (intents with examples; domain.yml responses)",
    "zendesk": "Zendesk ticket export, JSON or JSON lines (tickets with comments, public/private, author_id)",
    "intercom": "Intercom conversation export, JSON or JSON lines (source + conversation_parts)",
}


@dataclass
class Reading:
    """One run of a reader: what to read, how, and the files it opened (for encoding warnings)."""

    path: Path
    settings: TranscriptSettings = field(default_factory=TranscriptSettings)
    columns: tuple[str, ...] = ()  # generic format: field=column overrides
    on_progress: Callable[[int, int], None] | None = None
    sources: list[SourceFile] = field(default_factory=list)

    def open(self, path: Path | None = None) -> SourceFile:
        source = SourceFile(path or self.path, self.on_progress)
        self.sources.append(source)
        return source


def read_dialogs(reading: Reading, fmt: str) -> Iterator[Dialog]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown transcript format {fmt!r}; expected one of {', '.join(FORMATS)}")
    module = importlib.import_module(f"training.transcripts.{fmt}")
    return module.read(reading)


def detect_format(path: Path) -> str:
    """Guess the format from the file name and its first record."""
    path = Path(path)
    if path.is_dir() or path.suffix in (".yml", ".yaml"):
        return "rasa"
    name = path.name.lower().removesuffix(".gz")
    source = SourceFile(path)
    if name.endswith((".csv", ".tsv", ".txt")):
        for _, header in source.csv_rows("\t" if name.endswith(".tsv") else ","):
            cols = {c.strip().lower() for c in header}
            return "twitter" if {"tweet_id", "inbound"} <= cols else "generic"
        raise TranscriptError(str(path), 0, "empty file")
    for _, record in source.json_records(("tickets", "conversations", "train", "dev", "test", "data", "results")):
        keys = set(record) if isinstance(record, dict) else set()
        if "original" in keys and "scenario" in keys:
            return "abcd"
        if "conversation_parts" in keys or ("source" in keys and isinstance(record.get("source"), dict)):
            return "intercom"
        if "comments" in keys or "requester_id" in keys:
            return "zendesk"
        return "generic"
    raise TranscriptError(str(path), 0, "empty file")
