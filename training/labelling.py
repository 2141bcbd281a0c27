"""Labels from what the agent answered, and the calibration that says how similar is similar enough.

When an agent's reply is (a paraphrase of) one of the bot's canned answers, the customer asked that
answer's intent. Replies and answer templates are compared by sentence-embedding cosine similarity;
a request is labelled only above a threshold chosen on labelled data to reach a target precision
(`calibrate_threshold`, measured in benchmarks/bench_labelling.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from knowledge.embedder import Embedder

_VARIABLE = re.compile(r"{(\w+)}")


def template_text(answer: str) -> str:
    """An answer template as text to embed: '{order_id}' reads as 'order id', like a filled-in value would."""
    text = _VARIABLE.sub(lambda m: m.group(1).replace("_", " "), answer)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Match:
    intent: str | None  # the label, or None below the threshold
    score: float  # best cosine similarity between a reply and a template
    nearest: str | None  # the best intent whatever its score (None without replies)


class TemplateMatcher:
    """Labels requests by comparing the agent's replies with the bot's answer templates."""

    def __init__(self, answers: Mapping[str, str | Sequence[str]], embedder: Embedder, threshold: float):
        self.embedder, self.threshold = embedder, threshold
        self.owners: list[str] = []
        texts: list[str] = []
        for intent, answer in answers.items():
            for a in [answer] if isinstance(answer, str) else answer:
                if a and a.strip():
                    self.owners.append(intent)
                    texts.append(template_text(a))
        self.vectors = embedder.encode(texts) if texts else np.zeros((0, embedder.dim), np.float32)

    def __bool__(self) -> bool:
        return bool(self.owners)

    def match(self, replies: Sequence[Sequence[str]], batch: int = 2048,
              progress: Callable[[int, int], None] | None = None) -> list[Match]:
        """For each request, its agent replies -> the intent of the most similar template, if similar enough."""
        unique = list(dict.fromkeys(r for rs in replies for r in rs if r))
        best: dict[str, tuple[float, str]] = {}
        for start in range(0, len(unique), batch):
            chunk = unique[start: start + batch]
            if self.owners:
                sims = self.embedder.encode(chunk) @ self.vectors.T
                top = sims.argmax(axis=1)
                for text, j, row in zip(chunk, top, sims):
                    best[text] = (float(row[j]), self.owners[j])
            if progress is not None:
                progress(min(start + batch, len(unique)), len(unique))
        out = []
        for rs in replies:
            scored = [best[r] for r in rs if r in best]
            if not scored:
                out.append(Match(None, 0.0, None))
                continue
            score, intent = max(scored)
            out.append(Match(intent if score >= self.threshold else None, score, intent))
        return out


@dataclass(frozen=True)
class Calibration:
    threshold: float
    precision: float  # of the labels given at this threshold, on the calibration set
    coverage: float  # share of the calibration items that got a label
    labelled: int


def calibrate_threshold(scores: Sequence[float], correct: Sequence[bool], target_precision: float = 0.95,
                        min_support: int = 10) -> Calibration:
    """The lowest similarity at which labelling everything scoring at least that is `target_precision` precise.

    `correct[i]` says whether item i's nearest intent is its true one (False for replies that match no
    template). Picks the largest top-k (by score) whose precision reaches the target, with k >= min_support;
    without one, the threshold is the highest score (labels almost nothing) and the precision says so.
    """
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(correct, dtype=np.float64)
    if len(s) == 0:
        raise ValueError("calibration needs at least one scored item")
    order = np.argsort(-s, kind="stable")
    s, c = s[order], c[order]
    k = np.arange(1, len(s) + 1)
    precision = np.cumsum(c) / k
    # a cut between equal scores is not a threshold: only consider the last index of each run of ties
    last_of_tie = np.r_[s[1:] < s[:-1], True]
    ok = (precision >= target_precision) & (k >= min(min_support, len(s))) & last_of_tie
    if not ok.any():
        i = 0
        return Calibration(float(s[i]), float(precision[i]), 1 / len(s), 1)
    i = int(np.flatnonzero(ok)[-1])
    return Calibration(float(s[i]), float(precision[i]), float((i + 1) / len(s)), i + 1)
