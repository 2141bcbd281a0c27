"""`run_bot.py import` and `run_bot.py intents` on a small bot folder; Rasa migration into a new bot folder."""

from __future__ import annotations

import pytest
import yaml

from import_doubles import FORMATS_DIR, WordEmbedder
from bot.cli import import_ as cli_import
from bot.folder.bot_folder import BotFolder
from core.sqlite import connect
from run_bot import main
from training.store import ExampleStore, ProposalStore

INTENTS = """\
# my bot
intents:
  track_order:
    answer: You can follow your order live on the tracking page.
    examples:
      - where is my order
  # the last intent
  refund:
    answer: Refunds reach your card within 5 days.
    examples:
      - where is my refund

entities:
  order_id:
    pattern: 'NW-\\d+'
"""


@pytest.fixture
def bot(tmp_path, monkeypatch):
    folder = tmp_path / "bot"
    folder.mkdir()
    (folder / "bot.toml").write_text(f'name = "t"\nstate_dir = "{tmp_path / "state"}"\n')
    (folder / "intents.yaml").write_text(INTENTS)
    monkeypatch.setattr(cli_import, "_embedder", lambda settings: WordEmbedder())
    return folder


def chats(tmp_path):
    rows = ["conversation_id,role,text"]
    for i in range(3):
        rows += [f"w{i},customer,wholesale discount for bulk mugs number {i}", f"w{i},agent,Let me check with the team."]
        rows += [f"g{i},customer,can you gift wrap my present number {i}", f"g{i},agent,I will ask the warehouse."]
    rows += ["t1,customer,hey where is my parcel", "t1,agent,You can follow your order live on the tracking page."]
    path = tmp_path / "chats.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def stored(folder):
    db = connect(BotFolder.load(folder).settings.db_path)
    return ExampleStore(db), ProposalStore(db)


def test_dry_run_previews_and_stores_nothing(bot, tmp_path, capsys):
    assert main(["import", str(chats(tmp_path)), "--bot", str(bot), "--dry-run", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "would add 7 new examples" in out and "template-match 1" in out and "[track_order via template-match]" in out
    assert not (tmp_path / "state" / "supportbot.db").exists()


def test_import_then_accept_merge_drop(bot, tmp_path, capsys):
    settings = ["--set", "transcripts.cluster_distance=0.5", "--set", "transcripts.min_cluster_size=3"]
    assert main(["import", str(chats(tmp_path)), "--bot", str(bot), "--no-progress", *settings]) == 0
    assert "clustered      6 unlabelled into 2 proposed intents" in capsys.readouterr().out
    store, proposals = stored(bot)
    assert store.examples()[0].provenance == "../chats.csv#t1:0" or store.examples()[0].provenance.endswith("chats.csv#t1:0")
    gift, bulk = sorted(proposals.proposals(), key=lambda p: "gift" not in p.name)

    assert main(["intents", "list", "--bot", str(bot)]) == 0
    assert f"#{gift.id}  {gift.name}  (3 examples)" in capsys.readouterr().out
    assert main(["intents", "accept", str(gift.id), "--name", "gift_wrap", "--bot", str(bot)]) == 0
    folder = BotFolder.load(bot)  # still valid, with the new intent at the end of the intents mapping
    assert list(folder.intents) == ["track_order", "refund", "gift_wrap"]
    assert folder.intents["gift_wrap"].route == "knowledge" and len(folder.intents["gift_wrap"].examples) == 3
    assert "TODO" in (bot / "intents.yaml").read_text() and "entities" in yaml.safe_load((bot / "intents.yaml").read_text())
    assert store.counts()["gift_wrap"] == 3
    assert {e.label_method for e in store.examples() if e.intent == "gift_wrap"} == {"cluster"}

    assert main(["intents", "accept", str(gift.id), "--bot", str(bot)]) == 2  # not open any more
    assert main(["intents", "accept", str(bulk.id), "--name", "refund", "--bot", str(bot)]) == 0  # existing intent
    assert store.counts()["refund"] == 3 and list(BotFolder.load(bot).intents) == ["track_order", "refund", "gift_wrap"]
    assert main(["intents", "drop", "99", "--bot", str(bot)]) == 2
    assert "no intent proposal 99" in capsys.readouterr().err


def test_merge_and_rename_and_invalid_names(bot, tmp_path, capsys):
    settings = ["--set", "transcripts.cluster_distance=0.5", "--set", "transcripts.min_cluster_size=3"]
    main(["import", str(chats(tmp_path)), "--bot", str(bot), "--no-progress", *settings])
    store, proposals = stored(bot)
    a, b = proposals.proposals()
    assert main(["intents", "merge", str(a.id), str(b.id), "--name", "bulk_gifts", "--bot", str(bot)]) == 0
    (merged,) = proposals.proposals()
    assert merged.id == a.id and merged.size == 6 and merged.name == "bulk_gifts"
    assert proposals.get(b.id).status == "merged"
    assert main(["intents", "rename", str(a.id), "gifts for cafes", "--bot", str(bot)]) == 2
    assert main(["intents", "rename", str(a.id), "cafe_gifts", "--bot", str(bot)]) == 0
    assert main(["intents", "drop", str(a.id), "--bot", str(bot)]) == 0
    assert proposals.proposals() == [] and store.counts().get("cafe_gifts") is None


def test_bad_input_is_an_error_naming_file_and_line(bot, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("conversation_id,text\nc1,hi\n")
    assert main(["import", str(bad), "--bot", str(bot), "--format", "generic", "--no-progress"]) == 2
    assert f"error: {bad}:1: missing column role" in capsys.readouterr().err


def test_rasa_project_migrates_into_a_bot_folder(tmp_path, capsys):
    target = tmp_path / "financial"
    assert main(["import", str(FORMATS_DIR / "rasa_financial_demo"), "--format", "rasa", "--into", str(target)]) == 0
    assert "17 intents" in capsys.readouterr().out
    folder = BotFolder.load(target)
    assert len(folder.intents) == 17 and folder.settings.name == "financial"
    assert folder.intents["greet"].answer == "Hi! I'm your Financial Assistant!"
    assert folder.intents["check_balance"].route == "knowledge"
    assert "What's my emblem card balance" in folder.intents["check_balance"].examples
    assert sum(len(i.examples) for i in folder.intents.values()) == 532  # one copy per normalised text
    assert "kept in check_balance" in (target / "intents.yaml").read_text()
    assert main(["import", str(FORMATS_DIR / "rasa_financial_demo"), "--format", "rasa", "--into", str(target)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err


def test_without_a_path_every_file_in_transcripts_is_imported(bot, tmp_path, capsys):
    (bot / "transcripts").mkdir()
    chats(tmp_path).rename(bot / "transcripts" / "chats.csv")
    (bot / "transcripts" / "more.csv").write_text("conversation_id,role,text\nm1,customer,do you sell gift cards\n")
    assert main(["import", "--bot", str(bot), "--no-progress", "--no-cluster"]) == 0
    out = capsys.readouterr().out
    assert out.count("Imported ") == 2
    store, _ = stored(bot)
    assert {e.provenance.split("#")[0] for e in store.examples(labelled=None)} == {"transcripts/chats.csv", "transcripts/more.csv"}


def test_transcripts_start_a_new_bot_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_import, "_embedder", lambda settings: WordEmbedder())
    target, state = tmp_path / "newbot", tmp_path / "newstate"
    args = ["import", str(chats(tmp_path)), "--into", str(target), "--no-progress", "--set", f'state_dir="{state}"']
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"Created {target}" in out and "7 found" in out and f"intents list --bot {target}" in out
    folder = BotFolder.load(target, [f'state_dir="{state}"'])
    assert folder.intents == {} and folder.settings.name == "newbot"
    assert (target / "transcripts" / "chats.csv").read_text() == (tmp_path / "chats.csv").read_text()
    store, proposals = stored_in(state)
    assert len(store.examples(labelled=None)) == 7 and proposals.proposals()  # requests stored, groups proposed

    assert main(args) == 2  # never over an existing bot
    assert "already exists and is not empty" in capsys.readouterr().err
    missing = ["import", str(tmp_path / "nope.csv"), "--into", str(tmp_path / "other"), "--format", "generic"]
    assert main(missing) == 2 and not (tmp_path / "other").exists()


def stored_in(state):
    db = connect(state / "supportbot.db")
    return ExampleStore(db), ProposalStore(db)


def proposed_bot(tmp_path, name):
    """A bot folder with the gift-wrap and wholesale requests imported and proposed (the same proposals each time)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "bot.toml").write_text(f'name = "t"\nstate_dir = "{tmp_path / name}-state"\n')
    (folder / "intents.yaml").write_text(INTENTS)
    settings = ["--set", "transcripts.cluster_distance=0.5", "--set", "transcripts.min_cluster_size=3"]
    assert main(["import", str(chats(tmp_path)), "--bot", str(folder), "--no-progress", *settings]) == 0
    return folder


def test_the_command_line_and_the_review_desk_accept_a_proposal_alike_and_both_undo(tmp_path, monkeypatch, capsys):
    from bot.database import open_bot_database
    from bot.review.desk import ReviewDesk

    monkeypatch.setattr(cli_import, "_embedder", lambda settings: WordEmbedder())
    monkeypatch.setattr("getpass.getuser", lambda: "robin")
    cli_bot, desk_bot = proposed_bot(tmp_path, "cli"), proposed_bot(tmp_path, "desk")
    folder = BotFolder.load(desk_bot)
    desk = ReviewDesk(open_bot_database(folder.settings), folder)
    (gift,) = [p for p in stored(cli_bot)[1].proposals() if "gift" in p.name]
    assert [(p.id, p.name) for p in desk.proposals.open()] == [(p.id, p.name) for p in stored(cli_bot)[1].proposals()]

    for bad in ("GiftWrap", "Gift_wrap", "_gift"):  # one name rule
        assert main(["intents", "accept", str(gift.id), "--name", bad, "--bot", str(cli_bot)]) == 2
        with pytest.raises(ValueError, match="lower-case"):
            desk.proposals.accept(gift.id, bad, "alice")
    capsys.readouterr()
    assert main(["intents", "accept", str(gift.id), "--bot", str(cli_bot)]) == 0  # the suggested name
    cli_action = int(capsys.readouterr().out.split("intents undo ")[1].split(")")[0])
    desk_out = desk.proposals.accept(gift.id, "", "alice")
    assert (cli_bot / "intents.yaml").read_text() == (desk_bot / "intents.yaml").read_text()
    assert gift.name in BotFolder.load(cli_bot).intents and "TODO" in (cli_bot / "intents.yaml").read_text()
    cli_store, cli_proposals = stored(cli_bot)
    assert cli_store.counts() == desk.examples.counts() and cli_store.counts()[gift.name] == 3
    (cli_record,) = ReviewDesk(open_bot_database(BotFolder.load(cli_bot).settings), BotFolder.load(cli_bot)).reviews.actions()
    assert (cli_record["id"], cli_record["action"], cli_record["actor"]) == (cli_action, "accept_proposal", "cli:robin")

    assert main(["intents", "undo", str(cli_action), "--bot", str(cli_bot)]) == 0
    desk.undo(desk_out.action_ids[0], "alice")
    for bot in (cli_bot, desk_bot):
        assert (bot / "intents.yaml").read_text() == INTENTS  # the intent and its note gone, the rest as it was
        store, proposals = stored(bot)
        assert gift.name not in store.counts() and proposals.get(gift.id).status == "open"
    assert main(["intents", "undo", str(cli_action), "--bot", str(cli_bot)]) == 2  # once


def test_rename_merge_and_drop_are_undone_from_the_command_line(bot, tmp_path, capsys):
    settings = ["--set", "transcripts.cluster_distance=0.5", "--set", "transcripts.min_cluster_size=3"]
    main(["import", str(chats(tmp_path)), "--bot", str(bot), "--no-progress", *settings])
    _, proposals = stored(bot)
    a, b = proposals.proposals()
    capsys.readouterr()

    def undo_id():
        return capsys.readouterr().out.split("intents undo ")[1].split(")")[0]

    for decision in (["rename", str(a.id), "cafe_gifts"], ["merge", str(a.id), str(b.id)], ["drop", str(b.id)]):
        assert main(["intents", *decision, "--bot", str(bot)]) == 0
        assert proposals.proposals() != [a, b]
        assert main(["intents", "undo", undo_id(), "--bot", str(bot)]) == 0
        assert proposals.proposals() == [a, b]
