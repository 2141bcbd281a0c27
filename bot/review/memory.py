"""A memory of reviewed answers, consulted before the intent model: a message close enough to one a person has
settled gets what that person said it should get, at once, without a retrain.

The memory is the labelled examples people settled (`REVIEWED_SOURCES`: confirmed, corrected or marked out of
scope in the review workspace, picked from a clarifying question; `ACCEPTED_METHODS`: imported requests labelled by
accepting an intent proposal), so undoing a decision, renaming or deleting an
intent changes it the way it changes the training data. Each is embedded with the knowledge base's sentence
embedder (no second model). "Close enough" is a cosine threshold fitted to `review.memory_precision` by
leave-one-out over the memory itself: each reviewed message is matched against all the others (right when the
closest carries its outcome), and again as if its outcome had never been reviewed, against the messages of the
other outcomes only (always wrong: what a message about something new finds); off-topic questions
(knowledge.relevance.OFF_TOPIC) are wrong unless matched with a message marked out of scope. The threshold is the
lowest similarity whose matches carry the right outcome often enough, and surely enough (the 90 % interval within
5 points, knowledge.relevance.fit_threshold). Below `MIN_ENTRIES`, or where the target is not met, only
near-exact repeats are answered.

An entry the serving model now answers right by itself (`learned_by`) stays — it costs nothing and keeps the
answer if a later model forgets — but is marked as learned, in the match and in `run_bot.py memory stats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from knowledge.relevance import fit_threshold
from training.store import Example, ExampleStore

REVIEWED_SOURCES = ("review", "conversation")  # examples a person settled: review decisions, clarification picks
ACCEPTED_METHODS = ("cluster",)  # and imported requests labelled by accepting an intent proposal

EXACT_MAX = 10_000  # entries searched exactly (numpy); above, an IVF index (knowledge.index.VectorIndex)
NEAR_EXACT = 0.97  # cosine of a near-exact repeat ("where is my order" / "Where is my order?")
MIN_ENTRIES = 30  # fewer reviewed messages: only near-exact repeats are answered
FIT_SAMPLE = 2000  # reviewed messages matched against all the others when the threshold is fitted


@dataclass(frozen=True)
class Match:
    example: Example  # the reviewed message, with what it should get (`intent`: an intent or out of scope)
    similarity: float
    threshold: float
    learned: str | None = None  # the model version that answers the message right by itself, if the serving one does

    def describe(self) -> str:
        where = self.example.provenance
        turn = f"reviewed turn {where.split(':', 1)[1]}" if where.startswith("turn:") else "a reviewed message"
        learned = f" (learned by model {self.learned})" if self.learned else ""
        return f"matched {turn}, similarity {self.similarity:.2f}{learned}"

    def to_json(self) -> dict:
        return {"example": self.example.id, "provenance": self.example.provenance, "text": self.example.text,
                "outcome": self.example.intent, "similarity": round(self.similarity, 4),
                "threshold": round(self.threshold, 4), "learned": self.learned}


@dataclass(frozen=True)
class Fit:
    threshold: float
    precision: float  # of the leave-one-out matches at the threshold (1.0 when none)
    answers: int  # leave-one-out matches at or above it
    entries: int
    fitted: bool  # False: too few entries or the target not met; near-exact repeats only


class Memory:
    """Reviewed messages, their unit vectors and the fitted threshold; `match` finds the closest (exactly up to
    EXACT_MAX entries, through an IVF index above: a missed neighbour can only leave a message to the model, since
    the threshold applies to the similarity of what is found)."""

    def __init__(self, examples: Sequence[Example], vectors: np.ndarray, fit: Fit):
        self.examples, self.vectors, self.fit = list(examples), np.asarray(vectors, np.float32), fit
        self.learned: frozenset[int] = frozenset()  # example ids the model `learned_version` answers right
        self.learned_version: str | None = None
        self.index = None  # large memories: approximate search, nprobe tuned to find 99 % of near neighbours
        if len(self.examples) > EXACT_MAX:
            from knowledge.index import VectorIndex

            self.index = VectorIndex.build(np.arange(len(self.examples)), self.vectors, self.vectors.shape[1],
                                           exact_max=EXACT_MAX, target_recall=0.99, noise=0.4, k=1)

    @classmethod
    def build(cls, examples: Sequence[Example], vectors: np.ndarray, off_topic: np.ndarray, target: float,
              oos_label: str = "out_of_scope") -> "Memory":
        """`off_topic`: vectors of questions no intent answers (right only when matched with out of scope)."""
        vectors = np.asarray(vectors, np.float32)
        return cls(examples, vectors, fit(vectors, [e.intent for e in examples], off_topic, target, oos_label))

    def __len__(self) -> int:
        return len(self.examples)

    def match(self, vector: np.ndarray) -> Match | None:
        """The closest reviewed message when it is at least the threshold close, else None."""
        vector = np.asarray(vector, np.float32)
        if not self.examples or len(vector) != self.vectors.shape[1]:
            return None
        if self.index is not None:
            scores, ids = self.index.search(vector[None, :], 1)
            if not len(ids[0]) or ids[0][0] < 0:
                return None
            best, similarity = int(ids[0][0]), float(scores[0][0])
        else:
            similarities = self.vectors @ vector
            best = int(np.argmax(similarities))
            similarity = float(similarities[best])
        if similarity < self.fit.threshold:
            return None
        example = self.examples[best]
        return Match(example, similarity, self.fit.threshold,
                     self.learned_version if example.id in self.learned else None)

    def mark_learned(self, version: str, learned: set[int] | frozenset[int]) -> None:
        self.learned, self.learned_version = frozenset(learned), version

    def describe(self, target: float) -> str:
        """What the fit says (for `memory stats` and `evaluate`)."""
        fit = self.fit
        if fit.fitted:
            return (f"similarity threshold {fit.threshold:.3f}, fitted to precision {target:g}: leave-one-out answered "
                    f"{fit.answers} matches, {fit.precision:.1%} right")
        why = (f"fewer than {MIN_ENTRIES} reviewed messages" if len(self) < MIN_ENTRIES
               else f"precision {target:g} not surely reached by leave-one-out")
        return f"similarity threshold {fit.threshold:.3f}: near-exact repeats only ({why})"


def learned_by(examples: Sequence[Example], predict: Callable, oos_label: str, batch: int = 64) -> set[int]:
    """Ids of the reviewed examples a model answers right by itself: the reviewed intent, neither refused nor asked
    back; or, for one marked out of scope, a refusal. `predict`: the model's (training.classifier.Prediction)."""
    out: set[int] = set()
    for start in range(0, len(examples), batch):
        part = examples[start:start + batch]
        for e, p in zip(part, predict([e.text for e in part])):
            if (e.intent == oos_label and p.unknown) or (p.intent == e.intent and not p.unknown and not p.ambiguous):
                out.add(e.id)
    return out


def fit(vectors: np.ndarray, outcomes: Sequence[str], off_topic: np.ndarray, target: float,
        oos_label: str = "out_of_scope", seed: int = 0) -> Fit:
    """The threshold: each reviewed message (a sample of at most FIT_SAMPLE) matched against all the others (right
    when the closest carries the same outcome) and against the other outcomes' messages only (wrong); an off-topic
    question's best match is right only when that message was marked out of scope."""
    n = len(outcomes)
    if n < MIN_ENTRIES:
        return Fit(NEAR_EXACT, 1.0, 0, n, False)
    rng = np.random.default_rng(seed)
    asked = np.sort(rng.choice(n, FIT_SAMPLE, replace=False)) if n > FIT_SAMPLE else np.arange(n)
    similarities = vectors[asked] @ vectors.T
    similarities[np.arange(len(asked)), asked] = -np.inf  # never itself
    nearest = similarities.argmax(axis=1)
    matches = [(float(similarities[i, j]), outcomes[q] == outcomes[j]) for i, (q, j) in enumerate(zip(asked, nearest))]
    labels = np.array(outcomes, dtype=object)
    for i, q in enumerate(asked):  # as if its outcome had never been reviewed
        others = similarities[i, labels != outcomes[q]]
        if len(others):
            matches.append((float(others.max()), False))
    off = np.asarray(off_topic, np.float32) @ vectors.T
    matches += [(float(off[i, j]), outcomes[j] == oos_label) for i, j in enumerate(off.argmax(axis=1))]
    threshold, answers, precision, fitted = fit_threshold(matches, target, NEAR_EXACT)
    return Fit(min(threshold, 1.0), precision, answers, n, fitted)


def settled(store: ExampleStore) -> list[Example]:
    """The examples the memory holds, by id."""
    return store.labelled_from(REVIEWED_SOURCES, methods=ACCEPTED_METHODS)


def settled_state(store: ExampleStore) -> tuple:
    """What changes whenever the memory's examples change (ExampleStore.state_of)."""
    return store.state_of(REVIEWED_SOURCES, methods=ACCEPTED_METHODS)


def embed_and_build(kb, reviewed: Sequence[Example], target: float, oos_label: str,
                    known: dict[int, tuple[str, np.ndarray]] | None = None) -> Memory:
    """The memory of these reviewed examples, embedded as the knowledge base `kb` embeds questions (typos
    corrected the same way), with off-topic questions for its fit. `known` (example id -> (text, vector)) keeps
    vectors from one build to the next, so a new decision embeds only what is new."""
    from knowledge.relevance import OFF_TOPIC

    known = {} if known is None else known
    missing = [e for e in reviewed if known.get(e.id, ("",))[0] != e.text]
    if missing:
        known.update((e.id, (e.text, v)) for e, v in zip(missing, kb.embed_queries([kb.correct(e.text) for e in missing])))
    for gone in set(known) - {e.id for e in reviewed}:
        del known[gone]
    dim = len(next(iter(known.values()))[1]) if known else 0
    vectors = np.stack([known[e.id][1] for e in reviewed]) if reviewed else np.zeros((0, dim), np.float32)
    return Memory.build(reviewed, vectors, kb.embed_queries(list(OFF_TOPIC)), target, oos_label)


def memory_of(folder, kb) -> Memory:
    """The memory of a bot folder as its server builds it, embedded by its open knowledge base `kb` (for
    `run_bot.py memory stats` and `explain`)."""
    from bot.database import open_bot_database

    s = folder.settings
    db = open_bot_database(s)
    try:
        reviewed = settled(ExampleStore(db))
    finally:
        db.close()
    return embed_and_build(kb, reviewed, s.review.memory_precision, s.train.oos_label)


def mark_serving(folder, memory: Memory) -> None:
    """Mark the entries the bot folder's serving model answers right by itself (none when it has no model yet)."""
    from training.classifier import IntentClassifier
    from training.registry import ModelRegistry

    path = ModelRegistry(folder.settings.models_path).current_path()
    if path is None or not memory.examples:
        return
    model = IntentClassifier.load(path, quantize=folder.settings.train.quantize)
    memory.mark_learned(model.version, learned_by(memory.examples, model.predict, folder.settings.train.oos_label))
