"""The one writer of a bot's `intents.yaml`: review edits, accepted intent proposals, new bot folders and the
Rasa migration all write through it, keeping the file's comments and layout.

ruamel.yaml round-trips the file: only the edited value changes, so a team that keeps the bot folder
in git sees a normal diff. Each write is validated by loading the result (bot.folder.bot_folder.load_intents) before
it replaces the file, atomically (write a temporary file, then rename).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
import textwrap
from typing import Any, Mapping, Sequence

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from bot.folder.bot_folder import load_intents


INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


def checked_name(name: str) -> str:
    """`name` if it may name an intent a person adds (review, an accepted proposal); else a ValueError."""
    if not INTENT_NAME.match(name):
        raise ValueError(f"intent name {name!r}: use 2 to 64 lower-case letters, digits and _, starting with a letter "
                         "(e.g. refund_status)")
    return name


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
    return _scalar(text)


_YAML_1_1 = yaml.resolver.Resolver()


def _scalar(text: str):
    """A string as it is written: double-quoted where load_intents (PyYAML, YAML 1.1) would read the plain form as
    something else. ruamel writes YAML 1.2, where `yes`, `no`, `on` and `off` are strings; in 1.1 they are booleans."""
    if _YAML_1_1.resolve(yaml.ScalarNode, text, (True, False)) != "tag:yaml.org,2002:str":
        return DoubleQuotedScalarString(text)
    return text


def _node(value: Any, in_list: bool = False):
    """Plain data as round-trip nodes in block style; a mapping of plain values inside a list (a quick reply) in
    flow style, one per line."""
    if isinstance(value, Mapping):
        node = CommentedMap((_scalar(str(k)), _node(v)) for k, v in value.items())
        if in_list and not any(isinstance(v, (Mapping, list, tuple)) for v in value.values()):
            node.fa.set_flow_style()
        return node
    if isinstance(value, (list, tuple)):
        return CommentedSeq(_node(v, in_list=True) for v in value)
    return _scalar(value) if isinstance(value, str) else value


def _note(spec: CommentedMap, note: str) -> None:
    """`note` as a comment at the top of an intent (for the person who reviews the file); it goes with the intent
    when the intent is removed."""
    if note.strip():
        spec.yaml_set_start_comment("\n".join(textwrap.wrap(note, 100)), indent=4)


def create(file: Path, intents: Mapping[str, Mapping], entities: Mapping[str, Mapping], header: str = "",
           notes: Mapping[str, str] | None = None) -> None:
    """A new intents.yaml from plain data (a new bot folder, a migrated Rasa project): `header` as its opening
    comment, then entities and intents, each intent's note as a comment at its top."""
    doc = CommentedMap()
    if header:
        doc.yaml_set_start_comment(header.rstrip("\n"))
    doc["entities"] = _node(entities)
    doc["intents"] = _node(intents)
    for name, note in (notes or {}).items():
        _note(doc["intents"][name], note)
    _write(file, doc)


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


def add_intent(file: Path, name: str, examples: Sequence[str], answer: str = "", description: str = "",
               note: str = "") -> None:
    """Append a new intent (route knowledge when it has no answer yet), with `note` as a comment at its top."""
    doc = _load(file)
    intents = doc.get("intents")
    if intents is None:  # `intents:` with nothing under it yet
        intents = doc["intents"] = CommentedMap()
    if name in intents:
        raise ValueError(f"{file}: intent {name!r} already exists")
    spec = CommentedMap()
    spec["description"] = _scalar(description or name.replace("_", " ").capitalize())
    if answer.strip():
        spec["answer"] = _block(answer)
    else:
        spec["route"] = "knowledge"
    seq = CommentedSeq(_scalar(e) for e in dict.fromkeys(e.strip() for e in examples if e.strip()))
    if not seq:
        raise ValueError(f"intent {name!r} needs at least one example")
    spec["examples"] = seq
    _note(spec, note)
    intents[name] = spec
    _write(file, doc)


def remove_intent(file: Path, name: str) -> None:
    doc = _load(file)
    intents = doc.get("intents") or {}
    if name in intents:
        del intents[name]
        _write(file, doc)
