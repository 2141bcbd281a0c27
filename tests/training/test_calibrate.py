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


def test_too_few_validation_messages_get_the_fallback_not_a_fitted_threshold():
    from training.calibrate import FALLBACK_THRESHOLD, validation_needed

    assert (validation_needed(0.9), validation_needed(0.95), validation_needed(0.5)) == (29, 59, 5)
    # 4 validation messages, all right (the walkthrough bot's case): a fitted temperature went to its bound and
    # the threshold answered everything; now nothing is fitted and the fallback says it cannot estimate
    logits = torch.tensor([[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0], [9.0, 1.0, 0.0]])
    cal = calibrate(logits, torch.tensor([0, 1, 2, 0]), target_precision=0.9, oos_share=0.4)
    assert cal.temperature == 1.0 and cal.margin == 0.0
    assert cal.score["name"] == "nearest" and cal.score_threshold == FALLBACK_THRESHOLD
    assert cal.expected_precision is None and cal.expected_coverage is None
    assert cal.oos_evidence == "too few validation messages to estimate (4, needs 29)"
    logits, targets = _synthetic(n=29)
    assert calibrate(logits, targets, target_precision=0.9, oos_share=0.4).expected_precision is not None


def test_no_temperature_is_fitted_when_every_validation_message_is_right():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [4.0, 1.0]])
    assert fit_temperature(logits, torch.tensor([0, 1, 0])) == 1.0  # not the clamp's 0.05
