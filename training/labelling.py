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


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """Sentences of at least three words (the whole text when there are none)."""
    parts = [p.strip() for p in _SENTENCE.split(text) if len(p.split()) >= 3]
    return parts or [text]


class TemplateMatcher:
    """Labels requests by comparing the agent's replies with the bot's answer templates.

    The similarity of a reply to a template is the mean of two cosines: whole reply vs whole template, and
    how well the template's sentences are covered by the reply's (mean over template sentences of the best
    reply sentence). Agents edit canned answers (a name, a changed detail, an extra sentence); the
    sentence view keeps such edits from diluting the match. `coverage=False` gives the whole-text cosine only.
    """

    def __init__(self, answers: Mapping[str, str | Sequence[str]], embedder: Embedder, threshold: float,
                 coverage: bool = True):
        from training.transcripts.dialogs import clean

        self.embedder, self.threshold, self.coverage = embedder, threshold, coverage
        self.owners: list[str] = []
        texts: list[str] = []
        for intent, answer in answers.items():
            for a in [answer] if isinstance(answer, str) else answer:
                text = clean(template_text(a), 2000) if a else ""  # cleaned like the replies it is compared with
                if text:
                    self.owners.append(intent)
                    texts.append(text)
        self.vectors = embedder.encode(texts) if texts else np.zeros((0, embedder.dim), np.float32)
        pieces = [sentences(t) for t in texts]
        self.sentence_vectors = embedder.encode([p for ps in pieces for p in ps]) if texts else self.vectors
        self.starts = np.cumsum([0] + [len(ps) for ps in pieces])[:-1]

    def __bool__(self) -> bool:
        return bool(self.owners)

    def similarity(self, replies: Sequence[str]) -> np.ndarray:
        """(replies x templates) similarity matrix."""
        whole = self.embedder.encode(list(replies)) @ self.vectors.T
        if not self.coverage:
            return whole
        pieces = [sentences(r) for r in replies]
        flat = self.embedder.encode([p for ps in pieces for p in ps])
        cover = np.empty_like(whole)
        at = 0
        for i, ps in enumerate(pieces):
            best = (self.sentence_vectors @ flat[at: at + len(ps)].T).max(axis=1)  # each template sentence
            cover[i] = np.add.reduceat(best, self.starts) / np.diff(np.r_[self.starts, len(best)])
            at += len(ps)
        return (whole + cover) / 2

    def match(self, replies: Sequence[Sequence[str]], batch: int = 1024,
              progress: Callable[[int, int], None] | None = None) -> list[Match]:
        """For each request, its agent replies -> the intent of the most similar template, if similar enough."""
        unique = list(dict.fromkeys(r for rs in replies for r in rs if r))
        best: dict[str, tuple[float, str]] = {}
        for start in range(0, len(unique), batch):
            chunk = unique[start: start + batch]
            if self.owners:
                sims = self.similarity(chunk)
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
            # the agent's first canned answer counts: later replies may answer a follow-up ("thanks!")
            first = next(((score, intent) for score, intent in scored if score >= self.threshold), None)
            score, intent = first or max(scored)
            out.append(Match(intent if first else None, score, intent))
        return out


@dataclass(frozen=True)
class Calibration:
    threshold: float
    precision: float  # of the labels given at this threshold, on the calibration set
    coverage: float  # share of the calibration items that got a label
    labelled: int


def calibrate_threshold(scores: Sequence[float], correct: Sequence[bool], target_precision: float = 0.95,
                        min_support: int = 10) -> Calibration:
    """The similarity threshold that labels as many items correctly as possible at `target_precision`.

    `correct[i]` says whether item i's nearest intent is its true one (False for replies that match no
    template). Among the cuts (by descending score, at least `min_support` items) whose precision reaches
    the target, take those that label the most items correctly, and of them the highest: going lower would
    only add wrong labels. The threshold lies halfway between the lowest score kept and the next one, the
    widest margin either way. Without any such cut, the threshold is the highest score (it labels almost
    nothing) and the precision says so.
    """
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(correct, dtype=np.float64)
    if len(s) == 0:
        raise ValueError("calibration needs at least one scored item")
    order = np.argsort(-s, kind="stable")
    s, c = s[order], c[order]
    k = np.arange(1, len(s) + 1)
    hits = np.cumsum(c)
    precision = hits / k
    # a cut between equal scores is not a threshold: only consider the last index of each run of ties
    last_of_tie = np.r_[s[1:] < s[:-1], True]
    ok = (precision >= target_precision) & (k >= min(min_support, len(s))) & last_of_tie
    if not ok.any():
        return Calibration(float(s[0]), float(precision[0]), 1 / len(s), 1)
    best = hits[ok].max()
    i = int(np.flatnonzero(ok & (hits == best))[0])
    # halfway to the next lower score: the widest margin on both sides of the cut
    threshold = (s[i] + s[i + 1]) / 2 if i + 1 < len(s) else s[i]
    return Calibration(float(threshold), float(precision[i]), float((i + 1) / len(s)), i + 1)
