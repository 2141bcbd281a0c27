"""The memory of reviewed answers: its fitted threshold and its matches (hand-made vectors)."""

from __future__ import annotations

import numpy as np

from bot.review.memory import MIN_ENTRIES, NEAR_EXACT, Memory
from training.store import Example


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def off_topic(rng, n: int = 40, dim: int = 32):
    return np.stack([unit(rng.normal(size=dim)) for _ in range(n)])


def clusters(rng, outcomes: int, per: int, spread: float, dim: int = 32):
    """`per` messages around each of `outcomes` random directions: (examples, vectors, the centres)."""
    centres = [unit(rng.normal(size=dim)) for _ in range(outcomes)]
    examples, vectors = [], []
    for k, centre in enumerate(centres):
        for i in range(per):
            examples.append(Example(f"message {k}.{i}", f"intent_{k}", "review", provenance=f"turn:{k * 100 + i}",
                                    id=len(examples) + 1))
            vectors.append(unit(centre + spread * rng.normal(size=dim)))
    return examples, np.stack(vectors), centres


def test_a_small_memory_answers_only_near_exact_repeats():
    rng = np.random.default_rng(0)
    examples, vectors, centres = clusters(rng, 2, 5, 0.1)
    memory = Memory.build(examples, vectors, off_topic(rng), target=0.95)
    assert len(memory) < MIN_ENTRIES and memory.fit.threshold == NEAR_EXACT and not memory.fit.fitted
    repeat = memory.match(unit(vectors[3] + 0.01 * rng.normal(size=32)))
    assert repeat is not None and repeat.example.intent == "intent_0" and repeat.similarity >= NEAR_EXACT
    assert repeat.describe() == f"matched reviewed turn 3, similarity {repeat.similarity:.2f}"
    a = vectors[3]
    other = unit(rng.normal(size=32) - (rng.normal(size=32) @ a) * a)
    other = unit(other - (other @ a) * a)  # orthogonal to the entry
    close = unit(0.9 * a + np.sqrt(1 - 0.81) * other)  # similarity 0.9: a paraphrase, not a repeat
    assert abs(float(close @ a) - 0.9) < 1e-3 and memory.match(close) is None


def test_the_threshold_is_fitted_on_the_memory_and_paraphrases_get_the_reviewed_outcome():
    rng = np.random.default_rng(1)
    examples, vectors, centres = clusters(rng, 6, 12, 0.12)
    memory = Memory.build(examples, vectors, off_topic(rng), target=0.95)
    assert memory.fit.fitted and memory.fit.threshold < NEAR_EXACT and memory.fit.precision >= 0.95
    paraphrase = unit(centres[4] + 0.12 * rng.normal(size=32))  # a new message of the same kind
    found = memory.match(paraphrase)
    assert found is not None and found.example.intent == "intent_4" and found.similarity >= memory.fit.threshold
    assert memory.match(unit(rng.normal(size=32))) is None  # about none of them: below the threshold


def test_an_entry_never_answers_below_the_fitted_threshold():
    rng = np.random.default_rng(2)
    examples, vectors, _ = clusters(rng, 5, 10, 0.15)
    memory = Memory.build(examples, vectors, off_topic(rng), target=0.95)
    for _ in range(200):
        found = memory.match(unit(rng.normal(size=32) + 2 * vectors[rng.integers(len(vectors))]))
        assert found is None or found.similarity >= memory.fit.threshold


def test_outcomes_that_overlap_are_only_answered_when_nearly_repeated():
    rng = np.random.default_rng(3)
    examples, vectors, _ = clusters(rng, 1, 40, 0.1)
    examples = [Example(e.text, f"intent_{i % 2}", "review", id=e.id) for i, e in enumerate(examples)]  # mixed labels
    memory = Memory.build(examples, vectors, off_topic(rng), target=0.95)
    assert not memory.fit.fitted and memory.fit.threshold >= NEAR_EXACT


def test_a_new_decision_embeds_only_what_is_new():
    from bot.review.memory import embed_and_build

    class CountingBase:  # the knowledge base's embedding, counted
        def __init__(self):
            self.embedded: list[str] = []

        def correct(self, text):
            return text

        def embed_queries(self, texts):
            self.embedded += texts
            return np.stack([unit(np.random.default_rng(abs(hash(t)) % 2 ** 32).normal(size=8)) for t in texts])

    kb, known = CountingBase(), {}
    first = [Example("where is my order", "track", "review", id=1), Example("cancel it", "cancel", "review", id=2)]
    embed_and_build(kb, first, 0.95, "out_of_scope", known)
    kb.embedded.clear()
    second = [first[0], Example("send the receipt", "receipt", "review", id=3)]  # 2 undone, 3 new
    memory = embed_and_build(kb, second, 0.95, "out_of_scope", known)
    assert [t for t in kb.embedded if "receipt" in t or "order" in t or "cancel" in t] == ["send the receipt"]
    assert set(known) == {1, 3} and [e.id for e in memory.examples] == [1, 3]
    assert memory.match(known[3][1]).example.id == 3


def test_a_large_memory_searches_an_ivf_index_and_still_never_answers_below_the_threshold(monkeypatch):
    """Above EXACT_MAX entries the closest is found through FAISS IVF (lowered here so the test stays small)."""
    import bot.review.memory as memory_module
    from bot.review.memory import Fit

    monkeypatch.setattr(memory_module, "EXACT_MAX", 100)
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    examples = [Example(f"message {i}", f"intent_{i % 7}", "review", id=i) for i in range(2000)]
    memory = Memory(examples, vectors, Fit(0.95, 1.0, 0, 2000, True))
    assert memory.index is not None and memory.index.kind == "ivf"
    near = vectors[1234] + 0.03 * rng.normal(size=32).astype(np.float32)
    near /= np.linalg.norm(near)
    match = memory.match(near)
    assert match is not None and match.example.id == 1234 and match.similarity >= 0.95
    far = rng.normal(size=32).astype(np.float32)
    assert memory.match(far / np.linalg.norm(far)) is None  # random: nothing within 0.95


def test_learned_by_is_what_the_model_answers_right_by_itself():
    from bot.review.memory import Fit, learned_by
    from training.classifier import Prediction

    def predict(texts):
        answers = {"a": Prediction("x", 0.9, [("x", 0.9)], False, False),  # right
                   "b": Prediction("x", 0.9, [("x", 0.9)], False, False),  # wrong intent
                   "c": Prediction(None, 0.2, [("x", 0.2)], True, False),  # refused: right for out of scope
                   "d": Prediction("y", 0.5, [("y", 0.5), ("x", 0.45)], False, True)}  # asked back: not by itself
        return [answers[t] for t in texts]

    examples = [Example("a", "x", "review", id=1), Example("b", "y", "review", id=2),
                Example("c", "out_of_scope", "review", id=3), Example("d", "y", "review", id=4)]
    assert learned_by(examples, predict, "out_of_scope", batch=3) == {1, 3}
    memory = Memory(examples, np.eye(4, dtype=np.float32), Fit(0.9, 1.0, 0, 4, True))
    memory.mark_learned("v7", {1, 3})
    assert memory.match(np.eye(4, dtype=np.float32)[0]).describe().endswith("(learned by model v7)")
    assert memory.match(np.eye(4, dtype=np.float32)[1]).learned is None
