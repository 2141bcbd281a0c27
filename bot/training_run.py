"""Training a bot's intent model: its train settings with what the bot's own traffic has measured
(`train_settings`), `train_bot` (`run_bot.py train`), `prepare_model` (train a version unless the serving one already
has this data) and `prepare_bot` (the demo's model and knowledge base). `run_bot.py train`, `demo` and `retrain`
(bot.retraining) all train with these settings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

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


def train_bot(folder: BotFolder, data: Sequence[Path] = (), only: bool = False, promote: bool = True,
              progress: bool = True, say: Callable[[str], Any] = print):
    """`run_bot.py train`: the `data` files added to the bot's example store (kept for every later train and
    retrain) with intents.yaml's, and a new version trained on the store, serving unless `promote` is off.
    `only`: exactly the `data` files, in a scratch store (duplicates and conflicts dropped as the bot's store
    drops them), the bot's store untouched. Says what happened; returns the pipeline's TrainResult."""
    from bot.database import open_bot_database
    from core.sqlite import connect
    from training.dataset import read_examples
    from training.pipeline import train as train_model
    from training.registry import ModelRegistry
    from training.store import ExampleStore

    settings = folder.settings
    if only and not data:
        raise ValueError("--only trains on exactly the --data files: give at least one")
    store = ExampleStore(connect(None) if only else open_bot_database(settings))
    if not only:
        added = store.add(folder.seed_examples())
        say(f"intents.yaml: {added.added} new examples, {added.duplicates} already stored")
    for file in data:
        loaded = read_examples(file)
        for warning in loaded.warnings:
            say(f"warning: {warning}")
        result = store.add(loaded.examples)
        say(f"{file}: {len(loaded.examples)} rows, {result.added} new examples, {result.duplicates} duplicates "
            f"skipped ({len(result.conflicts)} of them with a conflicting label: the first label stored is kept)")
        for conflict in result.conflicts[:5]:
            say(f"  conflict: {conflict}")
    if only:
        say("training on exactly these files (the bot's example store is not used or changed)")
    train_cfg = settings.train if only else train_settings(folder, store.db, say)
    result = train_model(store.examples(), train_cfg, ModelRegistry(settings.models_path), progress=progress,
                         promote=promote)
    for warning in result.warnings:
        say(f"warning: {warning}")
    say("\n" + result.summary())
    say(("serving it now" if promote else "not promoted") + f"; files in {result.path}")
    return result


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
