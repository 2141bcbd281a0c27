"""The knowledge base's embedder through ONNX Runtime: PyTorch's vectors in fp32, int8 questions close to them,
the export made once, and PyTorch where the model is not one the graph can express."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from knowledge.embedder import OnnxEmbedder, SentenceEmbedder, make_embedder

TEXTS = ["where is my parcel", "refund money back please", "login", "my order is late and the parcel is damaged"]


@pytest.fixture(scope="module")
def exported(tiny_bert, tmp_path_factory):
    """The tiny BERT (a plain Hugging Face folder, mean-pooled as sentence-transformers does) exported once."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    return cache, OnnxEmbedder(tiny_bert, cache, quantized=True, threads=1)


def test_passages_get_pytorchs_vectors_and_int8_questions_close_ones(tiny_bert, exported):
    _, onnx = exported
    reference = SentenceEmbedder(tiny_bert).encode(TEXTS)
    passages, questions = onnx.encode(TEXTS), onnx.encode_queries(TEXTS)
    assert passages.shape == reference.shape == (len(TEXTS), onnx.dim)
    assert np.abs(passages - reference).max() < 1e-5  # same vectors: a base embedded by PyTorch is kept
    assert (questions * reference).sum(1).min() > 0.95 and np.abs(questions - reference).max() > 1e-6
    assert np.allclose(np.linalg.norm(questions, axis=1), 1, atol=1e-4)
    assert onnx.name == SentenceEmbedder(tiny_bert).name  # so switching runtime embeds nothing again
    assert onnx.encode([]).shape == (0, onnx.dim)


def test_the_export_is_made_once_and_reused(tiny_bert, exported, monkeypatch):
    cache, _ = exported
    assert len([p for p in cache.iterdir() if p.name.startswith("embedder-")]) == 1
    monkeypatch.setattr(OnnxEmbedder, "_export", lambda self, folder: pytest.fail("exported again"))
    again = make_embedder(str(tiny_bert), "onnx-fp32", cache, threads=1)
    assert isinstance(again, OnnxEmbedder) and np.array_equal(again.encode_queries(TEXTS), again.encode(TEXTS))


def test_a_model_the_graph_cannot_express_is_embedded_by_pytorch_with_the_reason_logged(tiny_bert, tmp_path, caplog):
    folder = tmp_path / "cls-pooled"
    shutil.copytree(tiny_bert, folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    with caplog.at_level(logging.WARNING, logger="supportbot.knowledge"):
        embedder = make_embedder(str(folder), "onnx-int8", tmp_path / "cache")
    assert isinstance(embedder, SentenceEmbedder)
    assert "using PyTorch" in caplog.text and "pooling_mode_cls_token" in caplog.text
    assert not (tmp_path / "cache").exists()  # nothing exported
