"""Calibrated relevance: how a hit compares with the best hits for questions the base cannot answer.

A hit's raw score combines four features: its dense score, the share of query words it contains, and how far
each of the two is above the best other document's (a lead: the right answer to a question usually stands
out, while a question the base cannot answer finds several documents about equally close). The weights are a
logistic fit of "the top answer is right" on the base's own questions, with the best hits of unanswerable
questions (each document's title or FAQ question asked with that document held out, and off-topic questions)
as wrong answers. The calibrated score is the share of those unanswerable questions whose best hit scores
lower. Both are fitted from the base itself at every sync, with the answer threshold that reaches a target
precision on the base's own questions (`fit_threshold`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for from with about as into over after before is are was were be "
    "been being am do does did done have has had having i me my we our you your he she it its they them their "
    "this that these those what which who whom whose when where why how can could would should will shall may "
    "might must not no yes so than too very just also there here any some all each more most much many other "
    "please hi hello thanks thank get got".split()
)

# Questions no customer-service knowledge base answers: the floor of the "cannot answer" distribution.
OFF_TOPIC = (
    "what is the weather like tomorrow", "tell me a joke", "who won the football match last night",
    "how do I cook a lasagna", "what is the capital of Australia", "recommend a good movie to watch",
    "how tall is mount everest", "what time is it in Tokyo", "can you sing me a song",
    "how do I change a flat tyre on my bike", "what is the meaning of life", "who wrote hamlet",
    "how many calories are in a banana", "translate good morning into Italian", "what is quantum computing",
    "how do I learn to play the guitar", "best exercises for back pain", "how do I grow tomatoes on a balcony",
    "what's the score of the cricket game", "how old is the universe", "write me a poem about the sea",
    "which phone has the best camera", "how do I fix a leaking tap", "what should I name my cat",
    "is it going to rain this weekend", "how do vaccines work", "solve 12 times 17",
    "where can I watch the olympics", "how do I make sourdough bread", "what's a good holiday destination in march",
    "explain the rules of chess", "how far is the moon", "who is the president of France",
    "how do I train for a marathon", "what are the symptoms of the flu", "how do I clean my oven",
    "tell me about the roman empire", "what is bitcoin worth today", "how do I tie a tie", "are you a robot",
)


def terms(text: str) -> list[str]:
    """Lower-cased content words with plurals and common endings folded (for coverage and FTS queries)."""
    out = []
    for word in re.findall(r"[^\W_]+", text.lower()):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        out.append(word)
    return list(dict.fromkeys(out))


def stem(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + repl
    return word


def coverage(query_terms: Iterable[str], text: str) -> float:
    """Share of the query's content words that occur in the text."""
    wanted = {stem(t) for t in query_terms}
    if not wanted:
        return 0.0
    present = {stem(t) for t in terms(text)}
    return len(wanted & present) / len(wanted)


FEATURES = ("cosine", "coverage", "cosine lead", "coverage lead")  # a lead: above the best other document's


@dataclass(frozen=True)
class Tuning:
    """What a base chose for itself at sync: its fusion, what each fusion scored, and the fitted threshold."""

    fusion: dict  # search.Fusion.to_dict() of the choice
    mrr: float  # MRR@10 of the choice on the base's own questions
    scores: tuple[tuple[str, float, float], ...]  # (fusion described, recall@1, MRR@10) of every fusion tried
    questions: int  # self-made (and confirmed) questions the choice was measured on
    threshold: float  # min_relevance reaching target_precision (or the fallback, see `fitted`)
    target: float
    coverage: float  # share of the base's own questions answered confidently at the threshold
    precision: float  # share of confident answers that were right, negatives included
    negatives: int  # held-out and off-topic questions among them
    fitted: bool  # False: the target was not reached, or not surely (see fit_threshold); it leans to suggesting
    answers: int = 0  # confident answers at the threshold, off-topic ones included (0: tuned before it was kept)
    precision_low: float = 0.0  # lower end of the 90 % interval of `precision`

    @property
    def uncertain(self) -> bool:
        """Too few confident answers to promise the target within 5 points."""
        return self.precision_low < self.target - 0.05

    def expected(self) -> str:
        """What the threshold promises customers' questions, in words (sync, `kb stats`, `kb evaluate`)."""
        line = (f"expected: {self.precision:.1%} of confident answers right (90 % interval from "
                f"{self.precision_low:.1%}) and {self.coverage:.1%} of questions answered, measured on "
                f"{self.answers} confident answers to the base's {self.questions} own questions and "
                f"{self.negatives} off-topic ones")
        if self.precision < self.target:
            line += (f"; the target {self.target:g} is not reached on them, so only what no wrong answer reached is "
                     "answered and the rest get suggested articles (add FAQ questions or headings)")
        elif self.uncertain:
            line += ("; too few to promise the target within 5 points, so the threshold leans to suggesting "
                     "articles rather than answering")
        return line


@dataclass(frozen=True)
class Calibration:
    """raw = weights . FEATURES; score = smoothed share of unanswerable questions below raw."""

    weights: tuple[float, ...]  # one per FEATURES
    negatives: tuple[float, ...]  # sorted raw scores of the best hits for unanswerable questions
    tuning: Tuning | None = None

    def raw(self, features: Sequence[float]) -> float:
        return float(np.dot(self.weights, features))

    def score(self, features: Sequence[float]) -> float:
        """Relevance of a hit with these FEATURES (search.Candidate.features), in 0..1."""
        neg = np.asarray(self.negatives)
        raw, m = self.raw(features), len(neg)
        spread = max(float(neg.std()), 1e-3)
        if raw <= neg[0]:
            return float(0.5 / m * np.exp((raw - neg[0]) / spread))
        if raw >= neg[-1]:
            return float(1 - 0.5 / m * np.exp((neg[-1] - raw) / spread))
        return float(np.interp(raw, neg, (np.arange(m) + 0.5) / m))

    def to_json(self) -> str:
        tuning = dataclasses.asdict(self.tuning) if self.tuning else None
        return json.dumps({"weights": self.weights, "negatives": self.negatives, "tuning": tuning})

    @classmethod
    def from_json(cls, text: str) -> "Calibration":
        data = json.loads(text)
        t = data.get("tuning")  # absent in bases calibrated before fusion was tuned
        tuning = Tuning(**{**t, "scores": tuple(tuple(s) for s in t["scores"])}) if t else None
        weights = tuple(data["weights"]) + (0.0,) * (len(FEATURES) - len(data["weights"]))  # leads came later
        return cls(weights, tuple(data["negatives"]), tuning)


def wilson_low(right: int, n: int, z: float = 1.645) -> float:
    """Lower end of the 90 % Wilson interval of a share `right` / `n` (0 when n is 0)."""
    if n == 0:
        return 0.0
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre - spread) / (1 + z * z / n))


def fit_threshold(answered: Sequence[tuple[float, bool]], target: float, fallback: float,
                  least: int = 5, slack: float = 0.05) -> tuple[float, int, float, bool]:
    """The lowest relevance whose confident answers (score, right) are at least `target` right, on enough of
    them that the 90 % interval's lower end is within `slack` of the target: (threshold, answers at or above
    it, their precision, fitted). The threshold sits halfway between the lowest answer kept and the next one
    below (a wrong one), not on the kept one: a new question scoring a hair lower is as likely right.
    Unreached (too few questions to be sure, or the target never met): not fitted, and the threshold leans to
    suggesting articles rather than asserting one: the higher of the fallback and the lowest relevance whose
    answers meet the target however few they are (never met: just above the best-scoring wrong answer)."""
    ranked = sorted(answered, key=lambda a: -a[0])
    best = plain = None
    right = 0
    for n, (score, ok) in enumerate(ranked, 1):
        right += ok
        last = n == len(ranked) or ranked[n][0] < score  # ties are answered together
        if last and n >= least and right / n >= target:
            below = ranked[n][0] if n < len(ranked) else 0.0
            plain = (score + below) / 2 if below < score else score
            if wilson_low(right, n) >= target - slack:
                best = plain
    if plain is None:  # never met: nothing a wrong answer reached is asserted
        plain = min(1.0, max((score for score, ok in ranked if not ok), default=0.0) + 1e-6)
    threshold, fitted = (best, True) if best is not None else (max(fallback, plain), False)
    chosen = [ok for score, ok in ranked if score >= threshold]
    return threshold, len(chosen), (sum(chosen) / len(chosen) if chosen else 1.0), fitted


def fit(answers: np.ndarray, right: np.ndarray, negatives: np.ndarray, l2: float = 1.0) -> Calibration:
    """Weights from a logistic regression of "right" on the FEATURES of the top answers to the base's own
    questions (`right`: whether each is) and of the best hits of unanswerable questions (all wrong), with the
    unanswerable ones' raw scores kept as the reference distribution."""
    x = np.vstack([answers, negatives]).astype(np.float64)
    y = np.concatenate([np.asarray(right, np.float64), np.zeros(len(negatives))])
    w = logistic(x, y, l2)
    # more similarity, more shared words or a wider lead never lowers relevance
    weights = np.maximum(w, [1e-3] + [0.0] * (len(w) - 1))
    weights = tuple(float(v) for v in weights / weights.sum())
    raw = sorted(float(np.dot(weights, f)) for f in negatives)
    return Calibration(weights, tuple(raw))


def logistic(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 50) -> np.ndarray:
    """Feature weights of an L2-regularised logistic regression with intercept, by Newton's method."""
    a = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(a.shape[1])
    reg = np.diag([l2] * x.shape[1] + [0.0])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-a @ w))
        grad = a.T @ (p - y) + reg @ w
        hess = (a * (p * (1 - p))[:, None]).T @ a + reg + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1]
