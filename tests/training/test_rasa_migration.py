"""Migrating the Rasa projects in tests/fixtures/formats: each concept migrated or reported, the test stories
replayed, and bad Rasa input named by file and line."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

import run_bot
from bot.dialogue.replay import load_conversations, matches, replay
from bot.folder.bot_folder import BotFolder
from bot.dialogue.router import Conversation, Router
from training.classifier import Prediction
from training.rasa.plan import Slots, migration_plan
from training.rasa.project import load_project
from training.transcripts.source import TranscriptError

FORMATS = Path(__file__).resolve().parent.parent / "fixtures" / "formats"
EXAMPLES = FORMATS / "rasa_examples"
PROJECTS = [FORMATS / "rasa_financial_demo", *(EXAMPLES / b for b in ("moodbot", "formbot", "responseselectorbot", "rules"))]


def migrate(project: Path, tmp_path: Path, *extra: str) -> BotFolder:
    target = tmp_path / project.name
    assert run_bot.main(["import", str(project), "--into", str(target), *extra]) == 0
    return BotFolder.load(target)


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_every_fixture_project_migrates_with_a_report(project, tmp_path, capsys):
    folder = migrate(project, tmp_path)
    report = (folder.path / "MIGRATION.md").read_text()
    assert report.startswith(f"# Migration report: {project.name}") and "## Not carried over" in report
    assert "## Not carried over" in capsys.readouterr().out  # printed too
    assert "| session_config | domain.yml:" in report  # each dropped concept with its file and line


class LabelClassifier:
    """A test double that knows the intent of every test-story message (so the replay checks the answers)."""

    version, threshold, margin = "labels", 0.5, 0.0

    def __init__(self, labels: dict[str, str]):
        self.labels = labels

    def predict(self, texts, k=3):
        return [Prediction(self.labels.get(t), 1.0, [(self.labels.get(t, "x"), 1.0)], False, False) for t in texts]


def replay_with_labels(folder: BotFolder):
    conversations = load_conversations(folder.path / "conversations.yaml")
    model = LabelClassifier({t["user"]: t["intent"] for c in conversations for t in c["turns"]})

    async def classify(text):
        return model.predict([text])[0]

    router = Router(folder.intents, folder.entities, model, classify, None, folder.settings)
    return asyncio.run(replay(router, conversations))


@pytest.mark.parametrize("bot", ["moodbot", "responseselectorbot", "formbot"])
def test_migrated_example_bots_answer_every_scored_test_turn_as_rasa(bot, tmp_path):
    result = replay_with_labels(migrate(EXAMPLES / bot, tmp_path))
    assert result.scored and result.share == 1.0, result.summary()


def test_financial_demo_turns_without_a_linking_rule_are_listed_as_different(tmp_path):
    result = replay_with_labels(migrate(FORMATS / "rasa_financial_demo", tmp_path))
    different = {t.user for t in result.scored if not t.ok}
    assert "bye" not in different and "how do I use this" not in different  # utter_<intent> answers them
    assert "Thanks!" in different  # thankyou -> utter_noworries lives in rules.yml, which the sample lacks
    assert "needs the custom action action_show_balance" in {t.skip for t in result.turns}
    assert "1 of" not in result.summary().split("\n")[0]


def test_rules_and_stories_link_intents_to_responses_and_context_is_reported(tmp_path):
    folder = migrate(EXAMPLES / "moodbot", tmp_path)
    assert folder.intents["affirm"].answer == "Great, carry on!"  # rule: utter_did_that_help, affirm -> utter_happy
    assert folder.intents["mood_unhappy"].answer == "Here is something to cheer you up:\n\nDid that help you?"
    assert folder.intents["greet"].quick_replies == (("great", "/mood_great"), ("super sad", "/mood_unhappy"))
    report = (folder.path / "MIGRATION.md").read_text()
    assert "| response image | utter_cheer_up | domain.yml:21 |" in report
    assert "| story | sad path 1 | data/stories.yml:12 |" in report
    assert "affirm" in folder.settings.server.smalltalk_intents


def test_retrieval_intents_get_their_responses_from_data_with_variants(tmp_path):
    folder = migrate(EXAMPLES / "responseselectorbot", tmp_path)
    ask_name = folder.intents["chitchat_ask_name"]
    assert ask_name.answers == ("hello, my name is retrieval bot.", "Oh yeah, I am called the retrieval bot.")
    report = (folder.path / "MIGRATION.md").read_text()
    assert "defined again, differently" not in report  # data/responses.yml repeats nlu.yml's responses exactly
    assert "| response image | utter_chitchat/ask_name | data/nlu.yml:" in report


def test_retrieval_as_knowledge_writes_an_article_per_response(tmp_path):
    folder = migrate(EXAMPLES / "responseselectorbot", tmp_path, "--retrieval-as", "knowledge")
    assert "chitchat_ask_name" not in folder.intents
    chitchat = folder.intents["chitchat"]  # as Rasa's response selector: one intent, retrieval picks the answer
    assert chitchat.route == "knowledge" and {"What is your name?", "What's the weather like today?"} <= set(chitchat.examples)
    faq = (folder.path / "knowledge" / "chitchat.csv").read_text()
    assert faq.startswith("question,answer\n") and "hello, my name is retrieval bot." in faq


def test_entities_synonyms_and_forms(tmp_path):
    folder = migrate(EXAMPLES / "formbot", tmp_path)
    cuisine = folder.entities["cuisine"]
    assert cuisine.synonyms["gastro pub"] == "gastropub" and "afghan" in cuisine.values
    report = (folder.path / "MIGRATION.md").read_text()
    assert "| entity | number |" in report  # Duckling's number: no values, no pattern
    assert "validate_restaurant_form" in report
    turns = [t for c in load_conversations(folder.path / "conversations.yaml") for t in c["turns"]]
    assert {t.get("skip") for t in turns} >= {"needs the form restaurant_form"}
    from bot.dialogue.templates import EntityExtractor

    assert EntityExtractor(folder.entities).extract("a gastro pub please") == {"cuisine": "gastropub"}


def test_financial_synonyms_become_values_and_slots_become_variables():
    project = load_project(FORMATS / "rasa_financial_demo")
    plan = migration_plan(project)
    entities = {e.name: e for e in plan.entities}
    assert ("card", "credit") in entities["account_type"].synonyms
    assert ("emblm", "emblem") in entities["credit_card"].synonyms
    slots = Slots(project, set(entities))
    # currency: its initial value written in; PERSON and amount-of-money: entities found in the message
    assert slots.convert("{currency}10 to {PERSON}, {amount-of-money}") == ("$10 to {PERSON}, {amount_of_money}", "")
    text, why = slots.convert("balance {currency}{init_account_balance}")
    assert text is None and "init_account_balance" in why
    assert plan.fallback_message.startswith("Sorry, I'm not sure how to respond to that.")


def test_authored_examples_are_kept_unless_redact_is_asked(tmp_path):
    project = tmp_path / "p"
    shutil.copytree(EXAMPLES / "moodbot", project)
    nlu = project / "data" / "nlu.yml"
    nlu.write_text(nlu.read_text().replace("    - hey dude\n", "    - hey dude\n    - mail me at jo@example.com\n"))
    kept = migrate(project, tmp_path / "a")
    assert "mail me at jo@example.com" in kept.intents["greet"].examples
    assert "would be redacted with --redact" in (kept.path / "MIGRATION.md").read_text()
    redacted = migrate(project, tmp_path / "b", "--redact")
    assert "mail me at jo@example.com" not in redacted.intents["greet"].examples


def test_matches_takes_any_variant_and_slots_match_any_text():
    assert matches("Bye", ("Hi", "Bye"))
    assert matches("Sent $10 to Ann.", ("Sent {currency}{amount} to {PERSON}.",))
    assert not matches("Sent to Ann.", ("Sent {amount} to {PERSON} now.",))


# -- bad Rasa input ----------------------------------------------------------------------------------------
def _project(tmp_path: Path, nlu: bytes) -> Path:
    root = tmp_path / "bad"
    (root / "data").mkdir(parents=True)
    (root / "domain.yml").write_text("version: '3.1'\nintents: [greet]\nresponses:\n  utter_greet:\n  - text: Hi\n")
    (root / "data" / "nlu.yml").write_bytes(nlu)
    return root


def test_a_yaml_error_names_where_the_problem_starts_and_where_the_parser_stopped(tmp_path, capsys):
    nlu = b'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n- intent: "bye\n  examples: |\n    - bye\n'
    root = _project(tmp_path, nlu)
    with pytest.raises(TranscriptError) as e:
        load_project(root)
    assert e.value.line == 6 and "parser stopped at line" in str(e.value)  # the unclosed quote opens on line 6
    assert run_bot.main(["import", str(root), "--into", str(tmp_path / "out")]) == 2
    assert f"{root / 'data' / 'nlu.yml'}:6: invalid YAML" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_a_non_utf8_file_names_the_line(tmp_path):
    root = _project(tmp_path, 'nlu:\n- intent: greet\n  examples: |\n    - hi\n    - caf\xe9\n'.encode("latin-1"))
    with pytest.raises(TranscriptError) as e:
        load_project(root)
    assert e.value.line == 5 and "not UTF-8" in str(e.value) and "column 10" in str(e.value)


def test_empty_examples_are_reported_with_their_line_never_trained_on(tmp_path):
    root = _project(tmp_path, b'nlu:\n- intent: greet\n  examples: |\n    - hi\n    - \n    - ""\n    - hello\n')
    folder = migrate(root, tmp_path / "out")
    assert folder.intents["greet"].examples == ("hi", "hello")
    report = (folder.path / "MIGRATION.md").read_text()
    assert "| empty example | greet | data/nlu.yml:5 |" in report and "data/nlu.yml:6" in report


FORM_DOMAIN = """version: "3.1"
intents: [track_order]
entities: [order_id]
slots:
  order_id:
    type: text
    mappings:
    - type: from_entity
      entity: order_id
forms:
  order_form:
    required_slots: [order_id]
responses:
  utter_ask_order_id:
  - text: What is your order number?
  utter_order_status:
  - text: Order {order_id} is on its way.
"""
FORM_DATA = """version: "3.1"
nlu:
- intent: track_order
  examples: |
    - where is my order
    - track order [AB12345](order_id)
- regex: order_id
  examples: |
    - [A-Z]{2}\\d{5}
rules:
- rule: activate
  steps:
  - intent: track_order
  - action: order_form
  - active_loop: order_form
- rule: submit
  condition:
  - active_loop: order_form
  steps:
  - action: order_form
  - active_loop: null
  - action: utter_order_status
"""


async def test_a_form_whose_slots_are_entities_becomes_prompts(tmp_path):
    root = tmp_path / "orders"
    (root / "data").mkdir(parents=True)
    (root / "domain.yml").write_text(FORM_DOMAIN)
    (root / "data" / "nlu.yml").write_text(FORM_DATA)
    folder = migrate(root, tmp_path / "out")
    intent = folder.intents["track_order"]
    assert intent.answer == "Order {order_id} is on its way." and intent.prompts == {"order_id": "What is your order number?"}
    assert folder.entities["order_id"].pattern.search("it is XY99999") is not None  # the regex became a pattern
    assert "| form | order_form |" not in (folder.path / "MIGRATION.md").read_text()
    model = LabelClassifier({"where is my order": "track_order"})

    async def classify(text):
        return model.predict([text])[0]

    router = Router(folder.intents, folder.entities, model, classify, None, folder.settings)
    convo = Conversation("c")
    assert (await router.respond("where is my order", convo)).answer == "What is your order number?"
    assert (await router.respond("it is XY99999", convo)).answer == "Order XY99999 is on its way."


def test_evaluate_conversations_replays_the_migrated_test_stories(tmp_path, tiny_bert, capsys):
    folder = migrate(EXAMPLES / "moodbot", tmp_path)
    state = [f"state_dir={str(tmp_path / 'state')!r}".replace("'", '"')]
    tiny = ["--set", f'train.base_model="{tiny_bert}"', "--set", "train.onnx=false", "--set", "train.epochs=1", "--set", "train.min_steps=0",
            "--set", state[0]]
    assert run_bot.main(["train", "--bot", str(folder.path), "--quiet", *tiny]) == 0
    capsys.readouterr()
    assert run_bot.main(["evaluate", "--conversations", "--bot", str(folder.path), "--set", state[0]]) == 0
    out = capsys.readouterr().out
    assert " of 10 scored turns got the expected reply" in out  # a random tiny model: some turns differ, listed
    assert out.count("  different: ") == 10 - int(out.split(" of 10")[0].split()[-1])
    report = Path(out.split("report: ")[1].strip())  # written into the serving version's folder
    assert report.name == "conversations.json" and json.loads(report.read_text())["scored"] == 10


def test_test_nlu_data_is_held_out_in_evaluation_csv_never_trained_on(tmp_path):
    root = _project(tmp_path, b'nlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello\n')
    (root / "tests").mkdir()
    (root / "tests" / "test_nlu.yml").write_text('nlu:\n- intent: greet\n  examples: |\n    - [good](x) morning\n')
    folder = migrate(root, tmp_path / "out")
    assert folder.intents["greet"].examples == ("hi", "hello")
    assert (folder.path / "evaluation.csv").read_text() == "text,intent\ngood morning,greet\n"


def test_the_migrated_intents_yaml_is_written_by_the_round_trip_writer(tmp_path, monkeypatch):
    from bot.folder import intents_file

    written = []
    write = intents_file._write
    monkeypatch.setattr(intents_file, "_write", lambda file, doc: written.append(file.name) or write(file, doc))
    folder = migrate(EXAMPLES / "moodbot", tmp_path)
    assert written == ["intents.yaml"]
    file = folder.path / "intents.yaml"
    before = file.read_text()
    assert before.startswith("# Migrated from the Rasa project moodbot")
    assert "  greet:\n    # Answer from utter_greet (rule 'greet' (data/rules.yml:3)).\n" in before
    intents_file.set_answer(file, "greet", "Hello!")  # a review edit changes that one line and keeps the comments
    changed = [(a, b) for a, b in zip(before.splitlines(), file.read_text().splitlines()) if a != b]
    assert changed == [("    answer: Hey! How are you?", "    answer: Hello!")]
    assert len(file.read_text().splitlines()) == len(before.splitlines())
    assert BotFolder.load(folder.path).intents["affirm"].examples[:2] == ("yes", "y")
