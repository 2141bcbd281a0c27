from __future__ import annotations

import pytest

from training.settings import TrainSettings


@pytest.fixture
def tiny_settings(tiny_bert) -> TrainSettings:
    """Fast settings for the tiny random BERT: a few dozen steps, high learning rates, no ONNX export (about
    15 s a version; test_onnx_runtime.py covers it)."""
    return TrainSettings(
        base_model=str(tiny_bert), onnx=False, batch_size=8, epochs=6, min_steps=0, encoder_lr=1e-3, head_lr=5e-2,
        patience=6, seed=1,
    )
