"""Edits of a bot's `intents.yaml` made from the review workspace, keeping its comments and layout.

ruamel.yaml round-trips the file: only the edited value changes, so a team that keeps the bot folder
in git sees a normal diff. Each edit is validated by loading the result (bot.folder.bot_folder.load_intents) before
it replaces the file, atomically (write a temporary file, then rename).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Sequence

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from bot.folder.bot_folder import load_intents


def _yaml() -> YAML:
    y = YAML()  # round-trip mode
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap the lines a person wrapped
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _load(file: Path):
    return _yaml().load(file.read_text(encoding="utf-8"))


def _write(file: Path, doc) -> None:
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    text = buf.getvalue()
    fd, tmp = tempfile.mkstemp(prefix=".intents-", suffix=".yaml", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        load_intents(Path(tmp))  # refuse an edit that would leave the bot unable to start
        mode = file.stat().st_mode & 0o777 if file.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, file)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _block(text: str):
    text = text.strip()
    if "\n" in text:
        return LiteralScalarString(text + "\n")
    return text


def intent_spec(file: Path, name: str) -> dict | None:
    """The intent's answer, route and examples as they stand in the file (None if it has no such intent)."""
    spec = (_load(file).get("intents") or {}).get(name)
    if spec is None:
        return None
    answer = spec.get("answer", "") or ""
    if isinstance(answer, list):  # variants: the review workspace shows and edits the first
        answer = answer[0] if answer else ""
    return {"answer": str(answer).strip(), "route": str(spec.get("route", "template")),
            "examples": [str(e) for e in spec.get("examples") or ()]}


def set_answer(file: Path, name: str, answer: str) -> str | None:
    """Give an intent a new answer template (route `template` unless it routes to a person); returns the old answer."""
    doc = _load(file)
    spec = (doc.get("intents") or {}).get(name)
    if spec is None:
        raise ValueError(f"{file}: no intent {name!r}")
    old = spec.get("answer")
    spec["answer"] = _block(answer)
    if spec.get("route") == "knowledge":
        del spec["route"]  # an answer the reviewer wrote is meant to be given
    _write(file, doc)
    return None if old is None else str(old).strip()


def restore(file: Path, name: str, answer: str | None, route: str | None) -> None:
    """Undo `set_answer`: the previous answer (None: none) and route."""
    doc = _load(file)
    spec = (doc.get("intents") or {}).get(name)
    if spec is None:
        return
    if answer is None:
        spec.pop("answer", None)
    else:
        spec["answer"] = _block(answer)
    if route and route != "template":
        spec["route"] = route
    _write(file, doc)


def add_intent(file: Path, name: str, examples: Sequence[str], answer: str = "", description: str = "") -> None:
    """Append a new intent (route knowledge when it has no answer yet)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    doc = _load(file)
    intents = doc.get("intents")
    if name in intents:
        raise ValueError(f"{file}: intent {name!r} already exists")
    spec = CommentedMap()
    spec["description"] = description or name.replace("_", " ").capitalize()
    if answer.strip():
        spec["answer"] = _block(answer)
    else:
        spec["route"] = "knowledge"
    seq = CommentedSeq(dict.fromkeys(e.strip() for e in examples if e.strip()))
    if not seq:
        raise ValueError(f"intent {name!r} needs at least one example")
    spec["examples"] = seq
    intents[name] = spec
    _write(file, doc)


def remove_intent(file: Path, name: str) -> None:
    doc = _load(file)
    intents = doc.get("intents") or {}
    if name in intents:
        del intents[name]
        _write(file, doc)
