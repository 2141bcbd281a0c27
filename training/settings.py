"""Settings of intent-model training and calibration."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import refuse_invalid, setting


@dataclass(frozen=True)
class TrainSettings:
    """How the intent classifier is fine-tuned, calibrated and kept."""

    base_model: str = setting("", "Local Hugging Face model folder to fine-tune; empty = the packaged all-MiniLM-L6-v2.")
    max_length: int = setting(64, "Longest message in tokens; longer ones are truncated (support messages are short).")
    batch_size: int = setting(32, "Examples per optimisation step.")
    epochs: int = setting(4, "Most passes over the training data; early stopping may end sooner.")
    min_steps: int = setting(100, "Least optimisation steps, so small bots still train long enough.")
    encoder_lr: float = setting(5e-5, "Peak learning rate of the transformer encoder (AdamW).")
    head_lr: float = setting(2e-3, "Peak learning rate of the classification head.")
    weight_decay: float = setting(0.01, "AdamW weight decay.")
    warmup: float = setting(0.1, "Share of steps with linearly rising learning rate, before linear decay.")
    patience: int = setting(2, "Evaluations without validation improvement before training stops.")
    val_fraction: float = setting(0.1, "Share of each intent held out (stratified) for early stopping and calibration.")
    refit_below: int = setting(
        3000, "With fewer examples than this, train again on all data after validation (k-fold-like use of small data)."
    )
    correct_typos: bool = setting(True, "Before the intent model, a word of 4+ letters that is neither in the training examples nor a word of the tokenizer's vocabulary is replaced by the most frequent training word one edit away (knowledge/spelling.py); saved with the version as vocabulary.json.")
    typo_augment: float = setting(0.0, "Noised copies of this share of the training examples (character typos: swaps, drops, doubled letters, neighbouring keys, no apostrophes; training.noise) are trained on beside them, for misspelt messages; 0 = none, 1 = one copy of each. Measured in benchmarks/bench_oos.py (shot10_typos).")
    class_weighting: bool = setting(True, "Weight the loss by inverse square-root intent frequency (imbalanced intents).")
    seed: int = setting(13, "Random seed for splits, initialisation and shuffling.")
    device: str = setting("auto", "auto (CUDA with mixed precision when present, else CPU), cpu or cuda.")
    processes: int = setting(1, "Data-parallel fine-tuning processes (`train --gpus N` sets this and device=cuda): each takes its share of every batch of batch_size examples and their gradients are summed, so the result is the same as one process's; on CUDA one device per process (NCCL), needing that many devices, on CPU the cores split between them (gloo). 1 = no process group.")
    target_precision: float = setting(0.9, "Precision of answered messages the answer threshold is chosen to reach.")
    oos_share: float = setting(0.4, "Expected share of out-of-scope messages, used when choosing the threshold (live customer-service bots see 42-72 %); once 50 messages are reviewed, `train` and `retrain` use the share reviewers marked out of scope instead.")
    oos_score: str = setting("mahalanobis+max_prob", "Out-of-scope score the answer threshold applies to: max_prob (calibrated top probability), energy (of the logits), mahalanobis (distance to the intents' means, shared covariance), knn (mean cosine to the 10 nearest training examples), nearest (cosine to the nearest one), or a '+' combination of them (standardised, averaged). The default beat max_prob in benchmarks/bench_oos.py (BENCHMARKS.md).")
    max_clarify_share: float = setting(0.08, "Most share of in-scope messages that may get a clarifying question; the margin is fitted within it.")
    oos_label: str = setting("out_of_scope", "Intent name that marks out-of-scope examples (used for calibration only).")
    quantize: bool = setting(False, "Serve a PyTorch dynamically int8-quantised copy of the model (CPU), instead of ONNX Runtime.")
    onnx: bool = setting(True, "Export each new version to ONNX (fp32 and an int8 copy), measure both on the validation examples and serve through ONNX Runtime (training.onnx_runtime); PyTorch when the export fails.")
    max_quantization_drop: float = setting(0.3, "Most points of accuracy (or of simulated out-of-scope refusal) the int8 ONNX copy may lose against fp32 on the labelled messages (validation and training, up to 5000) and still serve; a larger loss refuses int8 only when a sign test over the messages where the two disagree says chance is unlikely (p < 0.05).")
    keep_versions: int = setting(5, "Model versions kept on disk; older ones are pruned (the serving one never).")

    def __post_init__(self) -> None:
        checks = {
            "max_length": 8 <= self.max_length <= 512,
            "batch_size": self.batch_size >= 1,
            "epochs": self.epochs >= 1,
            "min_steps": self.min_steps >= 0,
            "encoder_lr": 0 <= self.encoder_lr < 1,
            "head_lr": 0 < self.head_lr < 1,
            "warmup": 0 <= self.warmup < 1,
            "patience": self.patience >= 1,
            "val_fraction": 0 < self.val_fraction < 0.5,
            "device": self.device in ("auto", "cpu", "cuda"),
            "processes": self.processes >= 1,
            "target_precision": 0 < self.target_precision < 1,
            "oos_share": 0 <= self.oos_share < 1,
            "oos_score": _known_score(self.oos_score),
            "max_clarify_share": 0 <= self.max_clarify_share <= 1,
            "typo_augment": 0 <= self.typo_augment <= 5,
            "keep_versions": self.keep_versions >= 1,
        }
        refuse_invalid(self, "training", checks)


SCORE_PARTS = ("max_prob", "energy", "mahalanobis", "knn", "nearest")  # what training.oos computes


def _known_score(name: str) -> bool:
    parts = [p.strip() for p in name.split("+")]
    return bool(parts) and all(p in SCORE_PARTS for p in parts)


@dataclass(frozen=True)
class RetrainSettings:
    """Periodic re-fine-tuning on everything learned so far plus what is new, gated against the serving model."""

    interval: float = setting(0.0, "Hours between scheduled retrains started by the server (each in its own process); 0 = no schedule (run `run_bot.py retrain`).")
    min_new_examples: int = setting(20, "A scheduled retrain starts only when at least this many labelled examples arrived since the serving model was trained.")
    warm_start: str = setting("auto", "auto: start from the serving version's encoder (fewer epochs) and fall back to the base model when that candidate fails the gate; always; never.")
    warm_epochs: int = setting(2, "Most epochs of a warm-started retrain (the encoder already knows the domain).")
    tolerance: float = setting(0.01, "The candidate is refused if its accuracy on the gate's data is lower than the serving model's by more than this.")
    max_intent_drop: float = setting(0.1, "The candidate is refused if any intent with enough gate examples loses more than this much recall.")
    min_intent_support: int = setting(5, "Gate examples an intent needs before its own drop can refuse a candidate.")
    intent_drop_alpha: float = setting(0.05, "An intent's drop refuses a candidate only when chance is an unlikely explanation: a one-sided sign test over that intent's gate examples that changed between right and wrong (more turned wrong than right) below this p-value. One example of five turning wrong is a 20-point drop, and with dozens of intents some intent always moves by one.")
    min_gate_examples: int = setting(30, "In-scope gate examples (golden set + fresh reviewed) the gate needs to judge a candidate by its accuracy alone (below 30 one example moves accuracy by more than 3 points). With fewer, a candidate that changes an answer the serving model gave confidently to a logged customer message, unconfirmed by a reviewer, is held for approval in the review workspace.")
    fresh_examples: int = setting(500, "Newest reviewed examples the serving model never saw that join the golden set in the gate.")
    shadow_turns: int = setting(1000, "Latest logged customer messages the candidate classifies beside the serving model; turns it would decide differently are listed and flagged for review.")
    timeout: float = setting(3600.0, "Seconds a retrain started by the server (schedule, admin API, review page) may run before it is stopped.")
    golden_share: float = setting(0.1, "Share of each intent's labelled examples `run_bot.py models golden` sets aside (split test) as the gate's golden set.")

    def __post_init__(self) -> None:
        checks = {
            "interval": self.interval >= 0, "min_new_examples": self.min_new_examples >= 0,
            "warm_start": self.warm_start in ("auto", "always", "never"), "warm_epochs": self.warm_epochs >= 1,
            "tolerance": 0 <= self.tolerance < 1, "max_intent_drop": 0 <= self.max_intent_drop <= 1,
            "min_intent_support": self.min_intent_support >= 1,
            "intent_drop_alpha": 0 < self.intent_drop_alpha <= 1, "fresh_examples": self.fresh_examples >= 0,
            "min_gate_examples": self.min_gate_examples >= 0,
            "shadow_turns": self.shadow_turns >= 0, "golden_share": 0 < self.golden_share < 0.5, "timeout": self.timeout > 0,
        }
        refuse_invalid(self, "retrain", checks)
