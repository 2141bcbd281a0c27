"""Review selection (bot.review.selection) on hand-made vectors whose right answer is known."""

import numpy as np
import pytest

from bot.review.selection import choose, uncertainty


def unit(*xs):
    v = np.zeros(8, np.float32)
    v[: len(xs)] = xs
    return v / np.linalg.norm(v)


# labelled examples: intent A along axis 0, intent B along axis 1, close to each other (as intents of one bot are)
KNOWN = np.stack([unit(1, 0.5, 0.7 * k, 0, 0, 0, 0, 0.1 * (k % 2)) for k in range(3)]
                 + [unit(0.5, 1, 0, 0.7 * k, 0, 0, 0.1 * (k % 2)) for k in range(3)])
LABELS = ["a"] * 3 + ["b"] * 3


def test_uncertainty_is_one_minus_the_margin_between_the_top_two():
    assert uncertainty([("a", 0.9), ("b", 0.05)]) == pytest.approx(0.15)
    assert uncertainty([("a", 0.5), ("b", 0.5)]) == pytest.approx(1.0)
    assert uncertainty([("a", 1.0)]) == pytest.approx(0.0)
    assert uncertainty([]) == pytest.approx(1.0)


def test_one_pick_per_group_of_near_identical_messages_the_most_uncertain_standing_for_it():
    vectors = np.stack([unit(1, 0.5, 0.05), unit(1, 0.5, 0.0), unit(1, 0.5, -0.05),  # near-identical (cos > 0.99)
                        unit(0.5, 1, 0.3)])
    picks = choose(vectors, [0.6, 0.9, 0.7, 0.5], budget=4)
    assert [p.index for p in picks] == [1, 3]  # the group once, by its most uncertain message; then the other
    assert sorted(picks[0].group) == [0, 1, 2] and picks[1].group == (3,)


def test_diversity_the_second_pick_is_not_the_neighbour_of_the_first():
    vectors = np.stack([unit(1, 0.5, 0.3), unit(1, 0.5, -0.3),  # similar (cos ~0.85), not near-identical
                        unit(0.5, 1, 0, 0, 0.2)])
    picks = choose(vectors, [0.95, 0.9, 0.6], budget=3)
    assert [p.index for p in picks] == [0, 2, 1]
    assert [p.reason for p in picks] == ["uncertain"] * 3


def test_a_tight_cluster_far_from_every_intent_comes_first():
    near_known = [unit(1, 0.5, 0.1 * k, 0.05) for k in range(4)]  # very uncertain, but like intent A
    far_cluster = [unit(0, 0, 0, 0, 1, *d) for d in ((0.35, 0), (0, 0.35), (-0.35, 0), (0, -0.35))]  # new: tight, far
    lone = [unit(0, 0, 0, 0, 0, 0, 0, 1)]  # far away but alone: not a cluster
    vectors = np.stack(near_known + far_cluster + lone)
    unsure = [0.99, 0.98, 0.97, 0.96] + [0.2, 0.3, 0.25, 0.2] + [0.5]
    picks = choose(vectors, unsure, budget=3, known=KNOWN, known_labels=LABELS)
    assert picks[0].reason == "unseen" and picks[0].index in (4, 5, 6, 7)
    assert sum(p.reason == "unseen" for p in picks) == 1  # one message for the cluster
    assert all(p.index not in (4, 5, 6, 7) for p in picks[1:])  # its other members are not picked again next
    assert len(picks[0].group) == 1  # a cluster of distinct messages, not one near-identical group


def test_a_lone_far_message_is_not_an_unseen_intent():
    vectors = np.stack([unit(1, 0.5, 0.1), unit(0, 0, 0, 0, 0, 0, 0, 1)])
    picks = choose(vectors, [0.9, 0.1], budget=2, known=KNOWN, known_labels=LABELS)
    assert [(p.index, p.reason) for p in picks] == [(0, "uncertain"), (1, "uncertain")]


def test_without_labelled_examples_there_is_no_unseen_step_and_the_budget_is_kept():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    picks = choose(vectors, rng.random(20), budget=5)
    assert len(picks) == 5 and len({p.index for p in picks}) == 5
    assert all(p.reason == "uncertain" for p in picks)
    assert choose(vectors[:0], [], budget=5) == []
