"""Format readers on the real samples (tests/fixtures/formats) and on hand-written helpdesk fixtures."""

from __future__ import annotations

import pytest

from import_doubles import FIXTURES, FORMATS_DIR
from training.transcripts import Reading, detect_format, read_dialogs
from training.transcripts.dialogs import AGENT, CUSTOMER, SYSTEM
from training.transcripts.rasa import load_project, migration_plan, strip_entities
from training.transcripts.settings import TranscriptSettings

TWCS = FORMATS_DIR / "twcs_sample" / "sample.csv"
ABCD = FORMATS_DIR / "abcd_sample" / "abcd_sample.json"
RASA = FORMATS_DIR / "rasa_financial_demo"


def dialogs(path, fmt, **settings):
    return list(read_dialogs(Reading(path, TranscriptSettings(**settings)), fmt))


def test_twitter_threads_are_rebuilt_from_reply_links():
    found = dialogs(TWCS, "twitter")
    assert len(found) == 27  # 93 tweets: 25 start a thread, 2 answer tweets that are not in the sample
    assert sum(len(d.turns) for d in found) == 93
    virgin = next(d for d in found if d.id == "119246")  # an agent tweet whose parent is missing starts it
    assert [t.role for t in virgin.turns] == [AGENT, CUSTOMER, AGENT, CUSTOMER, AGENT, CUSTOMER, AGENT]
    assert virgin.turns[1].text.startswith("@VirginTrains I still haven't heard")
    assert virgin.line == 11


def test_abcd_dialogs_carry_their_subflow_as_label():
    found = dialogs(ABCD, "abcd")
    assert [(d.id, d.label) for d in found] == [("3592", "return_size"), ("9489", "refund_status"), ("3695", "timing_4")]
    assert {t.role for t in found[0].turns} == {AGENT, CUSTOMER, SYSTEM}
    assert [d.label for d in dialogs(ABCD, "abcd", abcd_label="flow/subflow")][0] == "product_defect.return_size"


def test_rasa_nlu_examples_lose_their_entity_markup():
    project = load_project(RASA)
    assert sum(len(v) for v in project.examples.values()) == 578 and len(project.examples) == 17
    texts = [ex.text for ex in project.examples["check_balance"]]
    assert "What's my emblem card balance" in texts  # from [emblem](credit_card) [card](account_type) ...
    assert "check my credit card balance" in texts  # from [credit card]{"entity": ..., "value": "credit"}
    assert not any("[" in ex.text or "](" in ex.text for v in project.examples.values() for ex in v)
    assert strip_entities('pay [$50](amount-of-money) to [John]{"entity": "PERSON"}') == "pay $50 to John"
    line = next(ex.where.line for ex in project.examples["check_balance"] if ex.text == "check my credit card balance")
    assert line == 125  # the line in nlu.yml


def test_rasa_migration_plan_uses_utter_responses_as_answers():
    plan = {d.name: d for d in migration_plan(load_project(RASA)).intents}
    assert len(plan) == 17
    assert plan["greet"].route == "template" and plan["greet"].answer == "Hi! I'm your Financial Assistant!"
    assert plan["check_balance"].route == "knowledge" and plan["check_balance"].answer == ""
    assert plan["human_handoff"].route == "handoff"
    assert len(plan["check_balance"].examples) == len(set(plan["check_balance"].examples))


def test_zendesk_private_notes_are_skipped_and_the_requester_is_the_customer():
    found = dialogs(FIXTURES / "zendesk_tickets.jsonl", "zendesk", tag_label_prefix="intent_")
    assert [d.id for d in found] == ["35436", "35437", "35438", "35439"]
    first = found[0]
    assert [t.role for t in first.turns] == [CUSTOMER, AGENT, CUSTOMER]  # the private note is gone
    assert not any("carrier first" in t.text for t in first.turns)
    assert first.label == "order_not_received" and first.turns[0].line == 1
    assert [t.role for t in found[2].turns] == [AGENT] and found[3].turns == ()
    assert dialogs(FIXTURES / "zendesk_tickets.jsonl", "zendesk")[0].label is None  # tags are no labels by default


def test_intercom_parts_become_turns_and_notes_are_skipped():
    found = dialogs(FIXTURES / "intercom_conversations.json", "intercom", tag_label_prefix="intent_")
    assert [d.id for d in found] == ["147", "148", "149"]
    first = found[0]
    assert [t.role for t in first.turns] == [CUSTOMER, AGENT, CUSTOMER]
    assert first.turns[0].text == "Hi there,\nhow do I reset my password? The reset e-mail never arrives."
    assert "<b>" not in first.turns[1].text and first.label == "reset_password"
    assert found[1].turns[0].line == 40  # the line where that conversation starts in the pretty-printed file
    assert [t.role for t in found[2].turns] == [AGENT]


def test_generic_rows_of_interleaved_conversations_are_regrouped():
    found = dialogs(FIXTURES / "generic_chats.csv", "generic")
    assert [d.id for d in found] == ["g1", "g2", "g3", "g4", "g5"]
    assert [t.text for t in found[0].turns] == ["Hi! where is my order?", "You can follow your order live on the tracking page."]
    assert found[1].label == "cancel_order" and found[1].turns[0].label == "cancel_order"
    assert [t.role for t in found[4].turns] == [CUSTOMER, SYSTEM, AGENT]
    assert found[1].turns[1].line == 5


def test_generic_columns_can_be_mapped():
    reading = Reading(FIXTURES / "mapped_chats.tsv", columns=("conversation_id=ticket", "role=who"))
    (dialog,) = read_dialogs(reading, "generic")
    assert dialog.id == "t1" and [t.role for t in dialog.turns] == [CUSTOMER, AGENT]
    with pytest.raises(ValueError, match=r"mapped_chats.tsv:1: missing column conversation_id, role .*--columns"):
        list(read_dialogs(Reading(FIXTURES / "mapped_chats.tsv"), "generic"))


def test_generic_json_lines(tmp_path):
    path = tmp_path / "turns.jsonl"
    path.write_text('{"conversation": "a", "speaker": "user", "message": "refund please for my order"}\n'
                    '{"conversation": "a", "speaker": "assistant", "message": "Refunds take 5 days."}\n')
    (dialog,) = dialogs(path, "generic")
    assert [(t.role, t.line) for t in dialog.turns] == [(CUSTOMER, 1), (AGENT, 2)]


@pytest.mark.parametrize("path, fmt", [
    (TWCS, "twitter"), (ABCD, "abcd"), (RASA, "rasa"), (FIXTURES / "zendesk_tickets.jsonl", "zendesk"),
    (FIXTURES / "intercom_conversations.json", "intercom"), (FIXTURES / "generic_chats.csv", "generic"),
])
def test_format_is_detected_from_the_file(path, fmt):
    assert detect_format(path) == fmt
