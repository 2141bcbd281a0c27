"""Calibrated confidence: temperature scaling, the answer threshold and the ambiguity margin.

The threshold must hold up on out-of-scope traffic, which in-scope validation data never shows.
Without real out-of-scope examples we simulate them by leaving intents out: for a validation
example of intent k, the model's distribution with k removed is what it would say about a
message from an intent it was never taught. Real out-of-scope examples replace the simulation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Calibration:
    temperature: float
    threshold: float  # answer when the calibrated top probability is at least this
    margin: float  # ask which one when the top two probabilities are closer than this
    target_precision: float
    oos_evidence: str  # "held-out intents (simulated)", "out-of-scope examples" or "none"
    expected_precision: float  # precision of answered messages at the threshold, on validation
    expected_coverage: float  # share of in-scope validation messages answered

    def to_dict(self) -> dict:
        return asdict(self)


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature minimising validation NLL (1.0 without validation data)."""
    if len(targets) == 0:
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def leave_intent_out_confidence(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Top probability after removing each example's true intent and renormalising."""
    rest = probs.clone()
    rest[torch.arange(len(targets)), targets] = 0.0
    return rest.max(-1).values / rest.sum(-1).clamp(min=1e-9)


def choose_threshold(
    in_conf: torch.Tensor, in_correct: torch.Tensor, oos_conf: torch.Tensor, oos_share: float, target: float
) -> tuple[float, float, float]:
    """Lowest threshold whose answered precision reaches `target` → (threshold, precision, coverage).

    Precision counts answered out-of-scope messages as errors, weighted so that they make up
    `oos_share` of the traffic. If no threshold reaches the target, the most precise one is used.
    """
    n_in, n_oos = len(in_conf), len(oos_conf)
    w_in = (1 - oos_share) / max(n_in, 1)
    w_oos = oos_share / n_oos if n_oos else 0.0
    best = (1.0, 0.0, 0.0)
    best_precision = -1.0
    for t in torch.linspace(0.0, 1.0, 201).tolist():
        answered = in_conf >= t
        right = (answered & in_correct).sum().item() * w_in
        wrong = (answered & ~in_correct).sum().item() * w_in + (oos_conf >= t).sum().item() * w_oos
        if right + wrong == 0:
            continue
        precision = right / (right + wrong)
        coverage = answered.float().mean().item()
        if precision >= target:
            return t, precision, coverage
        if precision > best_precision:
            best, best_precision = (t, precision, coverage), precision
    return best


def choose_margin(probs: torch.Tensor, targets: torch.Tensor, coin_flip: float = 0.6) -> float:
    """Largest gap between the top two below which the top intent is right at most `coin_flip` of the time.

    Below it the model is guessing between two intents, so asking the customer beats answering.
    """
    if len(targets) == 0 or probs.shape[1] < 2:
        return 0.1
    top2 = probs.topk(2, dim=-1)
    gap = top2.values[:, 0] - top2.values[:, 1]
    correct = top2.indices[:, 0] == targets
    margin = 0.05
    for m in torch.linspace(0.05, 0.4, 36).tolist():
        close = gap < m
        if close.sum() >= 3 and correct[close].float().mean().item() <= coin_flip:
            margin = m
    return round(margin, 3)


def calibrate(
    logits: torch.Tensor, targets: torch.Tensor, target_precision: float, oos_share: float,
    oos_logits: torch.Tensor | None = None,
) -> Calibration:
    """Fit temperature, threshold and margin on validation logits (+ real out-of-scope logits if any)."""
    temperature = fit_temperature(logits, targets)
    if len(targets) == 0:
        return Calibration(temperature, 0.5, 0.1, target_precision, "none", 0.0, 0.0)
    probs = (logits / temperature).softmax(-1)
    conf, pred = probs.max(-1)
    if oos_logits is not None and len(oos_logits):
        oos_conf = (oos_logits / temperature).softmax(-1).max(-1).values
        evidence = "out-of-scope examples"
    else:
        oos_conf = leave_intent_out_confidence(probs, targets)
        evidence = "held-out intents (simulated)"
    threshold, precision, coverage = choose_threshold(conf, pred == targets, oos_conf, oos_share, target_precision)
    margin = choose_margin(probs, targets)
    return Calibration(temperature, round(threshold, 3), margin, target_precision, evidence, precision, coverage)
