"""Test doubles for transcript-import tests: a deterministic bag-of-words embedder (no model to load)."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

FORMATS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "formats"  # trimmed real samples, with licences
FIXTURES = Path(__file__).parent / "fixtures"


class WordEmbedder:
    """Unit vectors of hashed word counts: texts sharing words are similar, others near-orthogonal."""

    dim = 256

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, zlib.crc32(word.encode()) % self.dim] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)
