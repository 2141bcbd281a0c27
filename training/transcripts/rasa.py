"""Rasa projects (2.x/3.x YAML): NLU training examples with entity markup stripped, and domain responses.

As a transcript format it yields each NLU example as a one-turn dialog labelled with its intent. For a
migration, `load_project` + `migration_plan` give the intents of a new bot folder: examples, and the
`utter_<intent>` response as the answer where one exists (otherwise the knowledge base answers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from training.transcripts import Reading
from training.transcripts.dialogs import CUSTOMER, Dialog, Turn, label_name
from training.store import normalise
from training.transcripts.source import TranscriptError

_ENTITY = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")
_SLOT = re.compile(r"{([\w-]+)}")
SKIP_FILES = ("config", "credentials", "endpoints")


def strip_entities(text: str) -> str:
    """'my [credit card]{"entity": "account_type"} [balance](amount)' -> 'my credit card balance'."""
    return _ENTITY.sub(r"\1", text).strip()


def intent_name(name: str) -> str:
    """Rasa retrieval intents ('faq/ask_name') and odd characters become plain snake_case names."""
    return label_name(name) or "intent"


@dataclass
class RasaProject:
    path: Path
    examples: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # intent -> (text, file, line)
    responses: dict[str, list[dict]] = field(default_factory=dict)  # utter_name -> variants
    nlu_files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class IntentDraft:
    """An intent of the migrated bot folder."""

    name: str
    examples: tuple[str, ...]
    answer: str = ""
    route: str = "knowledge"
    note: str = ""  # a comment for the person reviewing the migrated intents.yaml


def load_project(path: Path) -> RasaProject:
    """Read the NLU files (a project folder's data/, or one file) and the domain (domain.yml or domain/)."""
    path = Path(path)
    if not path.exists():
        raise TranscriptError(str(path), 0, "no such file or folder")
    project = RasaProject(path=path)
    if path.is_file():
        files = [path]
    else:
        base = path / "data" if (path / "data").is_dir() else path
        files = sorted(p for p in base.rglob("*") if p.suffix in (".yml", ".yaml") and p.stem not in SKIP_FILES
                       and not p.name.startswith("domain"))
    for file in files:
        doc = _compose(file)
        nlu = _get(doc, "nlu")
        if nlu is None:
            continue
        project.nlu_files.append(file)
        for item in getattr(nlu, "value", None) or []:
            intent = _get(item, "intent")
            if intent is None:
                continue  # synonym, regex or lookup blocks
            for text, line in _examples(_get(item, "examples"), file):
                clean = strip_entities(text)
                if clean:
                    project.examples.setdefault(str(intent.value), []).append((clean, str(file), line))
    if not project.nlu_files:
        raise TranscriptError(str(path), 0, "no Rasa NLU data found (YAML files with an 'nlu:' section)")
    if path.is_dir():
        domain_files = [path / "domain.yml", path / "domain.yaml"] + sorted((path / "domain").rglob("*.y*ml")) \
            if (path / "domain").is_dir() else [path / "domain.yml", path / "domain.yaml"]
        for file in domain_files:
            if file.is_file():
                doc = yaml.safe_load(_text(file)) or {}
                for name, variants in (doc.get("responses") or doc.get("templates") or {}).items():
                    project.responses[str(name)] = [v for v in variants or [] if isinstance(v, dict)]
    return project


def read(reading: Reading) -> Iterator[Dialog]:
    """Each NLU example as a one-turn dialog, labelled with its intent."""
    project = load_project(reading.path)
    base = reading.path if reading.path.is_dir() else reading.path.parent
    for intent, examples in project.examples.items():
        for text, file, line in examples:
            rel = Path(file).relative_to(base) if Path(file).is_relative_to(base) else Path(file)
            yield Dialog(id=f"{rel}:{line}", line=line, prepared=True, label=intent_name(intent),
                         turns=(Turn(role=CUSTOMER, text=text, line=line),))


def migration_plan(project: RasaProject) -> list[IntentDraft]:
    """Intents for a new bot folder: every NLU intent with examples, answered by `utter_<intent>` if it exists."""
    drafts, owner = [], {}
    for intent, examples in project.examples.items():
        texts, keys, elsewhere = [], set(), []
        for text, _, _ in examples:  # one copy per normalised text; a text in two intents stays in the first
            key = normalise(text)
            if owner.setdefault(key, intent) != intent:
                elsewhere.append(f"{text!r} (kept in {owner[key]})")
            elif key not in keys:
                keys.add(key)
                texts.append(text)
        texts = tuple(texts)
        conflict = f" Left out, also an example of another intent: {', '.join(elsewhere)}." if elsewhere else ""
        variants = project.responses.get(f"utter_{intent}") or []
        text = str(variants[0].get("text", "")).strip() if variants else ""
        name = intent_name(intent)
        if "handoff" in name and not text:
            drafts.append(IntentDraft(name, texts, route="handoff", note="Rasa hand-off intent: hands over to a person." + conflict))
        elif not text:
            note = f"No utter_{intent} response in the Rasa domain: answered from the knowledge base."
            drafts.append(IntentDraft(name, texts, note=note + conflict))
        elif _SLOT.search(text):
            note = (f"TODO: utter_{intent} uses slots filled by Rasa actions ({', '.join(_SLOT.findall(text))}); "
                    f"rewrite it as an answer template. Rasa text: {text}")
            drafts.append(IntentDraft(name, texts, note=note + conflict))
        else:
            extra = f"Answer from utter_{intent}; {len(variants) - 1} more variants in Rasa not migrated." \
                if len(variants) > 1 else ""
            drafts.append(IntentDraft(name, texts, answer=text, route="template", note=(extra + conflict).strip()))
    return drafts


def _text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TranscriptError(str(file), 0, f"not UTF-8 text ({e.reason} at byte {e.start})") from e


def _compose(file: Path):
    try:
        return yaml.compose(_text(file))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise TranscriptError(str(file), mark.line + 1 if mark else 0, f"invalid YAML: {getattr(e, 'problem', e)}") from e


def _get(node, key: str):
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == key:
                return v
    return None


def _examples(node, file: Path) -> Iterator[tuple[str, int]]:
    """(example text, line) from `examples: |` ('- text' lines) or a list of strings / {text: ...}."""
    if isinstance(node, yaml.ScalarNode):
        first = node.start_mark.line + (2 if node.style in ("|", ">") else 1)
        for offset, raw in enumerate(str(node.value).splitlines()):
            raw = raw.strip()
            if raw.startswith("- "):
                yield raw[2:].strip(), first + offset
            elif raw and raw != "-":
                raise TranscriptError(str(file), first + offset, f"NLU example must start with '- ': {raw!r}")
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            text = _get(item, "text") if isinstance(item, yaml.MappingNode) else item
            if isinstance(text, yaml.ScalarNode):
                yield str(text.value), text.start_mark.line + 1
