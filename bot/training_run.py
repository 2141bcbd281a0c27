"""A training run of a bot's intent model: its train settings with what the bot's own traffic has measured, and
`prepare_model` (train a version unless the serving one already has this data), and `prepare_bot`, the demo's
model and knowledge base. `run_bot.py train`, `demo` and `retrain` (bot.retraining) all train with these settings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from bot.folder.bot_folder import BotFolder


def prepare_model(folder: BotFolder, db, force: bool = False, progress: bool = True) -> Path:
    """Sync intents.yaml into the example store; train a version unless the serving one has this data."""
    from training.dataset import data_hash
    from training.pipeline import train as train_model, training_examples
    from training.registry import ModelRegistry
    from training.store import ExampleStore

    store = ExampleStore(db)
    store.add(folder.seed_examples())
    examples = store.examples()
    registry = ModelRegistry(folder.settings.models_path)
    current = registry.current_path()
    if current is not None and not force:
        trained_on = json.loads((current / "data.json").read_text()).get("hash")
        if trained_on == data_hash(training_examples(examples, folder.settings.train)):
            return current
    result = train_model(examples, train_settings(folder, db, print if progress else lambda _: None), registry,
                         progress=progress)
    if progress:
        print(result.summary(), flush=True)
    return result.path


def train_settings(folder: BotFolder, db, say=print):
    """The folder's train settings, with what the bot's own traffic has measured: the out-of-scope share of
    reviewed messages (once there are enough) and the bound on clarifying questions customers have earned."""
    from dataclasses import replace

    from bot.dialogue.conversations import ConversationLog
    from training.pipeline import answered_clarifications, reviewed_oos_share
    from training.redact import Redactor
    from training.store import ExampleStore

    settings = folder.settings.train
    share, reviewed = reviewed_oos_share(ExampleStore(db).examples(), settings.oos_label)
    if share is not None:
        say(f"note: {100 * share:.0f} % of {reviewed} reviewed messages were marked out of scope: the threshold is "
            f"fitted for that share (train.oos_share {100 * settings.oos_share:.0f} % stands until reviews measure it; "
            "the review queue leans towards unsure messages, so this errs towards refusing)")
        settings = replace(settings, oos_share=share)
    asked, answered = ConversationLog(db, Redactor(folder.settings.privacy)).clarification_answers()
    settings, note = answered_clarifications(settings, asked, answered)
    if note:
        say(f"note: {note}")
    return settings


def prepare_bot(folder: BotFolder, say: Callable[[str], Any] = lambda line: print(line, flush=True)) -> None:
    """What `run_bot.py demo` does before it serves: train (when the intents changed or no model exists) and
    ingest the knowledge folder (incrementally), with the answers reviewers confirmed."""
    from bot.database import open_bot_database
    from bot.review.store import confirmed_answers
    from knowledge.base import KnowledgeBase

    settings = folder.settings
    start = time.perf_counter()
    say(f"preparing {folder.path} in {settings.state_path} ...")
    db = open_bot_database(settings)
    try:
        version = prepare_model(folder, db)
        confirmed = confirmed_answers(db)
    finally:
        db.close()
    say(f"  intent model: {Path(version).name} ({time.perf_counter() - start:.0f} s)")
    if folder.knowledge_dir.is_dir():
        kb = KnowledgeBase.open(settings.database_location, settings.index_path, settings.knowledge)
        try:
            report = kb.sync([folder.knowledge_dir], confirmed=confirmed)
        finally:
            kb.close()
        say("  " + report.summary().replace("\n", "\n  "))
    say(f"  ready in {time.perf_counter() - start:.0f} s")
