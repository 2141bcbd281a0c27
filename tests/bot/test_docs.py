"""Every setting and every CLI command is documented; `--help` stays light."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from docs import generate
import pytest

from docs.generate import README, updated_readme

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_is_current():
    text = README.read_text()
    for marker in (generate.START, generate.END, generate.DEFS_START, generate.DEFS_END):
        assert text.count(marker) == 1, f"README.md must hold the marker {marker!r} once"
    assert generate.settings_table() in text and generate.definitions_table() in text
    assert updated_readme(text) == text, "run `python -m docs.generate` to regenerate README.md's settings table"


def test_every_setting_has_help():
    from bot.settings import describe

    missing = [name for name, _, help in describe() if not help.strip()]
    assert missing == []


def test_every_command_is_in_the_readme_and_has_examples():
    import run_bot

    parser = run_bot.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = README.read_text()
    for name, command in sub.choices.items():
        assert f"`{name}`" in text, f"command {name} is not documented in README.md"
        assert command.description, f"command {name} has no description"
        heading, *examples = (command.epilog or "").splitlines() or [""]
        assert heading == "examples:" and examples, f"command {name} has no examples"
        for line in examples:  # `[VAR=value] python run_bot.py ARGS   what it does`, perhaps piped or redirected
            call = re.split(r"\s{2,}", line.strip().partition("run_bot.py ")[2])[0].partition(" > ")[0]
            try:
                args = parser.parse_args(shlex.split(call))
            except SystemExit:
                raise AssertionError(f"the example {line.strip()!r} of {name} does not parse") from None
            assert args.command == name, f"the example {line.strip()!r} is not one of {name}"


@pytest.mark.integration
def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys, run_bot\n"
        "try:\n    run_bot.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'sentence_transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "demo" in out and "train" in out


def test_each_command_has_help(capsys):
    import pytest

    import run_bot

    sub = next(a for a in run_bot.build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        with pytest.raises(SystemExit) as exit:
            run_bot.main([name, "--help"])
        assert exit.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_the_readmes_counts_of_the_demo_are_the_programs():
    """"the demo's N examples" and "its N help articles" are what the demo folder holds (they drifted: 478, 18)."""
    from bot.folder.bot_folder import BotFolder

    text = README.read_text()
    demo = BotFolder.load(ROOT / "examples" / "demo_store")
    examples = re.search(r"the demo's (\d+) examples", text)
    articles = re.search(r"embedding its (\d+) help articles", text)
    assert examples and int(examples.group(1)) == len(demo.seed_examples())
    assert articles and int(articles.group(1)) == sum(p.is_file() for p in demo.knowledge_dir.rglob("*"))
