"""Known-answer tests of fine-tuning, saving, loading and predicting with the tiny random BERT."""

from __future__ import annotations

import dataclasses

import json

import pytest

from training.classifier import IntentClassifier
from training.evaluate import evaluate
from training.pipeline import train
from training.registry import ModelRegistry
from training.store import Example

THREE = [
    Example("where is my parcel", "track"),
    Example("i want my money back", "refund"),
    Example("reset my password please", "login"),
]


@pytest.fixture(scope="module")
def three(tiny_bert, tmp_path_factory):
    """One model trained on THREE, shared by the tests that only read it: (result, registry, the classifier
    train() held in memory before it saved the version)."""
    from training.settings import TrainSettings

    settings = TrainSettings(base_model=str(tiny_bert), onnx=False, batch_size=8, epochs=30, min_steps=0, encoder_lr=1e-3,
                             head_lr=5e-2, patience=30, seed=1)
    registry = ModelRegistry(tmp_path_factory.mktemp("three"))
    built, construct = [], IntentClassifier.__init__

    def keep(self, *args, **kwargs):
        construct(self, *args, **kwargs)
        built.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(IntentClassifier, "__init__", keep)
        result = train(THREE, settings, registry, progress=False)
    assert [c.version for c in built] == ["unsaved"]  # the fine-tuned network, its calibration and statistics
    return result, registry, built[0]


def test_overfits_three_examples_to_accuracy_one(three):
    result, *_ = three
    classifier = IntentClassifier.load(result.path)
    predictions = classifier.predict([e.text for e in THREE])
    assert [p.top[0][0] for p in predictions] == ["track", "refund", "login"]
    assert evaluate(classifier, THREE, "out_of_scope")["accuracy"] == 1.0


def test_save_load_round_trip_gives_identical_predictions(three):
    result, _, in_memory = three
    texts = ["where is my parcel", "pizza recipe", "money back for my card", ""]
    loaded = IntentClassifier.load(result.path)
    (features, logits), (loaded_features, loaded_logits) = in_memory.outputs(texts), loaded.outputs(texts)
    assert logits.shape == (4, 3)
    assert loaded_logits.tolist() == logits.tolist() and loaded_features.tolist() == features.tolist()
    assert loaded.predict(texts) == in_memory.predict(texts)


def test_version_folder_holds_everything_a_version_needs(three):
    result, registry, _ = three
    files = {p.name for p in result.path.iterdir()}
    assert {"model.safetensors", "head.safetensors", "labels.json", "calibration.json", "metrics.json",
            "settings.json", "data.json", "VERSION", "tokenizer.json"} <= files
    assert json.loads((result.path / "labels.json").read_text()) == ["login", "refund", "track"]
    assert json.loads((result.path / "settings.json").read_text())["batch_size"] == 8
    assert registry.current_version() == result.version


def test_unknown_below_threshold_and_top_k_sorted(three):
    result, *_ = three
    classifier = IntentClassifier.load(result.path)
    classifier.score_threshold = 1e9  # nothing can clear it
    p = classifier.predict(["where is my parcel"], k=3)[0]
    assert p.unknown and p.intent is None
    assert [prob for _, prob in p.top] == sorted((prob for _, prob in p.top), reverse=True)
    assert abs(sum(prob for _, prob in p.top) - 1.0) < 1e-3
    classifier.score_threshold = -1e9
    assert classifier.predict(["where is my parcel"])[0].intent == "track"


def test_int8_quantised_model_predicts_the_same_intents(three):
    result, *_ = three
    quantised = IntentClassifier.load(result.path, quantize=True)
    assert [p.top[0][0] for p in quantised.predict([e.text for e in THREE])] == ["track", "refund", "login"]
    linear = [m for m in quantised.model.modules() if "Linear" in type(m).__name__]
    assert linear and all(type(m).__module__.startswith("torch.ao.nn.quantized") for m in linear)


def test_validation_split_calibration_and_out_of_scope_evidence(tiny_settings, tmp_path):
    words = {"track": "parcel package delivery", "refund": "refund money back", "login": "password login account"}
    examples = [Example(f"{w} {i}", intent) for intent, ws in words.items() for i, w in enumerate(ws.split() * 3)]
    examples += [Example(t, "out_of_scope") for t in ("weather", "football", "pizza recipe", "a joke")]
    # enough validation messages to estimate a threshold for 50 % precision (5: training.calibrate.validation_needed)
    settings = dataclasses.replace(tiny_settings, target_precision=0.5, val_fraction=0.25)
    result = train(examples, settings, ModelRegistry(tmp_path), progress=False)
    metrics = result.metrics
    assert metrics["examples"]["validation"] >= 5
    assert metrics["examples"]["out_of_scope"] == 4
    assert metrics["calibration"]["oos_evidence"] == "out-of-scope examples"
    labels = json.loads((result.path / "labels.json").read_text())
    assert "out_of_scope" not in labels  # calibration evidence, not an intent
    assert metrics["validation"]["out_of_scope"] == 4


def test_needs_two_intents(tiny_settings, tmp_path):
    with pytest.raises(ValueError, match="at least two intents"):
        train([Example("hello", "greet"), Example("hi", "greet")], tiny_settings, ModelRegistry(tmp_path), progress=False)
    assert ModelRegistry(tmp_path).versions() == []


@pytest.mark.slow
def test_fine_tunes_the_packaged_minilm_for_a_few_steps(tmp_path):
    from training.settings import TrainSettings

    examples = [
        Example(t, intent)
        for intent, texts in {
            "track_order": ["where is my order", "has my parcel shipped yet", "track my package", "when will my delivery arrive"],
            "refund": ["i want a refund", "give me my money back", "how do i get reimbursed", "refund my purchase please"],
            "reset_password": ["i forgot my password", "can't log in to my account", "reset my password", "login not working"],
        }.items()
        for t in texts
    ]
    settings = TrainSettings(epochs=1, min_steps=6, batch_size=4, refit_below=0)
    result = train(examples, settings, ModelRegistry(tmp_path), progress=False)
    classifier = IntentClassifier.load(result.path)
    assert [p.top[0][0] for p in classifier.predict(["where's my parcel?", "money back please", "forgot password"])] == [
        "track_order", "refund", "reset_password"]
    assert result.metrics["history"], "validation ran during fine-tuning"


def test_progress_bars_name_their_stage(tiny_bert, capsys):
    """Two bars in a row on small data: each says what it is (fine-tuning, then the refit on all data)."""
    from training.finetune import finetune
    from training.settings import TrainSettings

    settings = TrainSettings(epochs=1, min_steps=2, batch_size=4, refit_below=1000)
    finetune(THREE * 3, THREE, tiny_bert, settings, progress=True)
    err = capsys.readouterr().err
    assert "fine-tuning" in err and "refit on all data" in err


def test_evaluate_counts_a_refused_message_refused_even_when_its_top_two_are_close():
    from training.classifier import Prediction
    from training.evaluate import decision

    close = [("track", 0.3), ("cancel", 0.28)]
    assert decision(Prediction(None, 0.3, close, True, True), pair_floor=0.5) == "refuse"  # as the router does
    assert decision(Prediction("track", 0.3, close, False, True), pair_floor=0.5) == "clarify"
    assert decision(Prediction("track", 0.9, [("track", 0.9)], False, False)) == "answer"


def test_evaluation_and_router_share_one_rule_for_what_a_question_offers():
    """training.evaluate.offered is the rule; the router's policy applies it with the bot's own filters, and an
    evaluation with the bot's floor counts a question exactly when the router would ask one."""
    from bot.dialogue.policy import ask_between
    from training.classifier import Prediction
    from training.evaluate import decision, offered

    weak_second = Prediction("track", 0.55, [("track", 0.55), ("cancel", 0.08), ("refund", 0.05)], False, True)
    assert offered(weak_second, 0.6, 0.5) == [("track", 0.55), ("cancel", 0.08), ("refund", 0.05)]
    assert offered(weak_second, 0.6, 0.5, floor=0.1) == [] and decision(weak_second, 0.6, floor=0.1) == "answer"
    three = Prediction("track", 0.4, [("track", 0.4), ("greet", 0.35), ("cancel", 0.2)], False, True)
    intents = {"track": 1, "cancel": 1, "greet": 1}
    # small talk second: the top two are not both worth offering, so no question
    assert ask_between(three, intents, 0.5, 0.2, 3, 0.1, "out_of_scope", ("greet",)) == []
    assert [n for n, _ in ask_between(three, intents, 0.5, 0.2, 3, 0.1, "out_of_scope", ())] == ["track", "greet", "cancel"]


def test_a_trained_version_reads_a_typo_as_the_word_it_was_trained_on(tiny_settings, tmp_path):
    import torch

    from training.classifier import IntentClassifier

    words = {"track": "parcel package delivery", "refund": "refund money back", "login": "password login account"}
    examples = [Example(f"{w} {i}", intent) for intent, ws in words.items() for i, w in enumerate(ws.split() * 3)]
    path = train(examples, tiny_settings, ModelRegistry(tmp_path), progress=False).path
    assert json.loads((path / "vocabulary.json").read_text())["parcel"] == 3
    model = IntentClassifier.load(path)
    typo, right = model.outputs(["where is my parcl"]), model.outputs(["where is my parcel"])
    assert all(torch.equal(a, b) for a, b in zip(typo, right))  # the model read the same words
    off = dataclasses.replace(tiny_settings, correct_typos=False)
    assert not (train(examples, off, ModelRegistry(tmp_path / "off"), progress=False).path / "vocabulary.json").exists()
