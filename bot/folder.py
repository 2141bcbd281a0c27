"""The bot folder a user writes: `bot.toml`, `intents.yaml`, `knowledge/`, `transcripts/`.

Loaded and validated here; errors name the file (and line where YAML gives one).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

from bot.settings import Settings, load_settings
from training.store import Example

ROUTES = ("template", "knowledge", "handoff")
BUILTINS = ("bot_name",)  # variables every answer may use, filled from settings (display_name)


@dataclass(frozen=True)
class Entity:
    """A variable templates can use, found in messages by a regular expression or a list of values."""

    name: str
    pattern: re.Pattern | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Intent:
    name: str
    examples: tuple[str, ...]
    answer: str = ""  # answer template with {variables}
    route: str = "template"  # template | knowledge | handoff
    prompts: dict[str, str] = field(default_factory=dict)  # variable -> question asking for it
    description: str = ""  # a short human label, used in clarifying questions


@dataclass(frozen=True)
class BotFolder:
    path: Path
    settings: Settings
    intents: dict[str, Intent]
    entities: dict[str, Entity]

    @property
    def knowledge_dir(self) -> Path:
        return self.path / "knowledge"

    @property
    def transcripts_dir(self) -> Path:
        return self.path / "transcripts"

    def seed_examples(self) -> list[Example]:
        return [
            Example(text=t, intent=i.name, source="seed", provenance=f"intents.yaml:{i.name}")
            for i in self.intents.values()
            for t in i.examples
        ]

    @classmethod
    def load(cls, path: str | Path, overrides: Iterable[str] = ()) -> "BotFolder":
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"bot folder {path} does not exist")
        settings = load_settings(path / "bot.toml", overrides)
        if not settings.name:
            settings = dataclasses.replace(settings, name=path.resolve().name)
        intents, entities = load_intents(path / "intents.yaml")
        return cls(path=path, settings=settings, intents=intents, entities=entities)


def load_intents(file: Path) -> tuple[dict[str, Intent], dict[str, Entity]]:
    """Parse and validate intents.yaml."""
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing (every bot folder needs intents.yaml)")
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ValueError(f"{file}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        raise ValueError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("intents"), dict):
        raise ValueError(f"{file}: expected a mapping with an 'intents:' mapping")

    entities = {}
    for name, spec in (doc.get("entities") or {}).items():
        spec = spec or {}
        try:
            pattern = re.compile(spec["pattern"], re.IGNORECASE) if spec.get("pattern") else None
        except re.error as e:
            raise ValueError(f"{file}: entity {name}: invalid pattern: {e}") from e
        values = tuple(str(v) for v in spec.get("values", ()))
        if pattern is None and not values:
            raise ValueError(f"{file}: entity {name}: needs a 'pattern' or 'values'")
        entities[name] = Entity(name=name, pattern=pattern, values=values)

    intents = {}
    for name, spec in doc["intents"].items():
        spec = spec or {}
        route = spec.get("route", "template")
        if route not in ROUTES:
            raise ValueError(f"{file}: intent {name}: route must be one of {ROUTES}, not {route!r}")
        examples = tuple(str(e).strip() for e in spec.get("examples") or () if str(e).strip())
        if not examples:
            raise ValueError(f"{file}: intent {name}: needs at least one example")
        answer = str(spec.get("answer", "")).strip()
        if route == "template" and not answer:
            raise ValueError(f"{file}: intent {name}: needs an 'answer' (or route: knowledge/handoff)")
        prompts = {str(k): str(v) for k, v in (spec.get("prompts") or {}).items()}
        for var in re.findall(r"{(\w+)}", answer):
            if var not in entities and var not in prompts and var not in BUILTINS:
                raise ValueError(f"{file}: intent {name}: answer uses {{{var}}}, which is no entity and has no prompt")
        intents[name] = Intent(
            name=name, examples=examples, answer=answer, route=route, prompts=prompts,
            description=str(spec.get("description", name.replace("_", " "))),
        )
    return intents, entities
