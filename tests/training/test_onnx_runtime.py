"""ONNX Runtime serving: a trained version carries fp32 and int8 ONNX copies, measured, and serves the chosen one."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from training import onnx_runtime
from training.classifier import IntentClassifier
from training.pipeline import train
from training.registry import ModelRegistry
from training.store import Example

WORDS = {"track": "parcel package delivery", "refund": "refund money back", "login": "password login account"}
EXAMPLES = [Example(f"{w} {i}", intent) for intent, ws in WORDS.items() for i, w in enumerate(ws.split() * 3)]


@pytest.fixture(scope="module")
def onnx_version(tiny_bert, tmp_path_factory):
    from training.settings import TrainSettings

    settings = TrainSettings(base_model=str(tiny_bert), onnx=True, batch_size=8, epochs=4, min_steps=0,
                             encoder_lr=1e-3, head_lr=5e-2, refit_below=0, seed=1)
    return settings, train(EXAMPLES, settings, ModelRegistry(tmp_path_factory.mktemp("onnx")), progress=False).path


def test_a_version_serves_the_onnx_copy_it_chose_with_the_same_outputs_as_pytorch(onnx_version, monkeypatch):
    _, path = onnx_version
    record = json.loads((path / onnx_runtime.RUNTIME_FILE).read_text())
    assert record["serve"] in ("onnx-int8", "onnx-fp32") and (path / onnx_runtime.FP32_FILE).is_file()
    assert (path / onnx_runtime.INT8_FILE).is_file()
    assert set(record["validation"]) == {"torch", "onnx-fp32", "onnx-int8"}
    assert record["validation"]["onnx-fp32"]["agreement_with_torch"] == 1.0
    assert record["calibrated_on"] == record["serve"]  # no refit: calibrated on what serves
    assert record["validation_trained_on"] is False

    from training.model import IntentModel

    reads = []
    monkeypatch.setattr(IntentModel, "load", classmethod(lambda cls, p, load=IntentModel.load: reads.append(p) or load(p)))
    served = IntentClassifier.load(path)
    assert served.runtime is not None and served.runtime.path.name == onnx_runtime.FILES[record["serve"]]
    served.predict(["where is my parcel"])
    assert reads == []  # serving through ONNX Runtime never reads the PyTorch weights
    texts = ["where is my parcel", "refund money back please", "login"]
    fp32 = onnx_runtime.OnnxModel(path / onnx_runtime.FP32_FILE)
    served.runtime = fp32
    features, logits = served.outputs(texts)
    served.runtime = None  # PyTorch: its weights read now, on demand
    torch_features, torch_logits = served.outputs(texts)
    assert reads == [path]
    assert (logits - torch_logits).abs().max() < 1e-4 and (features - torch_features).abs().max() < 1e-4
    assert IntentClassifier.load(path, quantize=True).runtime is None  # PyTorch's int8 asked for explicitly


def test_the_int8_decision_is_recorded_with_its_evidence(onnx_version):
    _, path = onnx_version
    record = json.loads((path / onnx_runtime.RUNTIME_FILE).read_text())
    evidence = record["evidence"]
    assert evidence["messages"] == evidence["validation_messages"] + evidence["training_messages"]
    assert evidence["training_messages"] > 0  # training messages count as evidence about quantisation too
    assert {"only_fp32", "only_int8", "p"} <= set(evidence["accuracy"]) and "p" in evidence["oos_refused"]


def outcomes(n, fp32_only, int8_only):
    """Per-message right (or refused) flags of fp32 and int8: both on all but the disagreements."""
    fp32, int8 = torch.ones(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)
    int8[:fp32_only] = False
    fp32[fp32_only:fp32_only + int8_only] = False
    return fp32, int8


def test_one_message_of_noise_does_not_refuse_int8():
    """The demo's old case: int8 refused one simulated out-of-scope message fewer of 28 (a 3.6-point drop)."""
    right, refused = outcomes(28, 0, 0), outcomes(28, 1, 0)
    good, reason, evidence = onnx_runtime.decide_int8(*right, *refused, max_drop=0.3)
    assert good and "not measurably worse on 28" in reason
    assert evidence["oos_refused"]["only_fp32"] == 1 and evidence["oos_refused"]["p"] == 0.5


def test_int8_that_loses_many_more_messages_than_it_gains_is_refused_and_says_why():
    right, refused = outcomes(500, 12, 1), outcomes(500, 0, 0)
    good, reason, evidence = onnx_runtime.decide_int8(*right, *refused, max_drop=0.3)
    assert not good and "measurably worse" in reason and "12 of 500" in reason
    assert evidence["accuracy"]["drop_points"] == 2.2 and evidence["accuracy"]["p"] < 0.05
    good, _, _ = onnx_runtime.decide_int8(*right, *refused, max_drop=5.0)  # a drop allowed by the setting
    assert good


def test_a_failed_export_serves_with_pytorch_and_says_why(onnx_version, tmp_path, monkeypatch, caplog):
    settings, _ = onnx_version

    def broken(*_):
        raise RuntimeError("unsupported operator Foo")

    monkeypatch.setattr(onnx_runtime, "export", broken)
    with caplog.at_level(logging.WARNING, logger="supportbot.onnx"):
        path = train(EXAMPLES, settings, ModelRegistry(tmp_path), progress=False).path
    record = json.loads((path / onnx_runtime.RUNTIME_FILE).read_text())
    assert record["serve"] == "torch" and "unsupported operator Foo" in record["reason"]
    assert "serving with PyTorch" in caplog.text
    assert IntentClassifier.load(path).runtime is None


def test_a_version_whose_onnx_file_is_damaged_loads_with_pytorch(onnx_version, tmp_path, caplog):
    import shutil

    _, path = onnx_version
    copy = tmp_path / path.name
    shutil.copytree(path, copy)
    record = json.loads((copy / onnx_runtime.RUNTIME_FILE).read_text())
    (copy / onnx_runtime.FILES[record["serve"]]).write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING, logger="supportbot.onnx"):
        classifier = IntentClassifier.load(copy)
    assert classifier.runtime is None and "serving with PyTorch" in caplog.text
    assert classifier.predict(["parcel"])[0].top[0][0] in WORDS  # still answers
