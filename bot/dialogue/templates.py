"""Answer templates: find entity values in a message, fill `{variables}`, say which one is missing.

Entities are defined per bot in intents.yaml (a regular expression or a list of values). Values come
from the raw message (in memory only: the stored message is redacted) and from what the conversation
already remembers.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Iterable, Mapping

from bot.folder.bot_folder import Entity, Intent

_FORMATTER = string.Formatter()


def variables(template: str) -> list[str]:
    """The `{names}` a template uses, in order of first use."""
    names: list[str] = []
    for _literal, name, _spec, _conv in _FORMATTER.parse(template):
        if name and name not in names:
            names.append(name)
    return names


def template_problem(template: str, known: Iterable[str]) -> str | None:
    """What would break this answer at run time, said for the bot's author; None when it is sound.

    Braces must balance (`{{` and `}}` write literal ones) and every `{name}` must be a plain name the bot can
    fill: an entity, a prompted variable or a built-in. `{order id}` or `{order_id.upper}` would otherwise be
    asked for forever, and a lone brace would fail every matching message."""
    known = set(known)
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as e:
        return f"has an unbalanced brace ({e}); write {{{{ or }}}} for a literal one"
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not re.fullmatch(r"\w+", name) or spec or conversion:
            return (f"uses {shown}, which is not a variable name (letters, digits and _ only); "
                    "write {{ or }} for a literal brace")
        if name not in known:
            return f"uses {shown}, which is no entity and has no prompt"
    return None


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill every `{name}`; the caller has checked that none is missing."""
    return "".join(
        literal + (str(values[name]) if name else "")
        for literal, name, _spec, _conv in _FORMATTER.parse(template)
    )


class EntityExtractor:
    """Finds the bot's entities in a message: first match of a pattern, or a listed value (whole words)."""

    def __init__(self, entities: Mapping[str, Entity]):
        self.patterns: dict[str, re.Pattern] = {}
        self.values: dict[str, tuple[re.Pattern, dict[str, str]]] = {}
        for name, entity in entities.items():
            if entity.pattern is not None:
                self.patterns[name] = entity.pattern
            if entity.values:
                # Longest first, so "next day delivery" wins over "delivery".
                listed = sorted({*entity.values, *entity.synonyms}, key=len, reverse=True)
                alternation = "|".join(re.escape(v) for v in listed)
                canonical = {k.lower(): v for k, v in entity.synonyms.items()}
                canonical.update({v.lower(): v for v in entity.values})
                self.values[name] = (re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE), canonical)

    def __contains__(self, name: str) -> bool:
        return name in self.patterns or name in self.values

    def extract(self, text: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, pattern in self.patterns.items():
            m = pattern.search(text)
            if m:
                found[name] = _match_value(m)
        for name, (pattern, canonical) in self.values.items():
            if name in found:
                continue
            m = pattern.search(text)
            if m:
                found[name] = canonical.get(m.group(0).lower(), m.group(0))
        return found


def _match_value(m: re.Match) -> str:
    """The first non-empty group if the pattern has groups (`order (\\w+)`), else the whole match."""
    for group in m.groups():
        if group:
            return group.strip()
    return m.group(0).strip()


@dataclass(frozen=True)
class Filled:
    """A template answer, or the variable to ask for first (with its prompt)."""

    answer: str = ""
    missing: str | None = None
    prompt: str = ""


def fill(intent: Intent, slots: Mapping[str, str], rng: random.Random | None = None) -> Filled:
    """Fill one of the intent's answer variants (chosen at random, as Rasa does) from the slots, or name the
    first missing variable and its prompt."""
    answers = intent.answers
    answer = answers[0] if len(answers) < 2 else (rng or random).choice(answers)
    for name in variables(answer):
        if not slots.get(name):
            prompt = intent.prompts.get(name) or f"Could you tell me your {name.replace('_', ' ')}?"
            return Filled(missing=name, prompt=prompt)
    return Filled(answer=render(answer, slots))


def slot_reply(text: str, limit: int = 100) -> str:
    """A free-text answer to a prompt, as a slot value: one line, trimmed, bounded."""
    value = " ".join(text.split())
    return value[:limit].rstrip(" .!?")
