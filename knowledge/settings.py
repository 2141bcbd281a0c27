"""Settings of the knowledge base."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import setting


FUSIONS = ("auto", "hybrid", "rrf", "dense", "keyword")
EMBEDDER_RUNTIMES = ("onnx-int8", "onnx-fp32", "torch")
TITLE_SIGNALS = ("auto", "max", "mix", "off")


@dataclass(frozen=True)
class KnowledgeSettings:
    """How help articles are chunked, embedded and searched."""

    embedder_model: str = setting(
        "", "Sentence-transformers model folder for KB embeddings; empty = the packaged all-MiniLM-L6-v2."
    )
    embedder_runtime: str = setting(
        "onnx-int8", "What runs the embedder: onnx-int8 (ONNX Runtime; questions through its int8 copy, passages "
        "fp32), onnx-fp32 (ONNX Runtime, both fp32) or torch. ONNX fp32 gives PyTorch's vectors, so switching "
        "embeds nothing again. The graph is exported once into the index folder; where that fails PyTorch is "
        "used and the reason logged."
    )
    chunk_tokens: int = setting(
        128, "Most embedder tokens per chunk, heading context included (capped at the embedder's window); "
        "chunks follow headings and paragraphs."
    )
    max_file_mb: float = setting(20.0, "Files larger than this are skipped with a reason instead of ingested.")
    exact_max_vectors: int = setting(
        50_000, "Up to this many chunks the vector index is exact (flat); above it an IVF index is built, "
        "its nprobe tuned to `ann_recall`."
    )
    ann_recall: float = setting(
        0.97, "Recall@10 against exact search that the approximate (IVF) index is tuned to when built, "
        "measured on sample queries drawn from the base itself."
    )
    candidates: int = setting(50, "Hits that dense and keyword search each contribute to the hybrid fusion.")
    fusion: str = setting(
        "auto", "How dense and keyword search are combined: 'auto' = chosen per base at every sync on questions it "
        "makes from itself (titles, headings, FAQ questions, held out by document; `kb stats` shows the choice); "
        "or pin one of 'hybrid' (with `keyword_weight`), 'rrf', 'dense', 'keyword'."
    )
    keyword_weight: float = setting(
        0.5, "With fusion = 'hybrid': ranking = (1 - w) * dense + w * BM25, each divided by its maximum over the "
        "query's candidates. Ignored with fusion = 'auto', which tunes its own weight."
    )
    title_signal: str = setting(
        "auto", "How a document's own title vector (an FAQ row's question) joins its passages' vectors in the dense "
        "score: 'auto' = chosen per base at sync, 'max' = the better of title and passage, 'mix' = passage + half "
        "the title, 'off' = passages only."
    )
    rrf_k: int = setting(60, "Reciprocal-rank-fusion constant for fusion 'rrf': sum of 1/(rrf_k + rank).")
    target_precision: float = setting(
        0.95, "The answer threshold is fitted per base at every sync so that this share of confident answers is "
        "right, measured on the base's own questions (titles, headings, FAQ questions and reviewer-confirmed ones; "
        "another document's answer counts as wrong unless its passage holds every word of the title or heading) "
        "plus off-topic questions, each held out from its own document's title and words. Fitted only where enough "
        "of them clear it to promise the target within 5 points (90 % interval); otherwise the threshold leans to "
        "suggesting articles. Sync and `kb stats` say the expected precision, its interval and the coverage; "
        "min_relevance pins one instead."
    )
    min_relevance: float = setting(
        0.0, "Answers whose calibrated relevance is below this are 'no good answer'; 0 (the default) = the threshold "
        "fitted at every sync to `target_precision` (kb stats shows it and the coverage it reaches; at least 0.9 "
        "when the base has too few questions of its own to be sure of the target). A hit scores on its similarity, the share of the question's "
        "words it contains and how far each stands out from the next document's, weighted per base; relevance is "
        "the share of questions this base cannot answer (its own titles and FAQ questions with their document held "
        "out, and off-topic ones) whose best hit scores lower."
    )
    suggest_relevance: float = setting(
        0.5, "When no answer clears min_relevance, the fallback still links the best articles scoring at least "
        "this ('these articles may help'); 1 = never. The demo store's best hit is the right article for 92 % "
        "of the questions it scores at 0.5 or more (BENCHMARKS.md)."
    )
    correct_typos: bool = setting(
        True, "Before searching, a word of 4+ letters that is neither in the base's documents nor a word of the "
        "embedder's vocabulary is replaced by the base's most frequent word one edit away, or split into two of its "
        "words (knowledge/spelling.py): 'refnd' finds the refunds article, 'whereis' reads 'where is'."
    )
    answer_sentences: int = setting(3, "Most sentences of the best passage kept in a trimmed answer.")
    base_url: str = setting(
        "", "Link for documents without their own url: base_url + document id without extension; empty = no link."
    )

    def __post_init__(self) -> None:
        if not 32 <= self.chunk_tokens <= 8192:
            raise ValueError(f"knowledge.chunk_tokens must be 32..8192, not {self.chunk_tokens}")
        if not self.max_file_mb > 0:
            raise ValueError(f"knowledge.max_file_mb must be positive, not {self.max_file_mb}")
        if self.exact_max_vectors < 1:
            raise ValueError(f"knowledge.exact_max_vectors must be at least 1, not {self.exact_max_vectors}")
        if not 0 < self.ann_recall <= 1:
            raise ValueError(f"knowledge.ann_recall must be in (0, 1], not {self.ann_recall}")
        if not 0 <= self.keyword_weight <= 1:
            raise ValueError(f"knowledge.keyword_weight must be in [0, 1], not {self.keyword_weight}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"knowledge.fusion must be one of {FUSIONS}, not {self.fusion!r}")
        if self.title_signal not in TITLE_SIGNALS:
            raise ValueError(f"knowledge.title_signal must be one of {TITLE_SIGNALS}, not {self.title_signal!r}")
        if not 0 < self.target_precision < 1:
            raise ValueError(f"knowledge.target_precision must be in (0, 1), not {self.target_precision}")
        if self.candidates < 1 or self.rrf_k < 0:
            raise ValueError("knowledge.candidates must be >= 1 and knowledge.rrf_k >= 0")
        if not 0 <= self.min_relevance <= 1:
            raise ValueError(f"knowledge.min_relevance must be in [0, 1], not {self.min_relevance}")
        if not 0 <= self.suggest_relevance <= 1:
            raise ValueError(f"knowledge.suggest_relevance must be in [0, 1], not {self.suggest_relevance}")
        if self.embedder_runtime not in EMBEDDER_RUNTIMES:
            raise ValueError(f"knowledge.embedder_runtime must be one of {EMBEDDER_RUNTIMES}, not {self.embedder_runtime!r}")
        if self.answer_sentences < 1:
            raise ValueError(f"knowledge.answer_sentences must be at least 1, not {self.answer_sentences}")
