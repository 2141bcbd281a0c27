"""Periodic re-fine-tuning: everything the serving model learned from plus what is new, checked by the gate.

`retrain()` reads as what it does: take the lock, `collect_examples()`, `finetune_candidate()` (warm from the
serving version when that passes the gate, else cold from the base model), `gate.compare()` and
`gate.shadow()`, then `promote_if_better()`. It always runs in its own process (the CLI, or the server's
schedule starting the CLI), never in a web worker. A crash or kill at any point leaves the serving pointer
where it was: a candidate only becomes serving by the registry's atomic rename, after the gate said so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from training import gate
from training.pipeline import TrainResult, train
from training.registry import ModelRegistry
from training.runs import RetrainLock, RunLog
from training.settings import RetrainSettings, TrainSettings
from training.store import Example

log = logging.getLogger("supportbot.retrain")
GATE_FILE = "gate.json"


@dataclass(frozen=True)
class Collected:
    train: list[Example]  # replay: every labelled example not held out, old and new
    gate: list[Example]  # golden set (split test) + newest reviewed examples the serving model never saw
    new: list[Example]  # labelled, trainable, and not in the serving model's data
    counts: dict
    confirmed: dict[int, str]  # logged turn id -> the decision a reviewer gave it (an intent or "unknown")


@dataclass(frozen=True)
class Outcome:
    promoted: bool
    held: bool  # neither promoted nor refused: waits for a person's approval (gate.hold_unconfirmed)
    candidate: str
    start: str  # "warm" or "cold"
    comparison: dict
    run_id: int


def retrain(examples: Sequence[Example], train_settings: TrainSettings, settings: RetrainSettings,
            registry: ModelRegistry, runs: RunLog, lock: Path, shadow_messages: Sequence[tuple[int, str]] = (),
            trigger: str = "cli", progress: bool = True) -> Outcome:
    with RetrainLock(lock):
        run_id = runs.start(trigger)
        try:
            serving_path = registry.current_path()
            data = collect_examples(examples, train_settings, serving_path, settings)
            outcome = _candidate_and_gate(data, train_settings, settings, registry, serving_path, shadow_messages,
                                          progress, run_id)
        except BaseException as e:
            runs.finish(run_id, "failed", detail=f"{type(e).__name__}: {e}")
            raise
        c = outcome.comparison
        runs.finish(run_id, "promoted" if outcome.promoted else "held" if outcome.held else "refused",
                    outcome.candidate, outcome.start, data.counts, "; ".join([c["compared"], *c["reasons"]]))
        return outcome


def collect_examples(examples: Sequence[Example], train_settings: TrainSettings, serving: Path | None,
                     settings: RetrainSettings) -> Collected:
    labelled = [e for e in examples if e.intent]
    seen = set(_data(serving).get("example_ids", [])) if serving else set()
    trainable = [e for e in labelled if e.split != "test"]
    new = [e for e in trainable if e.id not in seen]
    fresh = [e for e in new if e.source == "review" and e.intent != train_settings.oos_label]
    fresh = sorted(fresh, key=lambda e: e.id or 0)[-settings.fresh_examples:] if settings.fresh_examples else []
    golden = [e for e in labelled if e.split == "test"]
    # a golden set carved after the serving model was trained holds examples it learned: they would favour it
    unseen = [e for e in golden if e.id not in seen]
    oos = [e for e in labelled if e.intent == train_settings.oos_label and e.split != "test"]
    gate_examples = unseen + fresh + oos
    counts = {"train": len(trainable), "new": len(new), "golden": len(unseen),
              "golden_trained_on_by_serving": len(golden) - len(unseen), "fresh_reviewed": len(fresh),
              "out_of_scope": len(oos), "new_intents": sorted({e.intent for e in new} - _labels(serving))}
    confirmed = {int(e.provenance[5:]): "unknown" if e.intent == train_settings.oos_label else e.intent
                 for e in labelled if e.source == "review" and e.provenance.startswith("turn:")}
    return Collected(trainable, gate_examples, new, counts, confirmed)


def finetune_candidate(data: Collected, train_settings: TrainSettings, settings: RetrainSettings,
                       registry: ModelRegistry, serving: Path | None, start: str, progress: bool) -> TrainResult:
    """A candidate version (not promoted), warm from the serving version's encoder or cold from the base."""
    s = train_settings
    if start == "warm":
        s = dataclasses.replace(s, base_model=str(serving), epochs=min(s.epochs, settings.warm_epochs))
    lineage = {"parent": serving.name if serving else None, "start": start,
               "added_since_parent": sorted(e.id for e in data.new if e.id is not None)}
    return train(data.train, s, registry, progress=progress, promote=False, lineage=lineage)


def promote_if_better(registry: ModelRegistry, candidate: TrainResult, comparison: dict) -> bool:
    _write_json(candidate.path / GATE_FILE, comparison)
    if comparison["promote"]:
        registry.promote(candidate.version)
    return comparison["promote"]


def _candidate_and_gate(data: Collected, train_settings: TrainSettings, settings: RetrainSettings,
                        registry: ModelRegistry, serving_path: Path | None, shadow_messages, progress: bool,
                        run_id: int) -> Outcome:
    from training.classifier import IntentClassifier

    serving = IntentClassifier.load(serving_path) if serving_path else None
    starts = ["cold"] if serving_path is None or settings.warm_start == "never" else (
        ["warm"] if settings.warm_start == "always" else ["warm", "cold"])
    for start in starts:
        candidate = finetune_candidate(data, train_settings, settings, registry, serving_path, start, progress)
        model = IntentClassifier.load(candidate.path)
        comparison = gate.compare(model, serving, data.gate, train_settings.oos_label, settings)
        comparison.update(start=start, parent=serving_path.name if serving_path else None, counts=data.counts)
        if comparison["promote"] or start == starts[-1]:
            break
        _write_json(candidate.path / GATE_FILE, comparison)  # the refused warm candidate keeps its reasons
        log.info("warm-started candidate %s refused (%s); training from the base model", candidate.version,
                 "; ".join(comparison["reasons"]))
    comparison.update(shadow=gate.shadow(model, serving, shadow_messages), shadow_messages=len(shadow_messages))
    gate.hold_unconfirmed(comparison, data.confirmed, settings.min_gate_examples)
    promoted = promote_if_better(registry, candidate, comparison)
    registry.prune(train_settings.keep_versions)
    return Outcome(promoted, bool(comparison.get("held")), candidate.version, start, comparison, run_id)


def _data(version: Path) -> dict:
    file = version / "data.json"
    return json.loads(file.read_text()) if file.is_file() else {}


def _labels(version: Path | None) -> set[str]:
    file = version / "labels.json" if version else None
    return set(json.loads(file.read_text())) if file and file.is_file() else set()


def _write_json(path: Path, value) -> None:
    """Atomically: a reader sees the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=2, default=str)
    os.replace(tmp, path)
