"""A bot folder that would break at run time is refused when it loads, naming the file, the intent and the line
(issue 11): answer templates, duplicate keys, wrong types, bad routes and patterns in intents.yaml and bot.toml."""

from __future__ import annotations

import re

import pytest

from bot.folder.bot_folder import BotFolder, load_intents
from bot.settings import load_settings
from bot.dialogue.templates import template_problem

GOOD = """\
entities:
  order_id:
    pattern: '[A-Z]{2}\\d{5}'
intents:
  greet:
    examples: [hello]
    answer: Hello!
  track_order:
    examples: [where is my order]
    answer: Order {order_id} is on its way.
"""


def write(tmp_path, text):
    file = tmp_path / "intents.yaml"
    file.write_text(text)
    return file


@pytest.mark.parametrize("answer, problem", [
    ("Order {order_id is late.", "unbalanced brace"),
    ("Order order_id} is late.", "unbalanced brace"),
    ("Your {order id} is late.", "{order id}, which is not a variable name"),
    ("Your {order_id.upper} is late.", "{order_id.upper}, which is not a variable name"),
    ("Your {order_id[0]} is late.", "which is not a variable name"),
    ("Your {order_id!r} is late.", "{order_id!r}, which is not a variable name"),
    ("Your {order_id:>10} is late.", "which is not a variable name"),
    ("Empty {} braces.", "{}, which is not a variable name"),
    ("Hi {colour}.", "{colour}, which is no entity and has no prompt"),
])
def test_broken_templates_are_refused_with_file_intent_and_line(tmp_path, answer, problem):
    file = write(tmp_path, GOOD.replace("Order {order_id} is on its way.", repr(answer).replace("\\\\", "\\")))
    with pytest.raises(ValueError) as e:
        load_intents(file)
    message = str(e.value)
    assert message.startswith(f"{file}:10: intent track_order: answer "), message
    assert problem in message


def test_sound_templates_and_literal_braces_load(tmp_path):
    file = write(tmp_path, GOOD.replace("is on its way.", "is on its way {{really}}."))
    intents, _ = load_intents(file)
    assert intents["track_order"].answer.endswith("{{really}}.")
    assert template_problem("Hi {bot_name}, {order_id}", {"order_id", "bot_name"}) is None


def test_a_duplicate_intent_is_an_error_not_last_one_wins(tmp_path):
    file = write(tmp_path, GOOD + "  greet:\n    examples: [hi]\n    answer: Hi again!\n")
    with pytest.raises(ValueError, match=re.escape(f"{file}:11: invalid YAML: duplicate key 'greet' (first on line 5)")):
        load_intents(file)


def test_a_duplicate_field_inside_an_intent_is_an_error(tmp_path):
    file = write(tmp_path, GOOD.replace("    answer: Hello!\n", "    answer: Hello!\n    answer: Hi!\n"))
    with pytest.raises(ValueError, match=re.escape(f"{file}:8: invalid YAML: duplicate key 'answer'")):
        load_intents(file)


@pytest.mark.parametrize("change, line, reason", [
    (("    answer: Hello!\n", "    answer: Hello!\n    route: teleport\n"), 8, "route must be one of"),
    (("'[A-Z]{2}\\d{5}'", "'[A-Z'"), 3, "entity order_id: invalid pattern"),
    (("    examples: [hello]\n", "    examples: hello\n"), 6, "examples must be a list"),
    (("  greet:\n    examples: [hello]\n    answer: Hello!\n", "  greet: hello\n"), 5, "intent greet: expected a mapping"),
    (("    examples: [hello]\n", "    examples: [hello]\n    prompts: [name]\n"), 7, "prompts: expected a mapping"),
    (("    pattern: '[A-Z]{2}\\d{5}'\n", "    values: red\n"), 3, "values must be a list"),
])
def test_semantic_errors_in_intents_name_the_line(tmp_path, change, line, reason):
    file = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ValueError) as e:
        load_intents(file)
    assert str(e.value).startswith(f"{file}:{line}: ") and reason in str(e.value), str(e.value)


@pytest.mark.parametrize("toml, line, reason", [
    ('name = "x"\n\n[server]\nport = 8080\nratelimit = 3\n', 5, "unknown setting server.ratelimit"),
    ('[server]\nhost = "0.0.0.0"\nport = "eighty"\n', 3, "server.port must be int"),
    ('[server]\n\nport = 70000\n', 3, "server.port must be 1..65535"),
    ('[server]\nallowed_origins = [1, 2]\n', 2, "server.allowed_origins must be a list of strings"),
    ('[train]\nepochs = -1\n', 2, "epochs"),
    ('server = 5\n', 1, "[server] must be a table"),
    ('[server]\nrate_burst = 0\nrate_limit = 1\n', 2, "rate_burst=0"),
    ('[server]\nmodel_threads = 2\ntorch_threads = 2\n', 3, "server.torch_threads is the old name of server.model_threads"),
])
def test_semantic_errors_in_bot_toml_name_the_line(tmp_path, toml, line, reason):
    file = tmp_path / "bot.toml"
    file.write_text(toml)
    with pytest.raises(ValueError) as e:
        load_settings(file)
    assert str(e.value).startswith(f"{file}:{line}: ") and reason in str(e.value), str(e.value)


def test_an_override_error_names_the_override(tmp_path):
    file = tmp_path / "bot.toml"
    file.write_text("[server]\nport = 8080\n")
    with pytest.raises(ValueError, match=re.escape("--set server.port=0: ")):
        load_settings(file, ["server.port=0"])


def test_the_old_name_of_a_renamed_setting_still_works(tmp_path):
    file = tmp_path / "bot.toml"
    file.write_text("[server]\ntorch_threads = 3\n")
    assert load_settings(file).server.model_threads == 3
    assert load_settings(None, ["server.torch_threads=2"]).server.model_threads == 2


def test_a_broken_template_stops_the_bot_folder_loading(tmp_path):
    bot = tmp_path / "bot"
    bot.mkdir()
    (bot / "intents.yaml").write_text(GOOD.replace("{order_id}", "{order_id"))
    with pytest.raises(ValueError, match="unbalanced brace"):
        BotFolder.load(bot)


def test_a_mis_indented_line_or_a_tab_gets_a_hint_in_plain_words(tmp_path):
    """The parser says "expected <block end>, but found '<block sequence start>'"; the error adds what to check."""
    file = write(tmp_path, "intents:\n  track:\n     examples:\n    - where is my parcel\n    answer: On its way.\n")
    with pytest.raises(ValueError, match=re.escape(f"{file}:4: invalid YAML: expected <block end>")) as raised:
        load_intents(file)
    assert "check the indentation of line 4 and of the line above it" in str(raised.value)
    file = write(tmp_path, "intents:\n  greet:\n\texamples: [hi]\n")
    with pytest.raises(ValueError, match=re.escape(f"{file}:3: invalid YAML: found character")) as raised:
        load_intents(file)
    assert str(raised.value).endswith("(a tab: indent with spaces only)")
