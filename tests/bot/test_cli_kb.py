"""`run_bot.py kb`: add, search, stats, remove and sync on a tmp bot folder with the real MiniLM."""

from __future__ import annotations

import re
from pathlib import Path

import run_bot
from tests.knowledge.kb_doubles import write_articles

ARTICLES = {
    "returns.md": "# Returns\n\nYou can return items within 30 days. Refunds reach your bank within 5 business days.\n",
    "faq.csv": "question,answer,url\nDo you ship abroad?,We ship to 30 countries in Europe.,https://x.example/abroad\n",
}


def make_bot(tmp_path: Path) -> Path:
    bot = tmp_path / "bot"
    (bot / "knowledge").mkdir(parents=True)
    (bot / "bot.toml").write_text(f'name = "clitest"\nstate_dir = "{tmp_path / "state"}"\n')
    (bot / "intents.yaml").write_text("intents:\n  greet:\n    examples: [hi]\n    answer: Hello!\n")
    for name, text in ARTICLES.items():
        (bot / "knowledge" / name).write_text(text)
    return bot


def test_kb_commands(tmp_path, capsys):
    bot = make_bot(tmp_path)
    assert run_bot.main(["kb", "sync", "--bot", str(bot)]) == 0
    assert "2 documents: 2 added" in capsys.readouterr().out

    assert run_bot.main(["kb", "search", "when do I get my refund", "--bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert "Refunds reach your bank within 5 business days" in out
    assert " 1. " in out and "(returns.md)" in out

    extra = tmp_path / "more.md"
    extra.write_text("# Gift cards\n\nGift cards never expire.\n")
    assert run_bot.main(["kb", "add", str(extra), "--bot", str(bot)]) == 0
    assert run_bot.main(["kb", "stats", "--documents", "--bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert "documents 3" in out and "faq.csv#do-you-ship-abroad" in out and "index flat" in out

    assert run_bot.main(["kb", "remove", "more.md", "--bot", str(bot)]) == 0
    assert "removed 1 document" in capsys.readouterr().out
    assert run_bot.main(["kb", "remove", "nope.md", "--bot", str(bot)]) == 2
    assert "no document with id 'nope.md'" in capsys.readouterr().err

    (bot / "knowledge" / "faq.csv").unlink()
    assert run_bot.main(["kb", "sync", "--bot", str(bot)]) == 0
    assert "1 removed" in capsys.readouterr().out
    assert run_bot.main(["kb", "sync", str(tmp_path / "absent"), "--bot", str(bot)]) == 2


def test_kb_search_lists_hits_by_the_rank_score_it_prints(tmp_path, capsys):
    """Issue 32, item 9: a relevance of 0.04 listed above 0.33 read as out of order. Hits are listed in the
    ranking's order, which picks the answer, with that rank score printed beside relevance in labelled columns."""
    bot = tmp_path / "bot"
    bot.mkdir()
    (bot / "bot.toml").write_text(f'name = "helpcentre"\nstate_dir = "{tmp_path / "state"}"\n')
    write_articles(bot / "knowledge")  # the knowledge tests' five-document help centre
    assert run_bot.main(["kb", "sync", "--bot", str(bot)]) == 0
    capsys.readouterr()
    # the fused ranking puts shipping's International section first, relevance returns.md
    assert run_bot.main(["kb", "search", "international returns", "--bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert "hits by rank score (hybrid" in out and "    rank  relevance" in out
    line = re.compile(r"^ ?\d+\. +([\d.]+) +([\d.]+)  (.+?)(?: >|  \()", re.M)  # n. rank relevance title
    rows = [(float(m[1]), float(m[2]), m[3]) for m in line.finditer(out)]
    assert len(rows) == 5
    assert [rank for rank, _, _ in rows] == sorted((rank for rank, _, _ in rows), reverse=True)
    assert [rel for _, rel, _ in rows] != sorted((rel for _, rel, _ in rows), reverse=True)  # the case at hand
    verdict = out.splitlines()[0]  # "answer [0.97] Title <url>", or "no good answer (...) [0.53] Title <url>"
    assert verdict.split("] ", 1)[1].startswith(rows[0][2])  # the first hit is the one answered with


def test_serve_warns_when_intents_route_to_an_empty_knowledge_base(tmp_path):
    from bot.serving.readiness import knowledge_warnings
    from bot.folder.bot_folder import BotFolder

    bot = make_bot(tmp_path)
    assert knowledge_warnings(BotFolder.load(bot)) == []  # no intent routes there
    (bot / "intents.yaml").write_text(
        "intents:\n  greet:\n    examples: [hi]\n    answer: Hello!\n"
        "  product_question:\n    route: knowledge\n    examples: [is the lamp dimmable]\n")
    [warning] = knowledge_warnings(BotFolder.load(bot))
    assert "1 intents route to the knowledge base, which is empty (product_question)" in warning
    assert "1 of them have no answer of their own" in warning and "kb sync" in warning
