"""Template matching and threshold calibration; one known-answer check with the real packaged MiniLM."""

from __future__ import annotations

import pytest

from import_doubles import WordEmbedder
from training.labelling import TemplateMatcher, calibrate_threshold, sentences, template_text
from training.transcripts.settings import TranscriptSettings


def test_template_variables_read_as_words():
    assert template_text("Order {order_id} ships   today") == "Order order id ships today"


def test_sentences_keep_only_real_sentences():
    assert sentences("Hi! You can follow it live. It takes 2 days.") == ["You can follow it live.", "It takes 2 days."]
    assert sentences("ok") == ["ok"]


def test_calibration_labels_the_most_items_correctly_at_the_target_precision():
    scores = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6]
    correct = [True, True, True, True, False, True, False, False]
    cal = calibrate_threshold(scores, correct, target_precision=0.8, min_support=2)
    assert cal.threshold == pytest.approx(0.675) and cal.labelled == 6 and cal.precision == pytest.approx(5 / 6)
    assert calibrate_threshold(scores, correct, target_precision=1.0, min_support=2).threshold == pytest.approx(0.775)
    none = calibrate_threshold([0.9, 0.8], [False, False], target_precision=0.9, min_support=1)
    assert none.threshold == 0.9 and none.precision == 0.0


def test_calibration_does_not_go_lower_once_only_wrong_labels_would_be_added():
    scores = [0.9, 0.85, 0.8, 0.75, 0.7, 0.5, 0.45, 0.4]
    correct = [True, True, True, True, True, False, False, False]
    cal = calibrate_threshold(scores * 5, correct * 5, target_precision=0.8, min_support=1)
    assert cal.threshold == pytest.approx(0.6)  # between 0.7 and 0.5: lower would label nothing more correctly


def test_calibration_never_cuts_between_equal_scores():
    cal = calibrate_threshold([0.9, 0.8, 0.8], [True, True, False], target_precision=0.9, min_support=1)
    assert cal.threshold == pytest.approx(0.85) and cal.labelled == 1


ANSWERS = {
    "track_order": "You can follow order {order_id} live on the tracking page. Tracking appears within a day.",
    "refund_timing": "Refunds reach your card within 5 working days, PayPal within 2 days.",
}


def test_first_reply_above_threshold_wins_over_a_later_better_one():
    matcher = TemplateMatcher({**ANSWERS, "thanks": "You are welcome"}, WordEmbedder(), threshold=0.6)
    replies = ["You can follow order NW-1 live on the tracking page. Tracking appears within a day.", "You are welcome"]
    (match,) = matcher.match([replies])
    assert match.intent == "track_order" and 0.6 <= match.score < 1
    (none,) = matcher.match([["Let me check with the warehouse."]])
    assert none.intent is None and none.nearest in ANSWERS
    assert matcher.match([[]]) == [type(none)(None, 0.0, None)]


def test_without_coverage_only_the_whole_text_counts():
    whole = TemplateMatcher(ANSWERS, WordEmbedder(), 0.5, coverage=False)
    both = TemplateMatcher(ANSWERS, WordEmbedder(), 0.5)
    reply = "Hi Anna! Refunds reach your card within 5 working days, PayPal within 2 days. Our team also loves sofas and lamps."
    assert both.similarity([reply]).max() > whole.similarity([reply]).max()


@pytest.mark.slow
def test_real_minilm_labels_paraphrased_canned_answers_at_the_default_threshold():
    from knowledge.embedder import SentenceEmbedder

    matcher = TemplateMatcher(ANSWERS, SentenceEmbedder(), TranscriptSettings().match_threshold)
    matches = matcher.match([
        ["Hi Sam! You can follow order NW-482001 live on our tracking page - tracking shows up within 24 hours."],
        ["Refunds go back to your card within 5 working days; PayPal ones take about 2 days."],
        ["Could you tell me the e-mail address you ordered with?"],
        ["Our showroom in Manchester is open Monday to Saturday."],
    ])
    assert [m.intent for m in matches] == ["track_order", "refund_timing", None, None]
