"""Typo correction in front of the intent model and the knowledge search (knowledge.spelling)."""

from __future__ import annotations

from knowledge.spelling import Speller, tidy, vocabulary

COUNTS = vocabulary(["where is my refund", "refund status please", "where is my order", "order status",
                     "cancel my order", "change my address"])


def test_a_word_one_edit_from_a_training_word_is_read_as_it():
    speller = Speller(COUNTS)
    assert speller("refnd status pls") == "refund status pls"  # a dropped letter (pls: too short to guess)
    assert speller("Where is my ordre") == "Where is my order"  # two letters swapped
    assert speller("cancell my order") == "cancel my order"  # a doubled letter
    assert speller("whereis my refund") == "where is my refund"  # a missing space


def test_correct_words_and_words_of_the_tokenizers_vocabulary_are_left_alone():
    speller = Speller(COUNTS, known=["orders", "weather", "##ing"])
    assert speller("where is my order") == "where is my order"
    assert speller("orders weather tomorrow") == "orders weather tomorrow"  # real words the bot never saw
    assert speller("xyzzy") == "xyzzy"  # nothing near it


def test_emoji_and_runs_of_punctuation_are_dropped_before_reading():
    assert tidy("where is my order???!!! 😡😡") == "where is my order?"
    assert tidy("ok... thanks 👍🏽") == "ok. thanks"
    assert tidy("order NW-482913, due 10:30 :)") == "order NW-482913, due 10:30 :)"  # nothing else changes
    assert Speller(COUNTS)("WHERE IS MY REFND!!! 😡") == "WHERE IS MY refund!"
