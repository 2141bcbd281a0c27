"""Known answers for calibration: a known temperature is recovered; the threshold reaches the target."""

from __future__ import annotations

import torch

from training.calibrate import calibrate, choose_threshold, fit_temperature, leave_intent_out_confidence


def _synthetic(n=4000, classes=5, temperature=2.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g) * 4
    targets = torch.multinomial((logits / temperature).softmax(-1), 1, generator=g).squeeze(1)
    return logits, targets


def test_fit_temperature_recovers_the_true_temperature():
    logits, targets = _synthetic(temperature=2.5)
    assert abs(fit_temperature(logits, targets) - 2.5) < 0.25


def test_threshold_reaches_target_precision_on_synthetic_set():
    logits, targets = _synthetic()
    cal = calibrate(logits, targets, target_precision=0.9, oos_share=0.0)
    probs = (logits / cal.temperature).softmax(-1)
    conf, pred = probs.max(-1)
    answered = conf >= cal.threshold
    precision = (pred[answered] == targets[answered]).float().mean().item()
    assert precision >= 0.9
    assert 0 < answered.float().mean().item() < 1  # it had to refuse some, not all
    # a lower threshold would miss the target: the threshold is the lowest that works
    lower = conf >= cal.threshold - 0.05
    assert (pred[lower] == targets[lower]).float().mean().item() < 0.9 + 0.01


def test_out_of_scope_share_raises_the_threshold():
    logits, targets = _synthetic()
    conf, pred = (logits / 2.5).softmax(-1).max(-1)
    oos_conf = torch.rand(1000, generator=torch.Generator().manual_seed(1)) * 0.9
    t_without, *_ = choose_threshold(conf, pred == targets, oos_conf, 0.0, 0.9)
    t_with, *_ = choose_threshold(conf, pred == targets, oos_conf, 0.5, 0.9)
    assert t_with > t_without


def test_leave_intent_out_confidence_renormalises_without_the_true_intent():
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    assert torch.allclose(leave_intent_out_confidence(probs, torch.tensor([0])), torch.tensor([2 / 3]))
