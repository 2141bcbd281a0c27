"""From dialogs to requests: which customer messages become training texts, and how they are cleaned."""

from __future__ import annotations

import pytest

from training.transcripts.dialogs import AGENT, CUSTOMER, SYSTEM, Dialog, Turn, clean, find_requests, html_text
from training.transcripts.settings import TranscriptSettings

S = TranscriptSettings()


@pytest.mark.parametrize("raw, cleaned", [
    ("@AppleSupport hi #apple, the latest ios is too slow https://t.co/x1", "apple, the latest ios is too slow"),
    ("Hello,\n\nmy parcel never arrived.\n\nThanks,\nJane Doe", "my parcel never arrived."),
    ("where is it?\n\nOn Mon, 3 Jun 2024, Support <help@shop.example> wrote:\n> we shipped it", "where is it?"),
    ("Order NW-1 broken. Could you advise? Regards, Martin Hughes", "Order NW-1 broken. Could you advise?"),
    ("Hi team, good morning. My card was declined &amp; I need help", "My card was declined & I need help"),
    ("can you check again?\n--\nJohn Doe\nCEO, Example Ltd", "can you check again?"),
    ("my order is late\nSent from my iPhone", "my order is late"),
    ("@105835 Please DM your name and zip code. ^RR", "Please DM your name and zip code."),
    ("Where is it? Thanks, can you check again", "Where is it? Thanks, can you check again"),
])
def test_clean(raw, cleaned):
    assert clean(raw) == cleaned


def test_long_requests_are_cut_at_a_sentence_end():
    text = "My lamp flickers. " * 40
    out = clean(text, max_chars=100)
    assert len(out) <= 100 and out.endswith("flickers.")


def test_html_text():
    assert html_text("<p>Hi</p><p>Reset <b>my</b> password&amp;more</p><blockquote>old</blockquote>") == \
        "Hi\nReset my password&more"


def dialog(*turns, label=None):
    return Dialog("d1", tuple(Turn(role, text, line=i + 1) for i, (role, text) in enumerate(turns)), label=label)


def test_opening_request_skips_greetings_and_carries_the_dialog_label():
    d = dialog((AGENT, "Hi! How can I help?"), (CUSTOMER, "HEY HO!"), (CUSTOMER, "I want to return my jeans, wrong size"),
               (AGENT, "Sure, your name?"), (CUSTOMER, "Crystal Minh"), (SYSTEM, "Account pulled up"),
               label="return_size")
    (request,), reason = find_requests(d, S)
    assert (request.text, request.turn, request.line, request.label) == ("I want to return my jeans, wrong size", 2, 3, "return_size")
    assert request.replies == ("Sure, your name?",) and reason == ""


def test_a_new_request_after_anything_else_is_unlabelled_and_closings_are_not_requests():
    d = dialog((CUSTOMER, "where is my order please"), (AGENT, "It ships today. Anything else I can help with?"),
               (CUSTOMER, "yes, how do I change my address"), (AGENT, "In your account. Anything else?"),
               (CUSTOMER, "no thanks, bye"), label="track_order")
    first, second = find_requests(d, S)[0]
    assert (first.label, second.label, second.opening) == ("track_order", None, False)
    assert second.text == "how do I change my address" and second.turn == 2


def test_replies_after_the_customers_thanks_are_not_the_answer():
    d = dialog((CUSTOMER, "where is my order NW-1"), (AGENT, "Follow it on the tracking page."),
               (CUSTOMER, "ok found it, thanks"), (AGENT, "You're welcome!"))
    (request,), _ = find_requests(d, S)
    assert request.replies == ("Follow it on the tracking page.",)


@pytest.mark.parametrize("turns, reason", [
    ((), "empty conversation"),
    (((AGENT, "Your order has shipped"),), "only agent turns"),
    (((SYSTEM, "assigned"),), "no customer turns"),
    (((CUSTOMER, "hello"), (CUSTOMER, "thanks")), "no request after cleaning (greetings or too short)"),
])
def test_conversations_without_requests_are_skipped_with_a_reason(turns, reason):
    assert find_requests(dialog(*turns), S) == ([], reason)


def test_prepared_dialogs_are_taken_as_they_are():
    d = Dialog("nlu.yml:5", (Turn(CUSTOMER, "hi", line=5),), label="greet", prepared=True)
    (request,), _ = find_requests(d, S)
    assert (request.text, request.label, request.line) == ("hi", "greet", 5)


def test_replies_count_past_a_customer_answer_only_when_the_agent_had_asked_something():
    asked = dialog((CUSTOMER, "where is my parcel please"), (AGENT, "Sure, what is the order number?"),
                   (CUSTOMER, "NW-123456"), (AGENT, "You can follow order NW-123456 on the tracking page."))
    (request,), _ = find_requests(asked, S)
    assert request.replies == ("Sure, what is the order number?", "You can follow order NW-123456 on the tracking page.")
    answered = dialog((CUSTOMER, "where is my parcel please"), (AGENT, "You can follow it on the tracking page."),
                      (CUSTOMER, "it just updated, dispatched today"), (AGENT, "Great! Have a lovely day!"))
    (request,), _ = find_requests(answered, S)
    assert request.replies == ("You can follow it on the tracking page.",)
