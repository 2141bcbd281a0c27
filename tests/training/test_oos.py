"""Known answers for the out-of-scope scores on synthetic clusters, the clarify bound, and a version's round trip."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from training.calibrate import calibrate, choose_margin
from training.oos import FeatureStats, OOSScore, auroc, parts_of, raw_score

DIM, CLASSES = 16, 3


def _clusters(n=60, spread=0.4, seed=0):
    """Three tight clusters on the unit sphere (along the first three axes); logits as a linear head would give."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(DIM)[:CLASSES]
    targets = torch.arange(CLASSES).repeat_interleave(n)
    features = F.normalize(centres[targets] + spread * torch.randn(len(targets), DIM, generator=g), dim=-1)
    return features, targets, centres


def _logits(features, centres):
    return 8 * features @ centres.T


@pytest.mark.parametrize("part", ["mahalanobis", "knn", "nearest", "max_prob", "energy"])
def test_a_point_at_a_class_mean_scores_in_scope_and_a_far_one_does_not(part):
    features, targets, centres = _clusters()
    stats = FeatureStats.fit(features, targets, CLASSES)
    # far: a direction no class lies in, with the logits a head gives it (all near zero)
    far = F.normalize(torch.eye(DIM)[DIM - 1 : DIM] + 0.01, dim=-1)  # a direction no class lies in
    at_mean = F.normalize(stats.means[1:2], dim=-1)
    near, away = (raw_score(part, x, _logits(x, centres), 1.0, stats).item() for x in (at_mean, far))
    assert near > away


@pytest.mark.parametrize("score", ["mahalanobis", "knn", "mahalanobis+max_prob", "energy"])
def test_fitted_threshold_refuses_far_points_and_answers_class_means(score):
    features, targets, centres = _clusters()
    train, val = slice(0, None, 2), slice(1, None, 2)
    stats = FeatureStats.fit(features[train], targets[train], CLASSES)
    logits = _logits(features, centres)
    cal = calibrate(logits[val], targets[val], target_precision=0.9, oos_share=0.4, score=score,
                    features=features[val], stats=stats)
    scorer = OOSScore.from_dict(cal.score)
    assert scorer.name == score and cal.oos_evidence == "held-out intents (simulated)"
    # far from every class: the side of the sphere opposite all three (further than they are from each other)
    away = -torch.eye(DIM)[:CLASSES].sum(0, keepdim=True)
    far = F.normalize(away + 0.3 * torch.randn(50, DIM, generator=torch.Generator().manual_seed(3)), dim=-1)
    means = F.normalize(stats.means, dim=-1)
    far_scores = scorer(far, _logits(far, centres), cal.temperature, stats)
    mean_scores = scorer(means, _logits(means, centres), cal.temperature, stats)
    assert (far_scores < cal.score_threshold).all()
    assert (mean_scores >= cal.score_threshold).all()


def test_held_out_score_is_what_the_message_gets_without_its_own_intent():
    features, targets, centres = _clusters()
    stats = FeatureStats.fit(features, targets, CLASSES)
    # (not max_prob: renormalised over the two intents left, its top is at least 0.5 however far the message is)
    for part in ("mahalanobis", "knn", "nearest", "energy"):
        seen = raw_score(part, features, _logits(features, centres), 1.0, stats)
        unseen = raw_score(part, features, _logits(features, centres), 1.0, stats, exclude=targets)
        assert (unseen < seen).float().mean() > 0.95, part
    # nearest: the cosine to the closest training example (of another intent when its own is excluded)
    sims = features[:1] @ stats.bank.T
    assert raw_score("nearest", features[:1], None, 1.0, stats).item() == pytest.approx(sims.max().item())
    other = sims[0][stats.bank_labels != targets[0]].max().item()
    assert raw_score("nearest", features[:1], None, 1.0, stats, exclude=targets[:1]).item() == pytest.approx(other)
    # Mahalanobis with its own class excluded is the distance to the nearest other mean
    x = features[:1]
    dist = torch.stack([((x - m) @ stats.precision @ (x - m).T).squeeze() for m in stats.means])
    held = raw_score("mahalanobis", x, _logits(x, centres), 1.0, stats, exclude=targets[:1])
    assert held.item() == pytest.approx(-dist[1:].min().item() / DIM, rel=1e-3)


def test_combination_standardises_its_parts_on_in_scope_messages():
    features, targets, centres = _clusters()
    stats = FeatureStats.fit(features, targets, CLASSES)
    logits = _logits(features, centres)
    score = OOSScore.fit("mahalanobis+knn", features, logits, 1.0, stats)
    assert set(score.loc) == {"mahalanobis", "knn"}
    values = score(features, logits, 1.0, stats)
    assert abs(values.mean().item()) < 1e-4  # each part has mean 0 on the messages it was fitted on
    assert OOSScore.from_dict(json.loads(json.dumps(score.to_dict()))).loc == score.loc


def test_unknown_score_names_are_refused():
    assert parts_of("knn+max_prob") == ["knn", "max_prob"]
    with pytest.raises(ValueError, match="unknown out-of-scope score"):
        parts_of("mahalanobis+cosine")


def test_auroc_known_answers():
    assert auroc([3, 4, 5], [0, 1]) == 1.0
    assert auroc([0, 1], [3, 4]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    assert auroc([1, 3], [2]) == 0.5
    assert auroc([1, 2], []) is None


def _tempting(n=1000, seed=0):
    """A validation set that tempts a wide margin: 40 % of messages have two intents 0.3 apart with the top
    one wrong one time in four; among the rest, a few close calls (gap < 0.05) whose top one is usually wrong."""
    g = torch.Generator().manual_seed(seed)
    classes = 6
    probs = torch.zeros(n, classes)
    targets = torch.zeros(n, dtype=torch.long)
    for i in range(n):
        a, b = torch.randperm(classes, generator=g)[:2].tolist()
        if i < 0.4 * n:
            probs[i, a], probs[i, b] = 0.6, 0.3
            targets[i] = a if i % 4 else b
        elif i < 0.45 * n:
            probs[i, a], probs[i, b] = 0.48, 0.46
            targets[i] = b if i % 5 else a  # top wrong 4 times in 5, the right one always offered
        else:
            probs[i, a], probs[i, b] = 0.95, 0.01
            targets[i] = a
    probs = probs + 1e-4
    return probs / probs.sum(-1, keepdim=True), targets


def test_margin_stays_within_the_clarify_share_on_a_set_that_tempts_a_wide_one():
    probs, targets = _tempting()
    answered = torch.ones(len(targets), dtype=torch.bool)
    top2 = probs.topk(2, dim=-1).values
    gap = top2[:, 0] - top2[:, 1]
    margin = choose_margin(probs, targets, answered, 0.5, max_share=0.08)
    asked = (gap < margin).float().mean().item()
    assert 0 < margin and asked <= 0.08
    # the close calls are worth a question and are asked; the 0.3 gaps (right 3 times in 4) are not
    assert asked == pytest.approx(0.05, abs=0.005)
    assert choose_margin(probs, targets, answered, 0.5, max_share=0.5) < 0.3  # even unbounded
    # the old rule (widest margin at which the top one is right at most 60 % of the time) asked 45 %
    assert ((gap < 0.4).float().mean().item()) > 0.4


def test_margin_is_zero_when_no_question_pays():
    probs, targets = _tempting()
    right = probs.argmax(-1)  # every top intent right: a question is always needless
    assert choose_margin(probs, right, torch.ones(len(right), dtype=torch.bool), 0.5, max_share=0.5) == 0.0


def test_messages_the_score_refuses_are_never_asked_about():
    """The router offers no intents to a message the out-of-scope score refuses, so the margin is fitted on the
    answered ones only: the same close calls, refused, buy no question."""
    probs, targets = _tempting()
    assert choose_margin(probs, targets, torch.ones(len(targets), dtype=torch.bool), 0.5, max_share=0.08) > 0.02
    refused = torch.zeros(len(targets), dtype=torch.bool)  # the score refuses every message
    assert choose_margin(probs, targets, refused, 0.5, max_share=0.08) == 0.0


def test_calibration_reports_clarify_figures_within_the_bound():
    probs, targets = _tempting()
    cal = calibrate(probs.log(), targets, target_precision=0.5, oos_share=0.0, max_clarify_share=0.08)
    assert 0 < cal.clarify["share"] <= 0.08 and cal.clarify["right_among_choices"] == 1.0


ROUND_TRIP = "mahalanobis+knn"


@pytest.fixture(scope="module")
def three_intents_version(tiny_bert, tmp_path_factory):
    """A version trained on three intents (with a validation split) scored by ROUND_TRIP."""
    from training.pipeline import train
    from training.registry import ModelRegistry
    from training.settings import TrainSettings
    from training.store import Example

    words = {"track": "parcel package delivery", "refund": "refund money back", "login": "password login account"}
    examples = [Example(f"{w} {i}", intent) for intent, ws in words.items() for i, w in enumerate(ws.split() * 3)]
    settings = TrainSettings(base_model=str(tiny_bert), onnx=False, batch_size=8, epochs=6, min_steps=0, encoder_lr=1e-3,
                             head_lr=5e-2, patience=6, seed=1, oos_score=ROUND_TRIP,
                             target_precision=0.5, val_fraction=0.4)  # 6 validation messages: enough for 50 %
    return train(examples, settings, ModelRegistry(tmp_path_factory.mktemp("scored")), progress=False).path


def test_saved_version_round_trips_its_score_parameters(three_intents_version):
    from training.classifier import IntentClassifier
    from training.oos import load_tensors
    from training.pipeline import recalibrate
    from training.settings import TrainSettings

    path = three_intents_version
    settings = TrainSettings(**json.loads((path / "settings.json").read_text()))
    saved = json.loads((path / "calibration.json").read_text())
    assert saved["score"]["name"] == ROUND_TRIP and set(saved["score"]["loc"]) == {"mahalanobis", "knn"}
    first, second = IntentClassifier.load(path), IntentClassifier.load(path)
    assert first.score.to_dict() == saved["score"] and first.score_threshold == saved["score_threshold"]
    assert torch.equal(first.stats.precision, second.stats.precision)
    texts = ["parcel 1", "pizza recipe tonight", "refund 2"]
    a, b = first.predict(texts), second.predict(texts)
    assert a == b and all(p.oos_score is not None for p in a)
    # the thresholds refit from the saved validation outputs come out as when trained
    again, tensors = recalibrate(path, settings)
    assert again.to_dict() == saved
    assert set(load_tensors(path)) >= {"means", "precision", "bank", "val_logits", "val_features"}


def test_typo_noise_is_reproducible_and_augments_a_share_of_the_examples():
    import random

    from training.noise import augment, neighbours, noised, typo
    from training.store import Example

    texts = ["how do I cancel my order please", "I can't log in to my account"]
    assert noised(texts, seed=3) == noised(texts, seed=3) != texts
    assert "'" not in noised(texts, seed=3)[1]  # apostrophes go
    assert set(neighbours("s")) == set("qweadzxc") and neighbours("1") == ""
    assert typo("12 34", random.Random(0)) == "12 34"  # nothing to misspell
    examples = [Example(f"where is my parcel number {i}", "track") for i in range(20)]
    half = augment(examples, 0.5, seed=1)
    assert 8 <= len(half) <= 10 and all(e.intent == "track" and e.label_method == "typo-augmented" for e in half)
    assert len(augment(examples, 2.0, seed=1)) > 30 and augment(examples, 0.5, seed=1) == half


def test_typo_augmentation_trains_on_noised_copies_beside_the_examples(tiny_settings, tmp_path):
    from dataclasses import replace

    from training.pipeline import train
    from training.registry import ModelRegistry
    from training.store import Example

    words = {"track": "parcel package delivery", "refund": "refund money back", "login": "password login account"}
    examples = [Example(f"{w} {i}", intent) for intent, ws in words.items() for i, w in enumerate(ws.split() * 3)]
    plain = train(examples, tiny_settings, ModelRegistry(tmp_path / "a"), progress=False).metrics["examples"]
    noisy = train(examples, replace(tiny_settings, typo_augment=1.0), ModelRegistry(tmp_path / "b"),
                  progress=False).metrics["examples"]
    assert noisy["validation"] == plain["validation"]  # validation stays as written
    assert plain["train"] < noisy["train"] <= 2 * plain["train"]


def test_a_version_from_before_the_scores_still_serves_on_its_top_probability(three_intents_version, tmp_path):
    import shutil

    from training.classifier import IntentClassifier
    from training.oos import STATS_FILE
    from training.pipeline import recalibrate
    from training.settings import TrainSettings

    old = tmp_path / "old"
    shutil.copytree(three_intents_version, old)
    (old / STATS_FILE).unlink()
    calibration = json.loads((old / "calibration.json").read_text())
    legacy = {k: calibration[k] for k in ("temperature", "threshold", "margin", "target_precision", "oos_evidence",
                                          "expected_precision", "expected_coverage")}
    (old / "calibration.json").write_text(json.dumps({**legacy, "threshold": 0.6}))
    classifier = IntentClassifier.load(old)
    assert classifier.legacy and classifier.score.name == "max_prob" and classifier.stats is None
    for p in classifier.predict(["parcel 1", "pizza recipe tonight", "refund 2"]):
        assert p.unknown == (p.confidence < 0.6) and p.oos_score == pytest.approx(p.confidence, abs=1e-4)
    with pytest.raises(ValueError, match="predates out-of-scope scores"):
        recalibrate(old, TrainSettings())


def test_ignored_clarifying_questions_shrink_the_share_a_margin_may_ask():
    from training.pipeline import answered_clarifications
    from training.settings import TrainSettings

    settings = TrainSettings(max_clarify_share=0.08)
    assert answered_clarifications(settings, 10, 2) == (settings, None)  # too few questions to judge
    assert answered_clarifications(settings, 100, 100)[0] == settings  # all answered: the bound stays
    bounded, note = answered_clarifications(settings, 100, 25)
    assert bounded.max_clarify_share == pytest.approx(0.02) and "25 of 100" in note
