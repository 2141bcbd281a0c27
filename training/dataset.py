"""Labelled data files (CSV/TSV/JSON lines of text + intent), stratified splits and the data hash.

Errors name the file and line; rows that can be skipped are counted in warnings instead.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from training.store import Example

TEXT_COLUMNS = ("text", "utterance", "question", "message")
INTENT_COLUMNS = ("intent", "label", "category")


@dataclass
class LoadedData:
    examples: list[Example]
    warnings: list[str] = field(default_factory=list)


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and line."""


def read_examples(path: Path, source: str = "file") -> LoadedData:
    """Read text/intent rows from a .csv, .tsv or .jsonl file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); re-save the file as UTF-8") from e
    if path.suffix.lower() == ".jsonl":
        rows = _jsonl_rows(path, content)
    else:
        rows = _csv_rows(path, content, "\t" if path.suffix.lower() == ".tsv" else ",")

    examples, empty_intent, empty_text = [], [], []
    for line, text, intent in rows:
        if not text:
            empty_text.append(line)
        elif not intent:
            empty_intent.append(line)
        else:
            examples.append(Example(text=text, intent=intent, source=source, provenance=f"{path.name}:{line}"))
    warnings = []
    if empty_intent:
        warnings.append(f"{path}: {len(empty_intent)} rows with an empty intent skipped (lines {_lines(empty_intent)})")
    if empty_text:
        warnings.append(f"{path}: {len(empty_text)} rows with an empty text skipped (lines {_lines(empty_text)})")
    if not examples:
        raise DataError(f"{path}: no labelled examples")
    return LoadedData(examples, warnings + single_example_warnings(examples, str(path)))


def read_messages(path: Path, label: str) -> list[Example]:
    """Messages all of one label (out-of-scope ones for `calibrate --oos`): a CSV/TSV/JSON-lines file with a
    text column (an intent column is ignored), or a plain text file with one message a line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() in (".csv", ".tsv", ".jsonl"):
        content = path.read_text(encoding="utf-8-sig")
        if path.suffix.lower() == ".jsonl":
            texts = [str(next((row[c] for c in TEXT_COLUMNS if c in row), "")) for row in map(json.loads, filter(str.strip, content.splitlines()))]
        else:
            reader = csv.DictReader(io.StringIO(content, newline=""), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            column = next((c for c in reader.fieldnames or [] if c.strip().lower() in TEXT_COLUMNS), None)
            if column is None:
                raise DataError(f"{path}: no text column (one of {', '.join(TEXT_COLUMNS)}); columns: {reader.fieldnames}")
            texts = [row[column] or "" for row in reader]
    else:
        texts = path.read_text(encoding="utf-8").splitlines()
    examples = [Example(t.strip(), label, source="file", provenance=path.name) for t in texts if t.strip()]
    if not examples:
        raise DataError(f"{path}: no messages")
    return examples


FEW_EXAMPLES = 5  # below this an intent is a guess, whatever the model


def single_example_warnings(examples: Sequence[Example], where: str) -> list[str]:
    singles = sorted(i for i, n in Counter(e.intent for e in examples).items() if n == 1)
    if not singles:
        return []
    return [f"{where}: {len(singles)} intents have a single example and are not validated: {', '.join(singles[:10])}"]


def few_example_warnings(examples: Sequence[Example], where: str, minimum: int = FEW_EXAMPLES) -> list[str]:
    """Intents with a handful of examples: the model will confuse them; the fix is more examples."""
    few = sorted((n, i) for i, n in Counter(e.intent for e in examples).items() if 1 < n < minimum)
    if not few:
        return []
    listed = ", ".join(f"{i} ({n})" for n, i in few[:10])
    return [f"{where}: {len(few)} intents have fewer than {minimum} examples: {listed}; the model will confuse "
            "them: add a dozen or more each (intents.yaml `examples:`, or import more transcripts)"]


def _csv_rows(path: Path, content: str, delimiter: str):
    # a file object, not split lines: a quoted field may hold line breaks and is still one field
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    text_col = next((header.index(c) for c in TEXT_COLUMNS if c in header), None)
    intent_col = next((header.index(c) for c in INTENT_COLUMNS if c in header), None)
    if text_col is None or intent_col is None:
        missing = "a text column" if text_col is None else "an intent column"
        raise DataError(
            f"{path}:1: header {header} lacks {missing} (text: one of {TEXT_COLUMNS}; intent: one of {INTENT_COLUMNS})"
        )
    start = reader.line_num + 1
    for row in reader:
        line, start = start, reader.line_num + 1  # this row's first physical line; the next row's
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        yield line, row[text_col].strip(), row[intent_col].strip()


def _jsonl_rows(path: Path, content: str):
    for line, text in enumerate(content.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{line}: invalid JSON: {e.msg}") from e
        if not isinstance(obj, dict) or "text" not in obj or "intent" not in obj:
            raise DataError(f"{path}:{line}: expected an object with 'text' and 'intent'")
        yield line, str(obj["text"] or "").strip(), str(obj["intent"] or "").strip()


def _lines(lines: list[int]) -> str:
    return ", ".join(map(str, lines[:10])) + (", …" if len(lines) > 10 else "")


def stratified_split(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out `fraction` of each intent (at least one where it has 3+ examples; none otherwise)."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_intent[ex.intent].append(ex)
    rng = random.Random(seed)
    train, val = [], []
    for intent in sorted(by_intent):
        items = by_intent[intent][:]
        rng.shuffle(items)
        n_val = max(1, round(len(items) * fraction)) if len(items) >= 3 else 0
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def data_hash(examples: Sequence[Example]) -> str:
    """Order-independent hash of (text, intent) pairs: identifies what a model was trained on."""
    h = hashlib.sha256()
    for text, intent in sorted((e.text, e.intent or "") for e in examples):
        h.update(f"{intent}\t{text}\n".encode())
    return h.hexdigest()[:16]
