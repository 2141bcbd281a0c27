"""The bot folder a user writes: `bot.toml`, `intents.yaml`, `knowledge/`, `transcripts/`.

Loaded and validated here; errors name the file (and line where YAML gives one).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from bot.settings import Settings, load_settings
from training.store import Example

ROUTES = ("template", "knowledge", "handoff")
BUILTINS = ("bot_name",)  # variables every answer may use, filled from settings (display_name)
EVALUATION_FILE = "evaluation.csv"  # an optional held-out test set the folder may carry (`run_bot.py evaluate`)


@dataclass(frozen=True)
class Entity:
    """A variable templates can use, found in messages by a regular expression or a list of values."""

    name: str
    pattern: re.Pattern | None = None
    values: tuple[str, ...] = ()
    synonyms: dict[str, str] = field(default_factory=dict)  # other wording -> the listed value it means


@dataclass(frozen=True)
class Intent:
    name: str
    examples: tuple[str, ...]
    answer: str = ""  # answer template with {variables} (the first variant)
    route: str = "template"  # template | knowledge | handoff
    prompts: dict[str, str] = field(default_factory=dict)  # variable -> question asking for it
    description: str = ""  # a short human label, used in clarifying questions
    variants: tuple[str, ...] = ()  # every answer template; one is chosen at random per turn (answer is the first)
    quick_replies: tuple[tuple[str, str], ...] = ()  # (label, value) buttons shown with the answer

    @property
    def answers(self) -> tuple[str, ...]:
        return self.variants or ((self.answer,) if self.answer else ())


@dataclass(frozen=True)
class BotFolder:
    path: Path
    settings: Settings
    intents: dict[str, Intent]
    entities: dict[str, Entity]
    overrides: tuple[str, ...] = ()  # the --set overrides it was loaded with (a retrain process gets them too)

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
        return cls(path=path, settings=settings, intents=intents, entities=entities, overrides=tuple(overrides))


def _yaml_hint(e: Exception, mark: Any) -> str:
    """The parser's words in plain ones, for the mistakes people make by hand: indentation and tabs."""
    problem = str(getattr(e, "problem", "") or "")
    if "'\\t'" in problem:  # PyYAML writes the tab as \t
        return " (a tab: indent with spaces only)"
    structural = ("expected <block end>", "mapping values are not allowed", "could not find expected ':'",
                  "did not find expected key", "expected <block mapping start>")
    if mark is not None and any(p in problem for p in structural):
        return (f" (check the indentation of line {mark.line + 1} and of the line above it: keys of one level "
                "start in the same column, list items under a key are indented by spaces)")
    return ""


def load_intents(file: Path) -> tuple[dict[str, Intent], dict[str, Entity]]:
    """Parse and validate intents.yaml."""
    if not file.exists():  # a knowledge-only bot (a FAQ bot): every message is answered from knowledge/
        return {}, {}
    try:
        doc = yaml.load(file.read_text(encoding="utf-8"), Loader=_LineLoader) or {}
    except UnicodeDecodeError as e:
        raise ValueError(f"{file}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        raise ValueError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}{_yaml_hint(e, mark)}") from e
    if isinstance(doc, dict) and "intents" in doc and doc["intents"] is None:
        doc["intents"] = {}  # `intents:` with none under it yet: a new bot, or one answered from knowledge only
    if not isinstance(doc, dict) or not isinstance(doc.get("intents"), dict):
        raise ValueError(f"{file}: expected a mapping with an 'intents:' mapping")

    def at(mapping: Any, key: Any) -> str:  # "file:line" of a key, where the loader saw one
        line = getattr(mapping, "lines", {}).get(key)
        return f"{file}:{line}" if line else str(file)

    entities = {}
    entity_specs = doc.get("entities") or {}
    if not isinstance(entity_specs, dict):
        raise ValueError(f"{at(doc, 'entities')}: entities must be a mapping of name to pattern or values")
    for name, spec in entity_specs.items():
        spec = _mapping(spec or {}, f"{at(entity_specs, name)}: entity {name}")
        try:
            pattern = re.compile(str(spec["pattern"]), re.IGNORECASE) if spec.get("pattern") else None
        except re.error as e:
            raise ValueError(f"{at(spec, 'pattern')}: entity {name}: invalid pattern: {e}") from e
        values = spec.get("values", ())
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"{at(spec, 'values')}: entity {name}: values must be a list")
        values = tuple(str(v) for v in values)
        if pattern is None and not values:
            raise ValueError(f"{at(entity_specs, name)}: entity {name}: needs a 'pattern' or 'values'")
        synonyms = {str(k): str(v) for k, v in _mapping(spec.get("synonyms") or {},
                                                          f"{at(spec, 'synonyms')}: entity {name}: synonyms").items()}
        unknown = sorted(set(synonyms.values()) - set(values))
        if unknown:
            raise ValueError(f"{at(spec, 'synonyms')}: entity {name}: synonyms must name listed values, not {unknown}")
        entities[name] = Entity(name=name, pattern=pattern, values=values, synonyms=synonyms)

    from bot.dialogue.templates import template_problem  # templates.py imports this module

    intents = {}
    intent_specs = doc["intents"]
    for name, spec in intent_specs.items():
        spec = _mapping(spec or {}, f"{at(intent_specs, name)}: intent {name}")
        route = spec.get("route", "template")
        if route not in ROUTES:
            raise ValueError(f"{at(spec, 'route')}: intent {name}: route must be one of {ROUTES}, not {route!r}")
        raw_examples = spec.get("examples") or ()
        if not isinstance(raw_examples, (list, tuple)):
            raise ValueError(f"{at(spec, 'examples')}: intent {name}: examples must be a list")
        examples = tuple(str(e).strip() for e in raw_examples if str(e).strip())
        if not examples:
            raise ValueError(f"{at(intent_specs, name)}: intent {name}: needs at least one example")
        raw_answer = spec.get("answer", "")
        if isinstance(raw_answer, (list, tuple)):  # variants: one is chosen at random per turn
            variants = tuple(str(a).strip() for a in raw_answer if str(a).strip())
        elif isinstance(raw_answer, dict):
            raise ValueError(f"{at(spec, 'answer')}: intent {name}: answer must be text or a list of variants")
        else:
            variants = (str(raw_answer).strip(),) if str(raw_answer).strip() else ()
        answer = variants[0] if variants else ""
        if route == "template" and not answer:
            raise ValueError(f"{at(intent_specs, name)}: intent {name}: needs an 'answer' (or route: knowledge/handoff)")
        prompts = {str(k): str(v) for k, v in _mapping(spec.get("prompts") or {},
                                                         f"{at(spec, 'prompts')}: intent {name}: prompts").items()}
        for variant in variants:
            problem = template_problem(variant, {*entities, *prompts, *BUILTINS})
            if problem:
                raise ValueError(f"{at(spec, 'answer')}: intent {name}: answer {problem}")
        intents[name] = Intent(
            name=name, examples=examples, answer=answer, route=route, prompts=prompts,
            description=str(spec.get("description", name.replace("_", " "))),
            variants=variants if len(variants) > 1 else (), quick_replies=_quick_replies(spec, at, name),
        )
    return intents, entities


def _quick_replies(spec: dict, at, name: str) -> tuple[tuple[str, str], ...]:
    """`quick_replies:` a list of {label, value} (value: what the click sends; "/intent" picks that intent)."""
    raw = spec.get("quick_replies") or ()
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"{at(spec, 'quick_replies')}: intent {name}: quick_replies must be a list")
    out = []
    for item in raw:
        if isinstance(item, dict) and str(item.get("label", "")).strip():
            label = str(item["label"]).strip()
            out.append((label, str(item.get("value", label)).strip() or label))
        elif isinstance(item, str) and item.strip():
            out.append((item.strip(), item.strip()))
        else:
            raise ValueError(f"{at(spec, 'quick_replies')}: intent {name}: each quick reply needs a label")
    return tuple(out)


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping (key: value lines), not {type(value).__name__}")
    return value


class _Lines(dict):
    """A YAML mapping that remembers the line of each key."""

    lines: dict


class _LineLoader(yaml.SafeLoader):
    """safe_load, with each mapping's key lines kept and a key given twice refused (not 'last one wins')."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Lines:
    loader.flatten_mapping(node)
    mapping = _Lines()
    mapping.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in mapping
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value",
                                                    key_node.start_mark) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {mapping.lines[key]})", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
