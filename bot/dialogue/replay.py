"""Conversation tests: a bot folder's `conversations.yaml` replayed turn by turn through the router, each reply
compared with the expected ones (a migrated Rasa bot's test stories: `{slot}` in an expected reply matches any
text). A turn marked `skip` is still sent, so that the conversation's state moves on, but is not scored."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.dialogue.router import Conversation, Router

_SLOT = re.compile(r"{[^{}]+}")


@dataclass(frozen=True)
class TurnResult:
    conversation: str
    user: str
    expected: tuple[str, ...]
    got: str
    intent: str | None  # what the bot decided
    route: str
    skip: str = ""
    source: str = ""

    @property
    def ok(self) -> bool:
        return not self.skip and matches(self.got, self.expected)


@dataclass
class ReplayResult:
    turns: list[TurnResult] = field(default_factory=list)

    @property
    def scored(self) -> list[TurnResult]:
        return [t for t in self.turns if not t.skip]

    @property
    def share(self) -> float:
        return sum(t.ok for t in self.scored) / len(self.scored) if self.scored else 0.0

    def summary(self) -> str:
        scored, ok = self.scored, [t for t in self.scored if t.ok]
        lines = [f"{len(ok)} of {len(scored)} scored turns got the expected reply ({100 * self.share:.1f} %); "
                 f"{len(self.turns) - len(scored)} turns not scored"]
        for t in scored:
            if not t.ok:
                lines.append(f"  different: [{t.conversation}] {t.user!r} -> {t.route} {t.intent or '-'}: {t.got!r}; "
                             f"expected {t.expected[0]!r}" + (f" (+{len(t.expected) - 1} variants)" if len(t.expected) > 1 else "")
                             + (f"  ({t.source})" if t.source else ""))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"share": self.share, "scored": len(self.scored), "ok": sum(t.ok for t in self.scored),
                "turns": [{**t.__dict__, "expected": list(t.expected), "ok": t.ok} for t in self.turns]}

    def write(self, folder: Path) -> Path:
        """`conversations.json` in `folder` (a model version's, or a report folder); its path."""
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / "conversations.json"
        file.write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")
        return file


def matches(reply: str, expected: tuple[str, ...]) -> bool:
    """Whether the reply is one of the expected ones, a `{slot}` matching any non-empty text."""
    got = " ".join(reply.split())
    for text in expected:
        parts = _SLOT.split(" ".join(text.split()))
        if re.fullmatch(".+?".join(re.escape(p) for p in parts), got, re.DOTALL):
            return True
    return False


def load_conversations(file: Path) -> list[dict]:
    """Parse conversations.yaml; errors name the file (and line)."""
    try:
        doc = yaml.safe_load(Path(file).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ValueError(f"{file}:{mark.line + 1 if mark else 0}: invalid YAML: {getattr(e, 'problem', e)}") from e
    conversations = doc.get("conversations") if isinstance(doc, dict) else None
    if not isinstance(conversations, list):
        raise ValueError(f"{file}: expected a mapping with a 'conversations:' list")
    for i, c in enumerate(conversations):
        if not isinstance(c, dict) or not isinstance(c.get("turns"), list):
            raise ValueError(f"{file}: conversation {i + 1} needs a 'turns:' list")
        for t in c["turns"]:
            if not isinstance(t, dict) or not str(t.get("user", "")).strip():
                raise ValueError(f"{file}: conversation {c.get('name', i + 1)!r}: every turn needs a 'user:' message")
            if not t.get("skip") and not t.get("expect"):
                raise ValueError(f"{file}: conversation {c.get('name', i + 1)!r}: turn {t['user']!r} needs "
                                 "'expect:' replies or a 'skip:' reason")
    return conversations


async def replay(router: Router, conversations: list[dict]) -> ReplayResult:
    """Each conversation from a fresh state, every turn through `router.respond`."""
    result = ReplayResult()
    for n, c in enumerate(conversations):
        convo = Conversation(id=f"test-{n}")
        for t in c["turns"]:
            reply = await router.respond(str(t["user"]), convo)
            expected = tuple(str(e) for e in t.get("expect") or ())
            result.turns.append(TurnResult(str(c.get("name", n + 1)), str(t["user"]), expected, reply.answer,
                                           reply.decision.intent, reply.decision.route, str(t.get("skip") or ""),
                                           str(t.get("source", ""))))
    return result


def folder_knowledge(folder):
    """The bot's knowledge base, synced with knowledge/, or None when the folder has no documents."""
    docs = sorted(p for p in folder.knowledge_dir.glob("*") if p.is_file() and not p.name.startswith("."))
    if not docs:
        return None
    from knowledge.base import KnowledgeBase

    settings = folder.settings
    kb = KnowledgeBase.open(settings.database_location, settings.index_path, settings.knowledge)
    kb.sync(docs)
    return kb


def replay_folder(folder, classifier, kb, conversations: list[dict]) -> ReplayResult:
    """Replay `conversations` through a router of the bot folder, its intent model and knowledge base."""
    import asyncio

    async def classify(text):
        return classifier.predict([text])[0]

    async def search(text):
        return kb.answer(text) if kb is not None else None

    router = Router(folder.intents, folder.entities, classifier, classify, search, folder.settings)
    return asyncio.run(replay(router, conversations))
