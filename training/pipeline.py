"""Training a new model version end to end: split, fine-tune, calibrate, evaluate, save, promote."""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, replace
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
        from training.calibrate import expectation

        m, c = self.metrics, self.metrics["calibration"]
        processes = f" in {m['processes']} processes" if m.get("processes", 1) > 1 else ""
        lines = [f"model version {self.version}: {m['examples']['train']} training examples, "
                 f"{m['train_seconds']:.0f} s on {m['device']}{processes}"]
        if m["validation"]:
            v = m["validation"]
            lines.append(f"  validation accuracy {100 * v['accuracy']:.1f} %, macro-F1 {100 * v['macro_f1']:.1f} %")
        score = c.get("score", {}).get("name", "max_prob")
        threshold = c.get("score_threshold", c["threshold"])
        lines.append(f"  answers on its own when its out-of-scope score ({score}) >= {threshold:.3f}: {expectation(c)}")
        share = c.get("clarify", {}).get("share")
        lines.append(f"  asks back when the top two are within {c['margin']:.2f}"
                     + (f" (expected for {100 * share:.1f} % of in-scope messages)" if share is not None else ""))
        return "\n".join(lines)


def train(
    examples: Sequence[Example], settings: TrainSettings, registry: ModelRegistry,
    progress: bool = True, promote: bool = True, lineage: dict | None = None,
) -> TrainResult:
    """Fine-tune on `examples` (split 'test' ones are left for evaluation) and save a version.

    `lineage` (retrain: parent version, warm or cold start, examples added since the parent) is kept in data.json.
    """
    from training.classifier import IntentClassifier
    from training.finetune import finetune
    from training.oos import save_tensors

    usable = training_examples(examples, settings)
    in_scope = [e for e in usable if e.intent != settings.oos_label]
    oos = [e for e in usable if e.intent == settings.oos_label]
    check_trainable(in_scope)
    warnings = single_example_warnings(in_scope, "training data") + few_example_warnings(in_scope, "training data")
    base = resolve_model_path(settings.base_model)
    train_part, val_part = calibration_split(in_scope, settings)
    written = train_part  # as customers wrote them (the typo copies below are not): int8's evidence (onnx_runtime)
    if settings.typo_augment:  # noised copies of training examples only: validation stays as customers wrote it
        from training.noise import augment

        train_part = train_part + augment(train_part, settings.typo_augment, settings.seed)
    fit = finetune(train_part, val_part, base, settings, progress=progress)

    scratch = tempfile.TemporaryDirectory()  # ONNX files until the version folder is written
    calibration, stats, tensors = fit_calibration(fit, oos, settings, classify_oos=True)
    runtime = None
    if settings.onnx and not settings.quantize:
        fit, runtime = serving_runtime(fit, val_part, calibration, settings, Path(scratch.name), written)
        if runtime.get("calibrated_on") != "torch":
            calibration, stats, tensors = fit_calibration(fit, oos, settings, classify_oos=True)
    if calibration.expected_precision is None:
        warnings.append(fallback_warning(calibration, len(val_part), settings))
    classifier = IntentClassifier(fit.model, fit.tokenizer, fit.labels, calibration.to_dict(), "unsaved",
                                  settings.max_length, stats["serving"])
    metrics = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "train_seconds": round(fit.seconds, 1),
        "device": fit.device,
        "processes": settings.processes,
        "examples": {"train": len(train_part), "validation": len(val_part), "out_of_scope": len(oos)},
        "history": fit.history,
        # from the validation outputs of the run that did not see them (a small-data refit does)
        "validation": validation_report(classifier, calibration, val_part, oos, tensors, stats, settings)
        if val_part else None,
        "calibration": calibration.to_dict(),
    }
    digest = data_hash(usable)
    with registry.new_version(digest) as folder:
        fit.model.save(folder)
        fit.tokenizer.save_pretrained(folder)
        _write_json(folder / "labels.json", fit.labels)
        _write_json(folder / "calibration.json", calibration.to_dict())
        save_tensors(folder, tensors)
        _write_json(folder / "metrics.json", metrics)
        _write_json(folder / "settings.json", asdict(settings))
        if settings.correct_typos:
            from knowledge.spelling import VOCABULARY_FILE, vocabulary

            _write_json(folder / VOCABULARY_FILE, vocabulary(e.text for e in usable))
        if runtime is not None:
            from training import onnx_runtime

            onnx_runtime.save(runtime, Path(scratch.name), folder)
        _write_json(folder / "data.json", {
            "hash": digest, "examples": len(usable), "intents": len(fit.labels), "base_model": str(base),
            "example_ids": sorted(e.id for e in usable if e.id is not None), **(lineage or {}),
        })
    scratch.cleanup()
    version = registry.written
    if promote:
        registry.promote(version)
        registry.prune(settings.keep_versions)
    log.info("trained model version %s", version)
    return TrainResult(version, registry.path(version), metrics, warnings)


CHOSEN_AS_HARD = ("review", "conversation")  # picked by the review queue or asked back about: harder than traffic


def calibration_split(in_scope: Sequence[Example], settings: TrainSettings) -> tuple[list[Example], list[Example]]:
    """(training, validation). The validation examples are what the answer threshold is fitted on, so they are
    drawn from examples like the bot's traffic: not the reviewed ones (`CHOSEN_AS_HARD`), which the review queue
    chose because the bot was unsure of them — a threshold fitted on those refuses ordinary messages (on BANKING77,
    a third of them: benchmarks/bench_loop.py); reviewed examples all train. Where the other examples are too few
    to fit a threshold (training.calibrate.validation_needed), the validation is drawn from all of them."""
    from training.calibrate import validation_needed

    typical = [e for e in in_scope if e.source not in CHOSEN_AS_HARD]
    train_part, val_part = stratified_split(typical, settings.val_fraction, settings.seed)
    if len(val_part) >= validation_needed(settings.target_precision):
        return train_part + [e for e in in_scope if e.source in CHOSEN_AS_HARD], val_part
    return stratified_split(in_scope, settings.val_fraction, settings.seed)


def fallback_warning(calibration, validation: int, settings: TrainSettings) -> str:
    """What to do about a calibration that is the fallback (training.calibrate.fallback), in a user's words."""
    from training.calibrate import validation_needed

    needed = validation_needed(settings.target_precision)
    return (f"only {validation} validation messages: too few to fit an answer threshold for "
            f"{100 * settings.target_precision:.0f} % precision (that needs {needed}, about "
            f"{round(needed / settings.val_fraction)} labelled examples). Until then the bot answers only messages "
            f"close to one of its examples (similarity {calibration.score_threshold:.2f} or more) and refuses the "
            "rest, and its confidence is not calibrated. Add examples (intents.yaml `examples:`) or import "
            "transcripts (`run_bot.py import`), then train again.")


def serving_runtime(fit, val_part, calibration, settings: TrainSettings, scratch: Path,
                    train_part: Sequence[Example] = ()):
    """Export and measure the ONNX copies (training.onnx_runtime) -> (fit, runtime record). When the model that
    serves is the one the validation outputs came from (no small-data refit), they are replaced by the chosen
    runtime's, so the calibration is fitted on the logits that will serve; after a refit the validation
    examples were trained on, and the calibration stays on the first run's PyTorch outputs. `train_part`: more
    labelled messages the int8 decision compares the copies on."""
    from training import onnx_runtime

    import torch

    texts = [e.text for e in val_part]
    index = {label: i for i, label in enumerate(fit.labels)}
    known = [e for e in train_part if e.intent in index]
    more = ([e.text for e in known], torch.tensor([index[e.intent] for e in known], dtype=torch.long))
    record = onnx_runtime.prepare(fit.model, fit.tokenizer, texts, fit.val_targets, settings.max_length,
                                  settings.max_quantization_drop, calibration.threshold, calibration.temperature,
                                  scratch, more)
    refit = len(fit.bank_targets) != len(fit.fit_targets)
    record["validation_trained_on"] = refit  # a refit model has seen its validation examples: compare, do not quote
    if "logits" in record and not refit:
        fit = replace(fit, val_logits=record["logits"], val_features=record["features"])
        record["calibrated_on"] = record["serve"]
    else:
        record["calibrated_on"] = "torch"
    return fit, record


def fit_calibration(fit, oos: Sequence[Example], settings: TrainSettings, classify_oos: bool = False):
    """Calibration from a fine-tuning run's validation outputs (and the out-of-scope examples, classified by
    the final model) -> (Calibration, {"fit": stats, "serving": stats}, tensors to save with the version).

    The tensors keep the validation outputs, so `recalibrate` can refit the thresholds without training."""
    from training.classifier import IntentClassifier
    from training.oos import FeatureStats

    classes = len(fit.labels)
    fit_stats = FeatureStats.fit(fit.fit_features, fit.fit_targets, classes)
    refit = len(fit.bank_targets) != len(fit.fit_targets)
    serving = FeatureStats.fit(fit.bank_features, fit.bank_targets, classes) if refit else fit_stats
    tensors = {**serving.tensors(), "val_logits": fit.val_logits, "val_features": fit.val_features,
               "val_targets": fit.val_targets}
    if refit:
        tensors.update(fit_stats.tensors("fit_"))
    if classify_oos and oos:
        probe = IntentClassifier(fit.model, fit.tokenizer, fit.labels, {"temperature": 1.0, "threshold": 0.0,
                                 "margin": 0.0}, "unsaved", settings.max_length)
        texts = [e.text for e in oos]
        outs = [probe.outputs(texts[i : i + 64]) for i in range(0, len(texts), 64)]
        import torch

        tensors["oos_features"] = torch.cat([f for f, _ in outs])
        tensors["oos_logits"] = torch.cat([lg for _, lg in outs])
    stats = {"fit": fit_stats, "serving": serving}
    return calibrate_from(tensors, stats, settings), stats, tensors


def calibrate_from(tensors: dict, stats: dict, settings: TrainSettings, oos_share: float | None = None):
    """Fit the calibration on saved validation (and out-of-scope) outputs with these settings."""
    from training.calibrate import calibrate

    return calibrate(
        tensors["val_logits"], tensors["val_targets"], settings.target_precision,
        settings.oos_share if oos_share is None else oos_share, tensors.get("oos_logits"),
        score=settings.oos_score, features=tensors["val_features"], stats=stats["fit"],
        oos_features=tensors.get("oos_features"), oos_stats=stats["serving"],
        max_clarify_share=settings.max_clarify_share,
    )


def validation_report(classifier, calibration, val_part, oos, tensors, stats, settings) -> dict:
    """The evaluation report on the validation examples (+ out-of-scope ones), from their saved outputs."""
    from training.evaluate import report

    fit_view = copy.copy(classifier)
    fit_view.stats = stats["fit"]  # validation features come from the run that did not see them
    predictions = fit_view.decide(tensors["val_logits"], features=tensors["val_features"])
    if oos:
        predictions += classifier.decide(tensors["oos_logits"], features=tensors["oos_features"])
    return report([e.intent for e in val_part] + [e.intent for e in oos], predictions, calibration.score_threshold,
                  settings.oos_label, margin=calibration.margin, pair_floor=calibration.threshold)


def training_examples(examples: Sequence[Example], settings: TrainSettings) -> list[Example]:
    """Labelled examples not held out for testing (out-of-scope ones included, for calibration)."""
    return [e for e in examples if e.intent and e.split != "test"]


def check_trainable(examples: Sequence[Example]) -> None:
    intents = {e.intent for e in examples}
    if len(intents) < 2:
        raise ValueError(f"training needs at least two intents with examples; found {len(intents)}")


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, default=str))


def saved_outputs(path: Path) -> tuple[dict, dict]:
    """A version's saved validation outputs, with its feature statistics fitted again from the saved training
    features (so a refit follows today's estimator) -> (tensors, {"fit", "serving"} stats)."""
    from training.oos import STATS_FILE, FeatureStats, load_tensors

    tensors = load_tensors(path)
    if "val_logits" not in tensors:
        raise ValueError(f"model version {path.name} has no saved validation outputs ({STATS_FILE}): it predates "
                         "out-of-scope scores; train a new version")
    classes = tensors["means"].shape[0]
    serving = FeatureStats.fit(tensors["bank"], tensors["bank_labels"], classes)
    tensors = {**tensors, **serving.tensors()}
    fit = serving
    if "fit_bank" in tensors:
        fit = FeatureStats.fit(tensors["fit_bank"], tensors["fit_bank_labels"], classes)
        tensors.update(fit.tensors("fit_"))
    return tensors, {"fit": fit, "serving": serving}


def recalibrate(path: Path, settings: TrainSettings, oos: Sequence[Example] = (), oos_share: float | None = None):
    """Refit a version's score threshold and margin from its saved validation outputs (no fine-tuning), with
    these settings and, when given, new out-of-scope examples (they replace the saved ones).
    -> (Calibration, tensors to save)."""
    import torch

    from training.classifier import IntentClassifier

    tensors, stats = saved_outputs(path)
    if oos:
        probe = IntentClassifier.load(path)
        texts = [e.text for e in oos]
        outs = [probe.outputs(texts[i : i + 64]) for i in range(0, len(texts), 64)]
        tensors = {**tensors, "oos_features": torch.cat([f for f, _ in outs]),
                   "oos_logits": torch.cat([lg for _, lg in outs])}
    return calibrate_from(tensors, stats, settings, oos_share), tensors


REVIEWED_MINIMUM = 50  # reviewed messages needed before their out-of-scope share stands for the traffic's


def reviewed_oos_share(examples: Sequence[Example], oos_label: str, minimum: int = REVIEWED_MINIMUM):
    """The share of reviewed messages (source `review`) a reviewer marked out of scope -> (share or None when
    fewer than `minimum`, how many were reviewed). The review queue leans towards messages the bot was unsure
    of, so this share is an upper estimate of the traffic's."""
    reviewed = [e for e in examples if e.source == "review" and e.intent]
    if len(reviewed) < minimum:
        return None, len(reviewed)
    share = sum(e.intent == oos_label for e in reviewed) / len(reviewed)
    return min(share, 0.95), len(reviewed)


CLARIFY_MINIMUM = 20  # clarifying questions logged before customers' answers to them move the bound


def answered_clarifications(settings: TrainSettings, asked: int, answered: int,
                            minimum: int = CLARIFY_MINIMUM) -> tuple[TrainSettings, str | None]:
    """Ignored clarifying questions count against asking: once `minimum` questions are logged, the share of
    messages the margin may ask about (`max_clarify_share`) shrinks to the share customers answered by
    picking a choice -> (settings for this training, a note saying so, or None)."""
    if asked < minimum or answered >= asked:
        return settings, None
    bound = settings.max_clarify_share * answered / asked
    note = (f"customers answered {answered} of {asked} clarifying questions: questions bounded at "
            f"{100 * bound:.1f} % of messages (train.max_clarify_share {100 * settings.max_clarify_share:.0f} % "
            f"x {100 * answered / asked:.0f} % answered)")
    return replace(settings, max_clarify_share=bound), note


def write_recalibrated(path: Path, registry: ModelRegistry, calibration, tensors: dict, settings: TrainSettings,
                       extra_oos: int = 0) -> str:
    """A new version with `path`'s weights and tokenizer and the new calibration -> its name."""
    import shutil

    from training.oos import STATS_FILE, save_tensors

    data = json.loads((path / "data.json").read_text())
    metrics = json.loads((path / "metrics.json").read_text())
    skip = {"VERSION", "calibration.json", STATS_FILE, "metrics.json", "data.json", "settings.json", "gate.json",
            "evaluation.json", "evaluation.md"}
    with registry.new_version(data.get("hash", "recalibrated")) as folder:
        for item in path.iterdir():
            if item.name not in skip and item.is_file():
                shutil.copy2(item, folder / item.name)
        save_tensors(folder, tensors)
        _write_json(folder / "calibration.json", calibration.to_dict())
        _write_json(folder / "settings.json", asdict(settings))
        metrics.update(calibration=calibration.to_dict(), recalibrated_from=path.name,
                       recalibrated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if extra_oos:
            metrics.setdefault("examples", {})["out_of_scope"] = extra_oos
        _write_json(folder / "metrics.json", metrics)
        _write_json(folder / "data.json", {**data, "recalibrated_from": path.name})
    return registry.written
