"""Training a new model version end to end: split, fine-tune, calibrate, evaluate, save, promote."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from knowledge.embedder import resolve_model_path
from training.dataset import data_hash, few_example_warnings, single_example_warnings, stratified_split
from training.registry import ModelRegistry
from training.settings import TrainSettings
from training.store import Example

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    version: str
    path: Path
    metrics: dict
    warnings: list[str]

    def summary(self) -> str:
        """What a person wants to know when training ends: how good, how sure, how long."""
        m, c = self.metrics, self.metrics["calibration"]
        lines = [f"model version {self.version}: {m['examples']['train']} training examples, "
                 f"{m['train_seconds']:.0f} s on {m['device']}"]
        if m["validation"]:
            v = m["validation"]
            lines.append(f"  validation accuracy {100 * v['accuracy']:.1f} %, macro-F1 {100 * v['macro_f1']:.1f} %")
        lines.append(
            f"  answers on its own when confidence >= {c['threshold']:.2f}: expected coverage "
            f"{100 * c['expected_coverage']:.1f} % at precision {100 * c['expected_precision']:.1f} % "
            f"(out-of-scope evidence: {c['oos_evidence']}); asks back when the top two are within {c['margin']:.2f}")
        return "\n".join(lines)


def train(
    examples: Sequence[Example], settings: TrainSettings, registry: ModelRegistry,
    progress: bool = True, promote: bool = True, lineage: dict | None = None,
) -> TrainResult:
    """Fine-tune on `examples` (split 'test' ones are left for evaluation) and save a version.

    `lineage` (retrain: parent version, warm or cold start, examples added since the parent) is kept in data.json.
    """
    from training.calibrate import calibrate
    from training.classifier import IntentClassifier
    from training.evaluate import report
    from training.finetune import finetune

    usable = training_examples(examples, settings)
    in_scope = [e for e in usable if e.intent != settings.oos_label]
    oos = [e for e in usable if e.intent == settings.oos_label]
    check_trainable(in_scope)
    warnings = single_example_warnings(in_scope, "training data") + few_example_warnings(in_scope, "training data")
    base = resolve_model_path(settings.base_model)
    train_part, val_part = stratified_split(in_scope, settings.val_fraction, settings.seed)
    fit = finetune(train_part, val_part, base, settings, progress=progress)

    oos_logits = None
    calibration = calibrate(fit.val_logits, fit.val_targets, settings.target_precision, settings.oos_share)
    classifier = IntentClassifier(fit.model, fit.tokenizer, fit.labels, calibration.to_dict(), "unsaved", settings.max_length)
    if oos:
        oos_logits = classifier.logits([e.text for e in oos])
        calibration = calibrate(fit.val_logits, fit.val_targets, settings.target_precision, settings.oos_share, oos_logits)
        classifier = IntentClassifier(fit.model, fit.tokenizer, fit.labels, calibration.to_dict(), "unsaved", settings.max_length)
    metrics = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "train_seconds": round(fit.seconds, 1),
        "device": fit.device,
        "examples": {"train": len(train_part), "validation": len(val_part), "out_of_scope": len(oos)},
        "history": fit.history,
        # from the validation logits of the run that did not see them (a small-data refit does)
        "validation": report(
            [e.intent for e in val_part] + [e.intent for e in oos],
            classifier.decide(fit.val_logits) + (classifier.decide(oos_logits) if oos else []),
            calibration.threshold, settings.oos_label,
        ) if val_part else None,
        "calibration": calibration.to_dict(),
    }
    digest = data_hash(usable)
    with registry.new_version(digest) as folder:
        fit.model.save(folder)
        fit.tokenizer.save_pretrained(folder)
        _write_json(folder / "labels.json", fit.labels)
        _write_json(folder / "calibration.json", calibration.to_dict())
        _write_json(folder / "metrics.json", metrics)
        _write_json(folder / "settings.json", asdict(settings))
        _write_json(folder / "data.json", {
            "hash": digest, "examples": len(usable), "intents": len(fit.labels), "base_model": str(base),
            "example_ids": sorted(e.id for e in usable if e.id is not None), **(lineage or {}),
        })
    version = registry.written
    if promote:
        registry.promote(version)
        registry.prune(settings.keep_versions)
    log.info("trained model version %s", version)
    return TrainResult(version, registry.path(version), metrics, warnings)


def training_examples(examples: Sequence[Example], settings: TrainSettings) -> list[Example]:
    """Labelled examples not held out for testing (out-of-scope ones included, for calibration)."""
    return [e for e in examples if e.intent and e.split != "test"]


def check_trainable(examples: Sequence[Example]) -> None:
    intents = {e.intent for e in examples}
    if len(intents) < 2:
        raise ValueError(f"training needs at least two intents with examples; found {len(intents)}")


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, default=str))
