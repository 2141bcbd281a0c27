"""The gate's per-intent rule (training.gate.compare) on fixed predictions: a drop refuses a candidate only when
chance does not explain it (a one-sided sign test over the intent's examples that changed)."""

from __future__ import annotations

import pytest

from training.classifier import Prediction
from training.gate import compare, sign_test
from training.settings import RetrainSettings
from training.store import Example


class Answers:
    """A model double answering each text as told (an unknown text: refused)."""

    def __init__(self, version, answers):
        self.version, self.answers = version, answers

    def predict(self, texts, k=3):
        return [Prediction(self.answers[t], 0.9, [(self.answers[t], 0.9)], False, False) for t in texts]


def gate_set(n_a=6, n_b=30):
    return [Example(f"a{i}", "a") for i in range(n_a)] + [Example(f"b{i}", "b") for i in range(n_b)]


def test_the_sign_test_is_the_chance_of_that_many_losses_among_the_changes():
    assert sign_test(0, 0) == 1.0
    assert sign_test(1, 0) == pytest.approx(0.5)
    assert sign_test(5, 0) == pytest.approx(1 / 32)
    assert sign_test(3, 1) == pytest.approx(5 / 16)


def test_one_example_of_six_turning_wrong_does_not_refuse_a_candidate_better_elsewhere():
    examples = gate_set()
    serving = Answers("s", {**{f"a{i}": "a" for i in range(6)}, **{f"b{i}": "b" if i < 20 else "a" for i in range(30)}})
    candidate = Answers("c", {**{f"a{i}": "a" if i else "b" for i in range(6)}, **{f"b{i}": "b" for i in range(30)}})
    result = compare(candidate, serving, examples, "out_of_scope", RetrainSettings())
    assert result["promote"], result["reasons"]
    [a] = [r for r in result["per_intent"] if r["intent"] == "a"]
    assert (a["turned_wrong"], a["turned_right"], a["p"]) == (1, 0, 0.5)  # a 17-point drop, one coin toss


def test_an_intent_that_loses_five_of_six_refuses_the_candidate_and_says_why():
    examples = gate_set()
    serving = Answers("s", {**{f"a{i}": "a" for i in range(6)}, **{f"b{i}": "b" if i < 20 else "a" for i in range(30)}})
    candidate = Answers("c", {**{f"a{i}": "a" if i == 0 else "b" for i in range(6)}, **{f"b{i}": "b" for i in range(30)}})
    result = compare(candidate, serving, examples, "out_of_scope", RetrainSettings())
    assert not result["promote"]
    [reason] = [r for r in result["reasons"] if "intent a" in r]
    assert "100 % -> 17 %" in reason and "5 turned wrong and 0 right: p 0.031" in reason
