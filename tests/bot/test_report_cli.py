"""`run_bot.py report`: the same figures as the page in the terminal, and a Markdown report with PNG plots."""

from __future__ import annotations

import time

import pytest

import run_bot
from runtime_doubles import write_bot
from test_analytics import Log, ten_conversations


@pytest.fixture
def bot(tmp_path):
    folder = write_bot(tmp_path / "bot")
    log = Log(tmp_path / "state" / "supportbot.db")
    start = time.time() - 3 * 86400  # settled: the 24-hour window has closed
    ten_conversations(log, start=start)
    log.rate(log.conversation((start + 5, "knowledge"), intent="store_hours", article="Opening hours"), "down")
    return ["--bot", str(folder), "--set", f'state_dir="{tmp_path / "state"}"']


def test_report_prints_each_rate_with_its_denominator(bot, capsys):
    assert run_bot.main(["report", "--since", "7d", *bot]) == 0
    out = capsys.readouterr().out
    assert "contained" in out and "72.7 %   8 of 11 settled conversations" in out
    assert "handed off" in out and "3 of 11 settled conversations" in out
    assert "thumbs down" in out and "1 of 1 ratings given" in out
    assert "Most thumbs-down articles:" in out and "Opening hours" in out


def test_markdown_report_with_png_plots(bot, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / "weekly" / "report.md"
    assert run_bot.main(["report", "--since", "1w", "--markdown", str(target), *bot]) == 0
    text = target.read_text()
    assert "| containment | 72.7 % | 8 of 11 settled conversations |" in text
    for name in ("outcomes", "routes", "latency"):
        png = tmp_path / "weekly" / f"report-{name}.png"
        assert f"]({png.name})" in text
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_since_and_a_missing_log_are_errors(tmp_path, capsys):
    folder = write_bot(tmp_path / "bot")
    args = ["--bot", str(folder), "--set", f'state_dir="{tmp_path / "none"}"']
    assert run_bot.main(["report", "--since", "lastweek", *args]) == 2
    assert "--since" in capsys.readouterr().err
    assert run_bot.main(["report", *args]) == 2
    assert "no conversation log" in capsys.readouterr().err
