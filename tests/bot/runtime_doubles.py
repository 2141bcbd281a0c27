"""Test doubles for the bot runtime: a fixed-probability classifier, a scripted knowledge base, a tiny bot.

Also runnable as a script (`python tests/bot/runtime_doubles.py STATE_DIR PORT [DATABASE_URL]`): serves the tiny
bot with the doubles, for tests that need a real server process (on PostgreSQL when a database URL is given).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.classifier import Prediction  # noqa: E402

INTENTS_YAML = """
entities:
  order_id:
    pattern: '\\b([A-Z]{2}\\d{5})\\b'
  email:
    pattern: '[\\w.+-]+@[\\w-]+(?:\\.[\\w-]+)+'
  color:
    values: [red, dark blue]
intents:
  greet:
    examples: [hello, hi there]
    answer: Hello! How can I help?
  track_order:
    description: Track an order
    examples: [where is my order, track my parcel]
    answer: Order {order_id} is on its way.
    prompts:
      order_id: What is your order number?
  cancel_order:
    description: Cancel an order
    examples: [cancel my order]
    answer: I have cancelled order {order_id}.
    prompts:
      order_id: Which order should I cancel?
  send_receipt:
    description: Send a receipt
    examples: [send me the receipt]
    answer: The receipt goes to {email}.
    prompts:
      email: Which e-mail address?
  nickname:
    examples: [call me something]
    answer: Nice to meet you, {name}.
    prompts:
      name: What should I call you?
  product_question:
    examples: [does the jacket come in red]
    route: knowledge
  talk_to_human:
    examples: [talk to a person]
    route: handoff
    answer: Our team will take it from here.
  store_hours:
    examples: [when are you open]
    route: knowledge
    answer: We are open 9 to 5.
"""

# Keyword in the message -> calibrated probabilities the double returns (first match wins).
TABLE: dict[str, dict[str, float]] = {
    "hello": {"greet": 0.97},
    "where is": {"track_order": 0.93},
    "cancel or track": {"cancel_order": 0.5, "track_order": 0.44, "send_receipt": 0.05},  # answered, yet close
    "cancel": {"cancel_order": 0.9},
    "receipt": {"send_receipt": 0.9},
    "call me": {"nickname": 0.9},
    "jacket": {"product_question": 0.88},
    "human": {"talk_to_human": 0.95},
    "open": {"store_hours": 0.9},
    "order thing": {"track_order": 0.3, "cancel_order": 0.28, "send_receipt": 0.22},
}


class FixedClassifier:
    """Probabilities from TABLE by keyword; anything else is spread thin (unknown)."""

    def __init__(self, version: str = "v1", threshold: float = 0.5, margin: float = 0.1,
                 table: dict[str, dict[str, float]] | None = None):
        self.version, self.threshold, self.margin = version, threshold, margin
        self.table = TABLE if table is None else table
        self.calls: list[list[str]] = []

    def predict(self, texts: Sequence[str], k: int = 3) -> list[Prediction]:
        self.calls.append(list(texts))
        return [self._one(t, k) for t in texts]

    def _one(self, text: str, k: int) -> Prediction:
        probs = next((p for key, p in self.table.items() if key in text.lower()), {"greet": 0.2, "track_order": 0.1})
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:k]
        confidence = top[0][1]
        unknown = confidence < self.threshold
        ambiguous = len(top) > 1 and top[0][1] - top[1][1] < self.margin
        return Prediction(None if unknown else top[0][0], confidence, top, unknown, ambiguous)


@dataclass(frozen=True)
class FakeAnswer:
    text: str
    title: str = ""
    url: str = ""
    score: float = 0.0
    confident: bool = False
    alternatives: list = field(default_factory=list)
    threshold: float | None = 0.5


class ScriptedKnowledge:
    """Answers confidently when the query mentions a known word; records every query."""

    ARTICLES = {
        "jacket": FakeAnswer("The jacket comes in red and blue.", "Jackets", "https://shop.example/jackets", 0.9, True),
        "shipping": FakeAnswer("Shipping takes 2-4 days.", "Shipping", "https://shop.example/shipping", 0.8, True),
    }

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.closed = False

    def answer(self, query: str, tags: Sequence[str] = ()) -> FakeAnswer:
        self.queries.append(query)
        return next((a for key, a in self.ARTICLES.items() if key in query.lower()),
                    FakeAnswer("", score=0.1))

    def answer_many(self, queries: Sequence[str], tags: Sequence[str] = ()) -> list[FakeAnswer]:
        return [self.answer(q, tags) for q in queries]

    def search(self, query: str, k: int = 5) -> list:
        """The article an answer would come from, as a hit with its score parts (for explanations)."""
        from knowledge.search import Hit

        a = self.answer(query)
        return [Hit(1, a.title.lower(), a.title, a.url, "", a.text, a.score, 0.5,
                    {"cosine": 0.7, "coverage": 1.0, "cosine lead": 0.2, "coverage lead": 0.5})] if a.title else []

    threshold = 0.5  # the relevance an answer needs

    def close(self) -> None:
        self.closed = True


class FakeSource:
    """A model registry double: `version` is the pointer; load() builds a FixedClassifier of it."""

    def __init__(self, version: str = "v1"):
        self.version = version
        self.loaded: list[FixedClassifier] = []

    def current_version(self) -> str | None:
        return self.version

    def load(self) -> FixedClassifier:
        model = FixedClassifier(self.version)
        self.loaded.append(model)
        return model


def write_bot(folder: Path, extra_toml: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "intents.yaml").write_text(INTENTS_YAML)
    (folder / "bot.toml").write_text(extra_toml)
    return folder


def serve(state_dir: str, port: str, database_url: str = "") -> None:
    import json

    from aiohttp import web

    from bot.web.app import create_app
    from bot.folder.bot_folder import BotFolder

    overrides = [f"state_dir={json.dumps(state_dir)}", f"database.url={json.dumps(database_url)}"]
    folder = BotFolder.load(write_bot(Path(state_dir) / "bot"), overrides)
    app = create_app(folder.settings, folder, models=FakeSource(), open_knowledge=ScriptedKnowledge)
    web.run_app(app, host="127.0.0.1", port=int(port), print=None)


if __name__ == "__main__":
    serve(*sys.argv[1:4])


def load_folder(tmp_path: Path, *overrides: str):
    """The tiny test bot in `tmp_path`, its state beside it."""
    from bot.folder.bot_folder import BotFolder

    return BotFolder.load(write_bot(tmp_path / "bot"), [f'state_dir="{tmp_path / "state"}"', *overrides])
