"""Measuring a base on labelled questions: recall@1/@5, MRR@10, and the confident answers' coverage and precision.

A label names the expected document by id (`returns.md`, `faq.csv#do-you-ship-abroad`), by file (`faq.csv`:
any of its rows), or by title (any case).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

QUESTION_COLUMNS = ("question", "query", "text")
LABEL_COLUMNS = ("document", "doc_id", "expected", "title", "answer")


@dataclass(frozen=True)
class Result:
    question: str
    expected: str
    rank: int | None  # 1-based rank of the expected document within the top 10, None if absent
    top_doc: str
    top_title: str
    score: float
    confident: bool

    @property
    def right(self) -> bool:
        return self.rank == 1


@dataclass(frozen=True)
class Evaluation:
    results: list[Result]
    threshold: float
    fusion: str

    def share(self, predicate) -> float:
        return sum(map(predicate, self.results)) / max(1, len(self.results))

    @property
    def recall_at_1(self) -> float:
        return self.share(lambda r: r.rank == 1)

    @property
    def recall_at_5(self) -> float:
        return self.share(lambda r: r.rank is not None and r.rank <= 5)

    @property
    def mrr(self) -> float:
        return self.share(lambda r: 1 / r.rank if r.rank else 0.0)

    @property
    def coverage(self) -> float:
        """Share of the questions answered confidently."""
        return self.share(lambda r: r.confident)

    @property
    def precision(self) -> float:
        """Share of the confident answers from the expected document (1.0 when none was confident)."""
        confident = [r for r in self.results if r.confident]
        return sum(r.right for r in confident) / len(confident) if confident else 1.0

    def summary(self) -> str:
        confident = sum(r.confident for r in self.results)
        return "\n".join([
            f"{len(self.results)} questions; ranking {self.fusion}; answer threshold {self.threshold:.3f}",
            f"recall@1 {self.recall_at_1:.3f}  recall@5 {self.recall_at_5:.3f}  MRR@10 {self.mrr:.3f}",
            f"answered confidently {confident} ({self.coverage:.1%}), right {self.precision:.1%} of those",
        ])

    def write_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["question", "expected", "rank", "top_document", "top_title", "score", "confident", "right"])
            for r in self.results:
                out.writerow([r.question, r.expected, r.rank or "", r.top_doc, r.top_title, f"{r.score:.4f}",
                              int(r.confident), int(r.right)])


def read_questions(path: Path) -> list[tuple[str, str]]:
    """(question, expected document) rows of a CSV with a header naming both columns."""
    rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"), newline="")))
    if not rows:
        raise ValueError(f"{path}: empty file")
    header = [h.strip().lower() for h in rows[0]]
    q = next((header.index(c) for c in QUESTION_COLUMNS if c in header), None)
    d = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    if q is None or d is None:
        raise ValueError(f"{path}:1: the header must name a question column ({', '.join(QUESTION_COLUMNS)}) and "
                         f"an expected-document column ({', '.join(LABEL_COLUMNS)}), found {header}")
    out = []
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(q, d) or not row[q].strip() or not row[d].strip():
            raise ValueError(f"{path}:{n}: needs a question and an expected document")
        out.append((row[q].strip(), row[d].strip()))
    return out


def matches(doc_id: str, title: str, label: str) -> bool:
    return doc_id == label or doc_id.startswith(label + "#") or title.strip().lower() == label.strip().lower()


def evaluate(kb, questions: Sequence[tuple[str, str]], k: int = 10) -> Evaluation:
    """Search and answer each question as the bot would; rank of the expected document and the answer's verdict."""
    results = []
    answers = kb.answer_many([q for q, _ in questions])
    for (question, label), answer in zip(questions, answers):
        hits = kb.search(question, k=k)
        rank = next((n for n, h in enumerate(hits, 1) if matches(h.doc_id, h.title, label)), None)
        top = hits[0] if hits else None
        results.append(Result(question, label, rank, top.doc_id if top else "", top.title if top else "",
                              float(answer.score), bool(answer.confident)))
    return Evaluation(results, kb.threshold, kb.fusion.describe())
