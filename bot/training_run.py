"""Training a bot's intent model: its train settings with what the bot's own traffic has measured
(`train_settings`), `train_bot` (`run_bot.py train`), `prepare_model` (train a version unless the serving one already
has this data) and `prepare_bot` (the demo's model and knowledge base). `run_bot.py train`, `demo` and `retrain`
(bot.retraining) all train with these settings."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from bot.folder.bot_folder import EVALUATION_FILE, BotFolder


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

    settings = folder.settings
    start = time.perf_counter()
    say(f"preparing {folder.path} in {settings.state_path} ...")
    db = open_bot_database(settings)
    try:
        version = prepare_model(folder, db)
    finally:
        db.close()
    say(f"  intent model: {Path(version).name} ({time.perf_counter() - start:.0f} s)")
    if folder.knowledge_dir.is_dir():
        report = ingest_knowledge(folder, [folder.knowledge_dir], remove_missing=True)
        say("  " + report.summary().replace("\n", "\n  "))
    say(f"  ready in {time.perf_counter() - start:.0f} s")


def ingest_knowledge(folder: BotFolder, paths: Sequence[Path], remove_missing: bool, progress: bool = False):
    """Ingest help articles into the bot's knowledge base (`kb sync` also removes what is gone from `paths`), the
    base tuning itself with the answers reviewers confirmed as well as its own questions."""
    from bot.database import open_bot_database
    from bot.review.store import confirmed_answers
    from knowledge.base import KnowledgeBase

    settings = folder.settings
    db = open_bot_database(settings)
    try:
        confirmed = confirmed_answers(db)
    finally:
        db.close()
    kb = KnowledgeBase.open(settings.database_location, settings.index_path, settings.knowledge)
    try:
        return (kb.sync if remove_missing else kb.add)(paths, progress=progress, confirmed=confirmed)
    finally:
        kb.close()


def model_version(folder: BotFolder, version: str | None) -> Path:
    """The folder of model `version` (None: the serving one); a clear error when the bot has none."""
    from training.registry import ModelRegistry

    registry = ModelRegistry(folder.settings.models_path)
    path = registry.path(version) if version else registry.current_path()
    if path is None:
        raise FileNotFoundError(f"no model version for {folder.path}: run `python run_bot.py train --bot {folder.path}` first")
    return path


@dataclass(frozen=True)
class Evaluation:
    """What `run_bot.py evaluate` reports: the summary, where the reports went, and the data's warnings."""

    summary: str
    json_path: Path
    markdown_path: Path
    predictions: int
    warnings: tuple[str, ...]


def evaluate_bot(folder: BotFolder, path: Path, data: Path | None = None, out: Path | None = None,
                 predictions_file: Path | None = None) -> Evaluation:
    """Evaluate model version `path` on `data` (default: the bot folder's evaluation.csv, else the stored test
    split); writes the JSON and Markdown reports (and one CSV row per message when asked)."""
    from training.classifier import IntentClassifier
    from training.evaluate import evaluate, markdown, prediction_rows, write_predictions, write_report

    classifier = IntentClassifier.load(path, quantize=folder.settings.train.quantize)
    examples, warnings = _evaluation_examples(folder, data)
    predictions: list = []
    oos_label = folder.settings.train.oos_label
    floor = folder.settings.server.clarify_floor
    result = evaluate(classifier, examples, oos_label, predictions=predictions, floor=floor)
    result["model_version"] = classifier.version
    result["score"] = classifier.score.name
    json_path, md_path = write_report(result, out or path)
    if predictions_file:
        write_predictions(prediction_rows(examples, predictions, oos_label, classifier.threshold, floor),
                          predictions_file)
    summary = markdown(result).split("\n## Per intent")[0]
    expected = "\n".join(line for line in (knowledge_expectation(folder), memory_expectation(folder)) if line)
    return Evaluation(summary + (f"\n\n{expected}" if expected else ""), json_path, md_path, len(predictions),
                      tuple(warnings))


def knowledge_expectation(folder: BotFolder) -> str:
    """What the bot's knowledge base expects of its confident answers (relevance.Tuning.expected), or "" when it
    has none synced or its threshold is pinned."""
    from knowledge.base import KnowledgeBase

    s = folder.settings
    if not folder.knowledge_dir.is_dir() or s.knowledge.min_relevance:
        return ""
    kb = KnowledgeBase.open(s.database_location, s.index_path, s.knowledge)
    try:
        tuned = kb.calibration.tuning if kb.calibration else None
        threshold = kb.threshold
    finally:
        kb.close()
    return f"knowledge base: answer threshold {threshold:.3f}, {tuned.expected()}" if tuned and tuned.answers else ""


def memory_expectation(folder: BotFolder) -> str:
    """What the memory of reviewed answers would answer (its fit, bot.review.memory), or "" when it is off or
    empty. Builds it as the server does: embeds every reviewed message."""
    from bot.database import open_bot_database
    from bot.review.memory import memory_of, settled_state
    from knowledge.base import KnowledgeBase
    from training.store import ExampleStore

    s = folder.settings
    if not s.review.memory:
        return ""
    db = open_bot_database(s)
    try:
        if not settled_state(ExampleStore(db))[0]:
            return ""
    finally:
        db.close()
    kb = KnowledgeBase.open(s.database_location, s.index_path, s.knowledge)
    try:
        memory = memory_of(folder, kb)
    finally:
        kb.close()
    return f"memory of reviewed answers: {len(memory)} messages, {memory.describe(s.review.memory_precision)}"


def _evaluation_examples(folder: BotFolder, data: Path | None) -> tuple[list, list[str]]:
    from bot.database import open_bot_database
    from training.dataset import read_examples
    from training.store import ExampleStore

    file = data or (folder.path / EVALUATION_FILE)
    if data or file.is_file():
        loaded = read_examples(file)
        return loaded.examples, list(loaded.warnings)
    examples = ExampleStore(open_bot_database(folder.settings)).examples(split="test")
    if not examples:
        raise FileNotFoundError(f"no evaluation data: give --data FILE, add {file}, or store examples with split 'test'")
    return examples, []


def replay_conversations(folder: BotFolder, version: str | None, file: Path, out: Path | None):
    """`evaluate --conversations`: replay the conversation tests through the router; returns the result and
    where its report (conversations.json) was written."""
    from bot.dialogue.replay import folder_knowledge, load_conversations, replay_folder
    from training.classifier import IntentClassifier

    path = model_version(folder, version)
    classifier = IntentClassifier.load(path, quantize=folder.settings.train.quantize)
    file = file if file.is_absolute() or file.exists() else folder.path / file
    result = replay_folder(folder, classifier, folder_knowledge(folder), load_conversations(file))
    return result, result.write(Path(out or path))


@dataclass(frozen=True)
class Recalibration:
    """A version refitted by `run_bot.py calibrate`: from which, to which, the calibration before and after."""

    source: Path
    version: str
    before: dict
    calibration: Any  # training.calibrate.Calibration
    reviewed: int | None  # reviewed messages the out-of-scope share came from ("reviews"), else None


def recalibrate_bot(folder: BotFolder, path: Path, oos_file: Path | None, oos_share: str | None,
                    promote: bool) -> Recalibration:
    """Refit version `path`'s threshold and margin (new settings, out-of-scope examples, or the share of reviewed
    messages marked out of scope when `oos_share` is "reviews") into a new version, served when `promote`."""
    from bot.database import open_bot_database
    from training.dataset import read_messages
    from training.pipeline import recalibrate, reviewed_oos_share, write_recalibrated
    from training.registry import ModelRegistry
    from training.store import ExampleStore

    settings = folder.settings.train
    share, reviewed = None, None
    if oos_share == "reviews":
        share, reviewed = reviewed_oos_share(ExampleStore(open_bot_database(folder.settings)).examples(), settings.oos_label)
        if share is None:
            raise ValueError(f"only {reviewed} reviewed messages: too few to estimate the out-of-scope share "
                             "(review more, or give --oos-share 0.5)")
    elif oos_share is not None:
        share = float(oos_share)
        if not 0 <= share < 1:
            raise ValueError(f"--oos-share {oos_share}: a share from 0 to below 1, or 'reviews'")
    oos = read_messages(oos_file, settings.oos_label) if oos_file else []
    calibration, tensors = recalibrate(path, settings, oos, share)
    registry = ModelRegistry(folder.settings.models_path)
    version = write_recalibrated(path, registry, calibration, tensors, settings, extra_oos=len(oos))
    if promote:
        registry.promote(version)
    before = json.loads((path / "calibration.json").read_text())
    return Recalibration(path, version, before, calibration, reviewed)
