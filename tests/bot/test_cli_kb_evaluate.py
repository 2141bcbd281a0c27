"""`run_bot.py kb evaluate`, `kb search --json` and `kb stats` on a knowledge-only bot folder (no intents.yaml)."""

from __future__ import annotations

import csv
import json

import run_bot

ARTICLES = {
    "returns.md": "# Returns\n\nYou can return items within 30 days. Refunds reach your bank within 5 business days.\n",
    "faq.csv": "question,answer,url\nDo you ship abroad?,We ship to 30 countries in Europe.,https://x.example/abroad\n",
}
LABELLED = ("question,document\n"
            "when do I get my refund,returns.md\n"  # by id
            "do you ship abroad,faq.csv\n"  # by file: any of its rows
            "returning an item,Returns\n"  # by title
            "what are your opening hours,hours.md\n")  # no such document: never found


def knowledge_only_bot(tmp_path):
    bot = tmp_path / "bot"
    (bot / "knowledge").mkdir(parents=True)
    (bot / "bot.toml").write_text(f'name = "kbonly"\nstate_dir = "{tmp_path / "state"}"\n')
    for name, text in ARTICLES.items():
        (bot / "knowledge" / name).write_text(text)
    return bot


def test_kb_commands_on_a_knowledge_only_bot(tmp_path, capsys):
    bot = knowledge_only_bot(tmp_path)
    assert run_bot.main(["kb", "sync", "--bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert "2 documents: 2 added" in out
    # two questions of its own cannot promise 95 %: the sync says so
    assert "answer threshold expected: " in out and "own questions" in out and "leans to suggesting" in out

    assert run_bot.main(["kb", "search", "when do I get my refund", "--json", "--bot", str(bot)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["answer"]["doc_id"] == "returns.md" and "5 business days" in found["answer"]["text"]
    assert [h["doc_id"] for h in found["hits"]] == ["returns.md", "faq.csv#do-you-ship-abroad"]
    assert found["ranking"].startswith("hybrid") and 0 < found["threshold"] <= 1

    assert run_bot.main(["kb", "stats", "--bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert "ranking hybrid, keyword_weight 0.5, titles mix" in out and "questions the base made from itself" in out
    assert "answer threshold" in out and "target precision 0.95" in out and "90 % interval from" in out

    labelled = tmp_path / "labelled.csv"
    labelled.write_text(LABELLED)
    results = tmp_path / "results.csv"
    assert run_bot.main(["kb", "evaluate", "--questions", str(labelled), "--out", str(results), "--bot", str(bot),
                         "--set", "knowledge.min_relevance=0.000001"]) == 0
    out = capsys.readouterr().out
    assert "4 questions" in out and "recall@1 0.750  recall@5 0.750  MRR@10 0.750" in out
    assert "answered confidently 4 (100.0%), right 75.0% of those" in out
    rows = list(csv.DictReader(results.open()))
    assert [(r["question"], r["rank"], r["right"]) for r in rows] == [
        ("when do I get my refund", "1", "1"), ("do you ship abroad", "1", "1"), ("returning an item", "1", "1"),
        ("what are your opening hours", "", "0")]

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,returns.md\n")
    assert run_bot.main(["kb", "evaluate", "--questions", str(bad), "--bot", str(bot)]) == 2
    assert "must name a question column" in capsys.readouterr().err
