"""Serving a model version: `IntentClassifier.load(path).predict(texts)` with calibrated confidence."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

LABELS_FILE, CALIBRATION_FILE = "labels.json", "calibration.json"
STATS_NAME = "oos.safetensors"  # training.oos.STATS_FILE (not imported here: that module imports torch)


@dataclass(frozen=True)
class Prediction:
    intent: str | None  # top intent, or None when unknown
    confidence: float  # calibrated probability of the top intent
    top: list[tuple[str, float]]  # top-k (intent, calibrated probability), best first
    unknown: bool  # out-of-scope score below the model's answer threshold
    ambiguous: bool  # worth asking which: top two closer than the margin (and together above the threshold)
    oos_score: float | None = None  # the model's out-of-scope score (training.oos; higher = more in scope)


class Classifier(Protocol):
    version: str

    def predict(self, texts: Sequence[str], k: int = 3) -> list[Prediction]: ...


class IntentClassifier:
    """A loaded model version: tokenizer, network, labels and calibration."""

    def __init__(self, model, tokenizer, labels: list[str], calibration: dict, version: str, max_length: int = 64,
                 stats=None):
        from training.oos import OOSScore

        self._model, self.tokenizer, self.labels = model, tokenizer, labels
        self._load_model = None  # set by load() when the network is read only if PyTorch is asked for
        self._model_lock = threading.Lock()
        self.temperature = float(calibration["temperature"])
        self.threshold = float(calibration["threshold"])  # on the calibrated top probability (top two together)
        self.margin = float(calibration["margin"])
        # versions from before the out-of-scope score: the top probability, and its old clarify rule
        self.legacy = "score" not in calibration
        self.score = OOSScore.from_dict(calibration.get("score") or {"name": "max_prob"})
        threshold = calibration.get("score_threshold")
        self.score_threshold = self.threshold if threshold is None else float(threshold)
        self.stats = stats  # training.oos.FeatureStats, needed by the distance scores
        if self.score.needs_features and stats is None:
            raise ValueError(f"model version {version}: score {self.score.name} needs its {STATS_NAME}")
        self.version, self.max_length = version, max_length
        self.runtime = None  # training.onnx_runtime.OnnxModel when the version serves through ONNX Runtime
        self.speller = None  # knowledge.spelling.Speller: typos corrected before the model reads a message
        self._tokenizer_lock = threading.Lock()  # fast tokenizers are not safe to share across threads

    @property
    def model(self):
        """The PyTorch network; a version served by ONNX Runtime reads it only when something needs it."""
        with self._model_lock:
            if self._model is None and self._load_model is not None:
                self._model = self._load_model()
            return self._model

    @classmethod
    def load(cls, path: Path, quantize: bool = False, threads: int = 0) -> "IntentClassifier":
        """A saved version, served by the runtime it chose when it was trained (runtime.json: ONNX Runtime
        int8 or fp32), or by PyTorch (`quantize`: PyTorch's dynamic int8). `threads`: ONNX Runtime's
        intra-op threads (0 = its default)."""
        import torch

        from training import onnx_runtime
        from training.model import IntentModel, load_tokenizer
        from knowledge.spelling import Speller

        path = Path(path)
        if not (path / LABELS_FILE).is_file():
            raise FileNotFoundError(f"{path} is not a model version (no {LABELS_FILE})")
        torch.set_num_threads(os.cpu_count() or 1)
        runtime = None if quantize else onnx_runtime.load(path, threads)
        model = None if runtime is not None else IntentModel.load(path)
        if quantize:  # per-channel weights: on BANKING77 -0.3 points against per-tensor's -0.5, same speed
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            model = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig})
        settings = json.loads((path / "settings.json").read_text()) if (path / "settings.json").is_file() else {}
        version = (path / "VERSION").read_text().strip() if (path / "VERSION").is_file() else path.name
        classifier = cls(
            model, load_tokenizer(path), json.loads((path / LABELS_FILE).read_text()),
            json.loads((path / CALIBRATION_FILE).read_text()), version, settings.get("max_length", 64),
            load_stats(path),
        )
        classifier.runtime = runtime
        classifier.speller = Speller.load(path, classifier.tokenizer)
        classifier._load_model = lambda: IntentModel.load(path)
        return classifier

    def outputs(self, texts: Sequence[str]):
        """(pooled normalised features, uncalibrated logits), one row per text (batched forward pass)."""
        import torch

        texts = [self.speller(t) for t in texts] if self.speller is not None else list(texts)
        with self._tokenizer_lock:
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        if self.runtime is not None:
            features, logits = self.runtime.outputs(batch["input_ids"], batch["attention_mask"])
            return features.float(), logits.float()
        with torch.inference_mode():
            features = self.model.embed(batch["input_ids"], batch["attention_mask"])
            return features.float(), self.model.head(features).float()

    def logits(self, texts: Sequence[str]):
        """Uncalibrated logits, one row per text (batched forward pass)."""
        return self.outputs(texts)[1]

    def predict(self, texts: Sequence[str], k: int = 3) -> list[Prediction]:
        if not texts:
            return []
        features, logits = self.outputs(texts)
        return self.decide(logits, k, features)

    def scores(self, logits, features=None):
        """The out-of-scope score of each row (higher = more in scope)."""
        return self.score(features, logits, self.temperature, self.stats)

    def decide(self, logits, k: int = 3, features=None) -> list[Prediction]:
        """Predictions from uncalibrated logits (and features, for distance scores): temperature, score
        threshold and margin applied."""
        probs = (logits / self.temperature).softmax(-1)
        values, indices = probs.topk(min(k, len(self.labels)), dim=-1)
        scores = self.scores(logits, features).tolist()
        return [self._decide(v.tolist(), i.tolist(), s) for v, i, s in zip(values, indices, scores)]

    def _decide(self, values: list[float], indices: list[int], score: float) -> Prediction:
        top = [(self.labels[i], round(p, 4)) for p, i in zip(values, indices)]
        confidence = values[0]
        unknown = score < self.score_threshold
        if self.legacy:
            # unsure which of two: they are closer than the margin, or neither clears the threshold alone
            # while together they do (the customer meant one of them, so asking beats guessing)
            ambiguous = len(values) > 1 and (
                values[0] - values[1] < self.margin or (unknown and values[0] + values[1] >= self.threshold)
            )
        else:  # the router asks only when the top two together clear the threshold as well
            ambiguous = len(values) > 1 and values[0] - values[1] < self.margin
        return Prediction(None if unknown else top[0][0], confidence, top, unknown, ambiguous, round(score, 4))


def load_stats(path: Path):
    """The training-feature statistics saved with a version (None before out-of-scope scores)."""
    from training.oos import FeatureStats, load_tensors

    tensors = load_tensors(path)
    return FeatureStats.from_tensors(tensors) if "means" in tensors else None
