"""The review queue and its actions on both engines (SQLite and a real PostgreSQL server): grouping, status that
sticks, every action and its undo, bulk actions; the upgrade of review tables made before versioned migrations."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from bot.dialogue.conversations import ConversationLog
from bot.folder.bot_folder import BotFolder, load_intents
from bot.review.desk import ReviewDesk
from bot.review.store import Filters, audited, group_key
from bot.dialogue.router import Decision, Reply
from core.engine import open_database
from core.sqlite import hand_over
from runtime_doubles import write_bot
from training.redact import Redactor


@pytest.fixture
def bot(tmp_path, db_location):
    folder = BotFolder.load(write_bot(tmp_path / "bot"), [f'state_dir="{tmp_path / "state"}"', "review.audit_rate=0"])
    db = open_database(db_location)
    yield folder, ConversationLog(db, Redactor()), ReviewDesk(db, folder)
    db.close()


def say(log, text, route="fallback", intent=None, flags=("fallback",), confidence=0.2, version="v1"):
    convo, token = log.new()
    decision = Decision(route=route, reason="test", intent=intent, confidence=confidence,
                        alternatives=(("track_order", confidence),), model_version=version, flags=flags)
    return convo, log.record_turn(convo, text, Reply("an answer", decision), token)


def examples(desk):
    return {e.text: (e.intent, e.source, e.label_method, e.provenance) for e in desk.examples.examples()}


def test_group_key_ignores_case_punctuation_and_numbers():
    assert group_key("Where is order NW-123456?!") == group_key("where is order nw 998877")
    assert group_key("refund please") != group_key("return please")


def test_near_identical_messages_are_one_group_and_one_decision_settles_all(bot):
    folder, log, desk = bot
    for text in ("where is my parcel 123", "Where is my parcel 456?", "where is  my parcel"):
        say(log, text)
    say(log, "something else entirely")
    desk.sync()
    page = desk.reviews.page(Filters())
    assert sorted(g["size"] for g in page.groups) == [1, 3]
    big = next(g for g in page.groups if g["size"] == 3)
    desk.act(big["id"], "correct", "alice", intent="track_order")
    stored = examples(desk)
    assert {t for t, v in stored.items() if v[0] == "track_order" and v[1] == "review"} == {
        "where is my parcel 123", "Where is my parcel 456?", "where is  my parcel"}
    assert [g["text"] for g in desk.reviews.page(Filters()).groups] == ["something else entirely"]


def test_a_sync_in_batches_files_what_one_sync_files(bot, monkeypatch):
    """The server syncs one batch per database-thread task (chat turns are written in between): the batches
    must add up to the whole."""
    import bot.review.store as reviews

    folder, log, desk = bot
    monkeypatch.setattr(reviews, "SYNC_BATCH", 2)
    for text in ("where is my parcel 1", "where is my parcel 2", "refund", "login broken", "hello there"):
        say(log, text)
    calls = [desk.sync(1) for _ in range(3)]  # 5 flags in batches of 2, then the audit pass over 5 turns
    assert [(c["flags"], c["more"]) for c in calls] == [(2, 1), (2, 1), (1, 1)]
    rounds = 0
    while desk.sync(1)["more"]:
        rounds += 1
    assert rounds == 2  # the turns, in batches of 2 (the last call found nothing left)
    assert sorted((g["text"], g["size"]) for g in desk.reviews.page(Filters()).groups) == [
        ("hello there", 1), ("login broken", 1), ("refund", 1), ("where is my parcel 2", 2)]
    assert desk.sync() == {"flags": 0, "audits": 0, "clarifications": 0, "more": 0}


def test_one_batch_files_each_turn_as_one_at_a_time_would(bot):
    """A batch is filed with a few statements, not per row: a group already filed takes its newest turn, a turn
    with two flags counts once and lists both kinds, a second sync changes nothing."""
    folder, log, desk = bot
    _, first = say(log, "where is my parcel 1")
    desk.sync()
    _, two_flags = say(log, "Where is my parcel 2?", flags=("fallback", "low_confidence"), version="v2")
    _, refund = say(log, "refund please")
    _, newest = say(log, "where is my parcel 3", route="handoff", flags=("handoff",), version="v3")
    assert desk.sync()["flags"] == 4
    groups = log.db.execute("select text, size, kinds, last_turn_id, route, model_version from review_groups"
                            " order by id").fetchall()
    assert [tuple(g) for g in groups] == [
        ("where is my parcel 3", 3, ",fallback,low_confidence,handoff,", newest, "handoff", "v3"),
        ("refund please", 1, ",fallback,", refund, "fallback", "v1")]
    entries = log.db.execute("select turn_id, kind from review_entries order by turn_id, kind").fetchall()
    assert [tuple(e) for e in entries] == [(first, "fallback"), (two_flags, "fallback"), (two_flags, "low_confidence"),
                                           (refund, "fallback"), (newest, "handoff")]
    assert desk.sync()["flags"] == 0
    assert [tuple(g) for g in log.db.execute("select text, size, kinds, last_turn_id, route, model_version"
                                             " from review_groups order by id").fetchall()] == groups


def test_an_ignored_message_stays_ignored_when_it_comes_again(bot):
    folder, log, desk = bot
    say(log, "asdf qwerty")
    desk.sync()
    group = desk.reviews.page(Filters()).groups[0]
    desk.act(group["id"], "ignore", "alice")
    say(log, "ASDF  qwerty!")
    desk.sync()
    assert desk.reviews.page(Filters()).groups == []
    ignored = desk.reviews.page(Filters(status="ignored")).groups
    assert [(g["id"], g["size"]) for g in ignored] == [(group["id"], 2)]


def test_confirm_adds_a_review_example_with_the_turn_as_provenance_and_undo_removes_it(bot):
    folder, log, desk = bot
    _, turn = say(log, "track the parcel", route="template", intent="track_order", flags=("low_confidence",))
    desk.sync()
    gid = desk.reviews.page(Filters()).groups[0]["id"]
    out = desk.act(gid, "confirm", "alice")
    assert examples(desk)["track the parcel"] == ("track_order", "review", "review-confirmed", f"turn:{turn}")
    record = desk.reviews.action(out.action_ids[0])
    assert record["actor"] == "alice" and record["before"]["status"] == "new" and record["after"]["status"] == "done"
    desk.undo(out.action_ids[0], "bob")
    assert "track the parcel" not in examples(desk)
    assert desk.reviews.group(gid)["status"] == "new"
    assert desk.reviews.action(out.action_ids[0])["undone_by"] == "bob"
    with pytest.raises(ValueError):
        desk.undo(out.action_ids[0], "bob")


def test_correct_to_a_new_intent_writes_intents_yaml_keeping_comments_and_undo_removes_it(bot):
    folder, log, desk = bot
    file = folder.path / "intents.yaml"
    file.write_text("# our intents, kept by the support team\n" + file.read_text())
    say(log, "do you sell gift cards")
    desk.sync()
    gid = desk.reviews.page(Filters()).groups[0]["id"]
    out = desk.act(gid, "correct", "alice", intent="gift_cards", answer="Yes, from 10 to 200 euros.")
    assert out.files == ["intents.yaml"] and out.reload_router
    intents, _ = load_intents(file)
    assert intents["gift_cards"].answer == "Yes, from 10 to 200 euros."
    assert intents["gift_cards"].examples == ("do you sell gift cards",)
    assert file.read_text().startswith("# our intents, kept by the support team\n")
    assert examples(desk)["do you sell gift cards"][0] == "gift_cards"
    desk.undo(out.action_ids[0], "alice")
    assert "gift_cards" not in load_intents(file)[0]
    assert "do you sell gift cards" not in examples(desk)


def test_a_new_intent_keeps_examples_that_yaml_1_1_reads_as_booleans(bot):
    folder, log, desk = bot
    say(log, "yes")  # the writer speaks YAML 1.2 (ruamel), load_intents reads 1.1 (PyYAML): "yes" must be quoted
    desk.sync()
    gid = desk.reviews.page(Filters()).groups[0]["id"]
    desk.act(gid, "correct", "alice", intent="agree", answer="on")
    intents, _ = load_intents(folder.path / "intents.yaml")
    assert intents["agree"].examples == ("yes",) and intents["agree"].answer == "on"


def test_answer_rewrites_the_template_and_undo_restores_it(bot):
    folder, log, desk = bot
    file = folder.path / "intents.yaml"
    say(log, "hours?", route="knowledge", intent="store_hours", flags=("negative_feedback",))
    desk.sync()
    gid = desk.reviews.page(Filters()).groups[0]["id"]
    out = desk.act(gid, "answer", "alice", intent="store_hours", answer="We are open 8 to 8, every day.")
    assert load_intents(file)[0]["store_hours"].answer == "We are open 8 to 8, every day."
    assert out.files == ["intents.yaml"] and out.reload_router
    desk.undo(out.action_ids[0], "alice")
    assert load_intents(file)[0]["store_hours"].answer == "We are open 9 to 5."


def test_out_of_scope_marks_become_out_of_scope_examples_and_undo_removes_them(bot):
    folder, log, desk = bot
    say(log, "what is the meaning of life")
    desk.sync()
    gid = desk.reviews.page(Filters()).groups[0]["id"]
    out = desk.act(gid, "out_of_scope", "alice")
    assert examples(desk)["what is the meaning of life"][:3] == ("out_of_scope", "review", "review-out-of-scope")
    desk.undo(out.action_ids[0], "alice")
    assert "what is the meaning of life" not in examples(desk)


def test_article_is_written_under_knowledge_and_undo_deletes_it(bot):
    folder, log, desk = bot
    say(log, "do you deliver to norway")
    desk.sync()
    gid = desk.reviews.page(Filters()).groups[0]["id"]
    out = desk.act(gid, "article", "alice", title="Delivery to Norway", body="Yes, in 5 to 7 days.")
    assert out.files == ["knowledge/delivery-to-norway.md"] and out.sync_knowledge
    assert (folder.path / out.files[0]).read_text() == "# Delivery to Norway\n\nYes, in 5 to 7 days.\n"
    desk.undo(out.action_ids[0], "alice")
    assert not (folder.path / out.files[0]).exists()


def test_ignore_and_undo(bot):
    folder, log, desk = bot
    say(log, "zzz")
    desk.sync()
    gid = desk.reviews.page(Filters()).groups[0]["id"]
    out = desk.act(gid, "ignore", "alice")
    assert desk.reviews.group(gid)["status"] == "ignored"
    desk.undo(out.action_ids[0], "alice")
    assert desk.reviews.group(gid)["status"] == "new"


def test_bulk_acts_on_the_whole_filtered_selection_not_one_page_and_undoes_together(bot):
    folder, log, desk = bot
    for i in range(7):
        say(log, f"refund question number {'abcdefg'[i]}", flags=("low_confidence",))
    say(log, "a handoff one", route="handoff", flags=("handoff",))
    desk.sync()
    selection = Filters(kind="low_confidence")
    assert len(desk.reviews.page(selection, limit=3).groups) == 3
    out = desk.bulk(selection, "out_of_scope", "alice")
    assert out.groups == 7 and out.examples_added == 7
    assert [g["text"] for g in desk.reviews.page(Filters()).groups] == ["a handoff one"]
    desk.undo_bulk(out.bulk_id, "alice")
    assert len(desk.reviews.page(Filters()).groups) == 8
    assert not any(v[0] == "out_of_scope" for v in examples(desk).values())


def test_bulk_adds_examples_but_never_relabels_an_existing_one(bot):
    folder, log, desk = bot
    say(log, "where is my order", flags=("low_confidence",))  # a seed example of track_order
    desk.examples.add(folder.seed_examples())
    desk.sync()
    out = desk.bulk(Filters(), "correct", "alice", intent="cancel_order")
    assert examples(desk)["where is my order"][0] == "track_order"
    assert out.notes and "left as it is" in out.notes[0]


def test_filters_sort_and_keyset_pagination(bot):
    folder, log, desk = bot
    for i in range(5):
        say(log, f"message {'abcde'[i]}", version="v1" if i < 3 else "v2", intent="track_order" if i % 2 else None)
    for _ in range(3):
        say(log, "message c")
    desk.sync()
    assert [g["text"] for g in desk.reviews.page(Filters(model_version="v2")).groups] == ["message e", "message d"]
    assert {g["text"] for g in desk.reviews.page(Filters(intent="track_order")).groups} == {"message b", "message d"}
    assert [g["text"] for g in desk.reviews.page(Filters(text="AGE E")).groups] == ["message e"]
    assert desk.reviews.page(Filters(sort="frequent")).groups[0]["text"] == "message c"
    seen, cursor = [], None
    while True:
        page = desk.reviews.page(Filters(), cursor, limit=2)
        seen += [g["text"] for g in page.groups]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == [f"message {c}" for c in "abcde"] and len(seen) == 5
    assert desk.reviews.page(Filters()).counts["fallback"] == 5


def test_the_suggested_order_reads_its_candidates_and_pages_through_a_given_order(bot):
    folder, log, desk = bot
    for c in "abcde":
        say(log, f"message {c}", version="v2" if c in "de" else "v1")
    desk.sync()
    candidates = desk.reviews.candidates(Filters(model_version="v2"), 10)
    assert [(c["text"], c["size"]) for c in candidates] == [("message e", 1), ("message d", 1)]
    ids = {g["text"]: g["id"] for g in desk.reviews.page(Filters(sort="newest")).groups}
    order = [ids[f"message {c}"] for c in "cabed"]
    first = desk.reviews.page(Filters(), None, 3, order)
    rest = desk.reviews.page(Filters(), first.next_cursor, 3, order)
    assert [g["text"] for g in first.groups + rest.groups] == [f"message {c}" for c in "cabed"]
    assert rest.next_cursor is None
    with pytest.raises(ValueError, match="not a next_cursor"):
        desk.reviews.page(Filters(), "1.5:3", 3, order)


def test_audit_sample_of_confident_answers(bot, tmp_path):
    folder, log, _ = bot
    desk = ReviewDesk(log.db, BotFolder.load(folder.path, [f'state_dir="{tmp_path / "state"}"', "review.audit_rate=0.5"]))
    turns = [say(log, f"confident {'abcdefghij'[i // 4]}{'wxyz'[i % 4]}", route="template", intent="track_order", flags=(), confidence=0.99)[1]
             for i in range(40)]
    desk.sync()
    audits = desk.reviews.page(Filters(kind="audit"), limit=100).groups
    assert {g["last_turn_id"] for g in audits} == {t for t in turns if audited(t, 0.5)}
    assert 5 < len(audits) < 35


def test_clarification_picks_become_conversation_examples(bot):
    folder, log, desk = bot
    convo, token = log.new()
    asked = Decision(route="clarify", reason="close", intent="cancel_order", confidence=0.46, flags=("clarification",))
    log.record_turn(convo, "cancel or track it", Reply("Did you mean", asked), token)
    picked = Decision(route="template", reason="quick reply", intent="track_order", confidence=1.0)
    turn = log.record_turn(convo, "/track_order", Reply("On its way", picked))
    desk.sync()
    assert examples(desk)["cancel or track it"] == ("track_order", "conversation", "clarification", f"turn:{turn - 1}")


def test_review_cli_list_show_export(bot, tmp_path, capsys, db_location):
    import csv
    import io
    import json

    import run_bot

    folder, log, desk = bot
    convo, turn = say(log, "<b>where</b> is my refund", flags=("negative_feedback",))
    common = ["--bot", str(folder.path), "--set", f'state_dir="{tmp_path / "state"}"']
    if db_location.startswith("postgresql"):
        common += ["--set", f'database.url="{db_location}"']
    assert run_bot.main(["review", "list", *common]) == 0
    out = capsys.readouterr().out
    assert "<b>where</b> is my refund" in out and "negative_feedback 1" in out
    gid = int(out.split()[0])
    assert run_bot.main(["review", "show", str(gid), *common]) == 0
    assert "route fallback" in capsys.readouterr().out
    assert run_bot.main(["review", "export", "--format", "jsonl", *common]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["text"], r["kinds"]) for r in rows] == [(gid, "<b>where</b> is my refund", ["negative_feedback"])]
    assert run_bot.main(["review", "export", "--format", "csv", "--status", "done", *common]) == 0
    assert list(csv.DictReader(io.StringIO(capsys.readouterr().out))) == []
    assert run_bot.main(["review", "show", "999", *common]) == 2


def test_counts_follow_every_write_including_another_connections(bot, db_location):
    folder, log, desk = bot
    say(log, "first unknown thing")
    desk.sync()
    assert desk.reviews.counts()["fallback"] == 1
    gid = desk.reviews.page(Filters()).groups[0]["id"]
    desk.act(gid, "ignore", "alice")
    assert desk.reviews.counts()["fallback"] == 0 and desk.reviews.counts("ignored")["fallback"] == 1
    other = ReviewDesk(open_database(db_location), folder)  # e.g. the CLI in another process
    other.undo(other.reviews.actions(group_id=gid).__next__()["id"], "bob")
    assert desk.reviews.counts()["fallback"] == 1
    other.db.close()


def test_accepting_a_cluster_as_a_new_intent_and_undoing_it(bot):
    folder, log, desk = bot
    turns = [say(log, t)[1] for t in ("gift wrap please", "can you gift wrap", "gift wrapping")]
    desk.sync()
    out = desk.label_texts([(t, i) for t, i in zip(("gift wrap please", "can you gift wrap", "gift wrapping"), turns)],
                           "gift_wrap", "review-cluster", "alice", new_intent=True)
    assert out.examples_added == 3 and out.files == ["intents.yaml"]
    assert load_intents(folder.path / "intents.yaml")[0]["gift_wrap"].route == "knowledge"
    assert examples(desk)["can you gift wrap"] == ("gift_wrap", "review", "review-cluster", f"turn:{turns[1]}")
    desk.undo(out.action_ids[0], "alice")
    assert "gift_wrap" not in load_intents(folder.path / "intents.yaml")[0]
    assert "can you gift wrap" not in examples(desk)


def test_a_confirmed_knowledge_answer_becomes_a_question_the_base_tunes_on_and_undo_takes_it_back(bot):
    from bot.review.store import confirmed_answers
    from bot.dialogue.router import Source

    folder, log, desk = bot
    convo, token = log.new()
    decision = Decision(route="knowledge", reason="kb", confidence=0.7, flags=("low_confidence",),
                        sources=(Source("Shipping abroad", "", 0.7, "faq.csv#do-you-ship-abroad"),))
    log.record_turn(convo, "can you send a parcel to france", Reply("Yes, to 40 countries.", decision), token)
    desk.sync()
    gid = desk.reviews.page(Filters()).groups[0]["id"]
    assert confirmed_answers(desk.db) == []
    out = desk.act(gid, "confirm", "alice")  # no intent named: the knowledge answer itself is confirmed
    assert out.sync_knowledge and out.examples_added == 0
    assert confirmed_answers(desk.db) == [("can you send a parcel to france", "faq.csv#do-you-ship-abroad")]
    undone = desk.undo(out.action_ids[0], "bob")
    assert undone.sync_knowledge and confirmed_answers(desk.db) == []


def test_review_tables_made_before_migrations_upgrade_in_place_losing_nothing(tmp_path):
    path = tmp_path / "bot.db"
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "databases" / "bot_v0.db", path)
    tables = ("review_groups", "review_entries", "review_actions", "review_state")

    def dump():
        with sqlite3.connect(path) as c:
            return {t: c.execute(f"select * from {t} order by rowid").fetchall() for t in tables}

    before = dump()
    assert [len(before[t]) for t in tables] == [3, 5, 1, 3]
    folder = BotFolder.load(write_bot(tmp_path / "bot"), [f'state_dir="{tmp_path / "state"}"', "review.audit_rate=0"])
    db = open_database(str(path))
    try:
        desk = ReviewDesk(db, folder)
        assert dump() == before
        assert [g["text"] for g in desk.reviews.page(Filters(status="ignored")).groups] == ["blorp!"]
        assert desk.reviews.counts("")["fallback"] == 1 and desk.sync() == {"flags": 0, "audits": 0, "clarifications": 0, "more": 0}
        undone = desk.undo(next(desk.reviews.actions())["id"], "bob")
        assert undone is not None and desk.reviews.counts()["fallback"] == 1
    finally:
        db.close()


def test_two_workers_syncing_at_once_file_each_flag_once(bot, db_location):
    import threading

    folder, log, desk = bot
    for text in ("where is my parcel 1", "where is my parcel 2", "something else"):
        say(log, text)
    def sync(other: ReviewDesk) -> None:  # on its own thread, as another worker would
        other.reviews.sync()
        other.db.close()

    others = [ReviewDesk(open_database(db_location), folder) for _ in range(2)]
    for o in others:
        hand_over(o.db)  # each connection belongs to the thread that syncs on it
    threads = [threading.Thread(target=sync, args=[o]) for o in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(g["size"] for g in desk.reviews.page(Filters()).groups) == [1, 2]
    assert desk.reviews.counts()["fallback"] == 2 and desk.sync()["flags"] == 0


def test_review_cli_on_a_bot_that_never_served_shows_an_empty_queue(tmp_path, capsys):
    import run_bot

    folder = write_bot(tmp_path / "bot")
    common = ["--bot", str(folder), "--set", f'state_dir="{tmp_path / "fresh"}"']
    assert run_bot.main(["review", "list", *common]) == 0
    assert capsys.readouterr().out.startswith("0 shown")
    assert run_bot.main(["review", "export", "--format", "jsonl", *common]) == 0
    assert capsys.readouterr().out == ""
    assert run_bot.main(["review", "show", "1", *common]) == 2
    assert "no review item 1" in capsys.readouterr().err
