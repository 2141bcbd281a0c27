"""Retraining with replay, new intents, the gate, shadow scoring, the lock and crashes — on the tiny random BERT."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.sqlite import connect
from training import gate
from training.classifier import IntentClassifier, Prediction
from training.pipeline import train
from training.registry import ModelRegistry
from training.retrain import retrain
from training.runs import RetrainBusy, RetrainLock, RunLog
from training.settings import RetrainSettings
from training.store import Example, ExampleStore
from tests.support.servers import log_tail, start
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
OLD = {
    "track": ["where is my order", "where is my parcel", "track my package", "tracking my delivery",
              "where is the package", "my parcel is late", "my order is lost", "track the order please"],
    "refund": ["i want my money back", "refund my card", "where is my refund", "money back please",
               "can i get a refund", "refund for the return", "i want a refund", "return and refund"],
    "login": ["reset my password", "i can not login", "password reset please", "login failed",
              "change my password", "my account login", "reset the password", "help with login"],
}
GOLDEN = {"track": ["where is my order please", "track my parcel please"],
          "refund": ["i want my money back please", "refund my card please"],
          "login": ["reset my password please", "login failed please"]}
CANCEL = ["cancel my order", "please cancel the order", "cancel it", "i want to cancel", "cancel my package",
          "how do i cancel", "cancel the delivery", "cancel my payment"]


@pytest.fixture
def bot(tiny_settings, tmp_path):
    """A store with three intents and a golden set, and a first model version serving."""
    db = connect(None)
    store = ExampleStore(db)
    store.add(Example(t, i, source="seed") for i, ts in OLD.items() for t in ts)
    store.add(Example(t, i, source="file", split="test") for i, ts in GOLDEN.items() for t in ts)
    registry = ModelRegistry(tmp_path / "models")
    # The gate is under test, not the score: distances between a random tiny BERT's features mean nothing,
    # so these versions answer on their top probability and the gate sees what the labels taught.
    tiny_settings = dataclasses.replace(tiny_settings, oos_score="max_prob")
    first = train(store.examples(), tiny_settings, registry, progress=False)
    return tiny_settings, store, registry, RunLog(db), tmp_path / "retrain.lock", first


def run(bot, **settings):
    train_settings, store, registry, runs, lock, _ = bot
    return retrain(store.examples(), train_settings, RetrainSettings(**settings), registry, runs, lock, progress=False)


def top(classifier: IntentClassifier, text: str) -> str:
    return classifier.predict([text])[0].top[0][0]


def test_retrain_learns_a_new_intent_from_reviews_and_keeps_the_old_ones(bot):
    _, store, registry, runs, _, first = bot
    store.add(Example(t, "cancel", source="review", label_method="review") for t in CANCEL)
    outcome = run(bot)
    assert outcome.promoted, outcome.comparison["reasons"]
    assert registry.current_version() == outcome.candidate != first.version
    model = IntentClassifier.load(registry.current_path())
    assert "cancel" in model.labels and top(model, "cancel my order") == "cancel"
    c = outcome.comparison
    assert c["counts"]["new_intents"] == ["cancel"] and c["counts"]["fresh_reviewed"] == len(CANCEL)
    assert c["candidate"]["recall"]["cancel"] == 1.0 and c["serving"]["recall"]["cancel"] == 0.0
    for intent in OLD:  # replay: the golden set of the old intents is answered as well as before
        assert c["candidate"]["recall"][intent] >= c["serving"]["recall"][intent]
    data = json.loads((registry.current_path() / "data.json").read_text())
    assert data["parent"] == first.version and data["start"] in ("warm", "cold")
    assert len(data["added_since_parent"]) == len(CANCEL)
    assert json.loads((registry.current_path() / "gate.json").read_text())["promote"] is True
    [logged] = runs.runs()
    assert logged["outcome"] == "promoted" and logged["candidate"] == outcome.candidate and logged["ended"]


def test_the_gate_refuses_a_candidate_trained_on_corrupted_labels_and_says_why(bot):
    _, store, registry, runs, _, first = bot
    wrong = [f"{t} now" for t in OLD["track"]] + [f"{t} again" for t in OLD["track"]]
    store.add(Example(t, "login", source="file") for t in wrong)  # parcels labelled as logins
    # two golden examples an intent: no loss there can be told from chance, so the sign test is turned off
    # (intent_drop_alpha=1: any drop beyond max_intent_drop refuses); test_gate.py covers the sign test
    outcome = run(bot, warm_start="never", min_intent_support=2, intent_drop_alpha=1.0)
    assert not outcome.promoted, json.dumps({k: outcome.comparison[k] for k in ("candidate", "serving", "reasons")})
    assert registry.current_version() == first.version  # still serving the old one
    reasons = " ".join(outcome.comparison["reasons"])
    assert "track" in reasons and "recall falls" in reasons
    stored = json.loads((registry.path(outcome.candidate) / "gate.json").read_text())
    assert stored["promote"] is False and stored["reasons"] == outcome.comparison["reasons"]
    assert runs.runs()[0]["outcome"] == "refused"


def fixed(version: str, answers: dict[str, tuple[str | None, bool]]):
    """A classifier double: text -> (intent or None for unknown, ambiguous)."""

    class Fixed:
        def predict(self, texts, k=3):
            out = []
            for t in texts:
                intent, ambiguous = answers[t]
                out.append(Prediction(intent, 0.9, [(intent or "x", 0.9), ("y", 0.05)], intent is None, ambiguous))
            return out

    Fixed.version = version
    return Fixed()


def test_shadow_scoring_lists_the_turns_a_candidate_would_decide_differently():
    serving = fixed("a", {"hi": ("greet", False), "cancel it": (None, False), "my card": ("refund", False)})
    candidate = fixed("b", {"hi": ("greet", False), "cancel it": ("cancel", False), "my card": ("refund", True)})
    changes = gate.shadow(candidate, serving, [(1, "hi"), (2, "cancel it"), (3, "my card")])
    assert changes == [{"turn_id": 2, "text": "cancel it", "serving": "unknown", "candidate": "cancel"},
                       {"turn_id": 3, "text": "my card", "serving": "refund", "candidate": "clarify: refund|y"}]
    assert gate.shadow(candidate, None, [(1, "hi")]) == []


def test_shadow_changes_are_flagged_for_review():
    from bot.dialogue.conversations import ConversationLog
    from bot.dialogue.router import Decision, Reply
    from training.redact import RedactSettings, Redactor

    log = ConversationLog(connect(None), Redactor(RedactSettings()))
    convo, token = log.new()
    reply = Reply("ok", Decision("template", "x", intent="greet"))
    turns = [log.record_turn(convo, "hi", reply, token), log.record_turn(convo, "cancel it", reply)]
    assert log.recent_messages(5) == [(turns[1], "cancel it"), (turns[0], "hi")]
    assert log.flag_turns("shadow", {turns[1]: "v2: unknown -> cancel"}) == 1
    assert log.stats()["open_flags"] == {"shadow": 1}
    from bot.review.store import Filters, ReviewStore

    queue = ReviewStore(log.db, audit_rate=0.0)
    queue.sync()
    [group] = queue.page(Filters(kind="shadow")).groups
    assert group["text"] == "cancel it" and group["kinds"] == ["shadow"]


def test_the_lock_refuses_a_second_run_and_recovers_from_a_stale_one(tmp_path):
    lock = tmp_path / "retrain.lock"
    with RetrainLock(lock):
        with pytest.raises(RetrainBusy, match=f"pid {os.getpid()}, started "):
            with RetrainLock(lock):
                pass
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock.write_text(json.dumps({"pid": gone.pid, "started": time.time() - 60}))  # its holder was killed
    with RetrainLock(lock):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_retrain_refused_by_the_lock_trains_nothing(bot):
    _, store, registry, runs, lock, first = bot
    with RetrainLock(lock):
        with pytest.raises(RetrainBusy):
            run(bot)
    assert registry.versions() == [first.version] and runs.runs() == []


@pytest.mark.integration
def test_a_killed_retrain_leaves_the_serving_model_and_the_next_run_starts_cleanly(tiny_bert, tmp_path):
    folder = tmp_path / "bot"
    folder.mkdir()
    intents = "".join(f"  {i}:\n    answer: ok\n    examples: {json.dumps(ts)}\n" for i, ts in OLD.items())
    (folder / "intents.yaml").write_text("intents:\n" + intents)
    (folder / "bot.toml").write_text(
        f'name = "k"\nstate_dir = "{tmp_path / "state"}"\n[train]\nbase_model = "{tiny_bert}"\nonnx = false\nbatch_size = 8\n'
        'epochs = 200\nmin_steps = 2000\npatience = 200\n')  # long enough to be killed mid-training
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, str(ROOT / "run_bot.py")]
    quick = ["--set", "train.epochs=2", "--set", "train.min_steps=0"]
    subprocess.run([*cli, "train", "--bot", str(folder), "--quiet", *quick], check=True, env=env, capture_output=True)
    models = tmp_path / "state" / "models"
    serving = (models / "CURRENT").read_text()
    db = connect(tmp_path / "state" / "supportbot.db")
    ExampleStore(db).add(Example(t, "cancel", source="review") for t in CANCEL)
    runs = RunLog(db)

    progress = tmp_path / "retrain.log"  # its progress bars: a fine-tuning step shows its loss
    victim = start([*cli, "retrain", "--bot", str(folder)], progress, env=env)

    def fine_tuning() -> bool:
        assert victim.poll() is None, f"the retrain ended before it could be killed:\n{log_tail(progress)}"
        return any(run["outcome"] == "running" for run in runs.runs()) and "loss=" in progress.read_text()

    wait_until(fine_tuning, 300, "the retrain to record its run and take fine-tuning steps",
               details=lambda: log_tail(progress))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert (models / "CURRENT").read_text() == serving
    assert runs.runs()[0]["outcome"] == "killed"

    done = subprocess.run([*cli, "retrain", "--bot", str(folder), "--quiet", *quick], env=env, capture_output=True,
                          text=True)
    assert done.returncode in (0, 3), done.stderr[-2000:]  # promoted or refused, not 'busy'
    assert "candidate " in done.stdout and not list(models.glob(".tmp-*"))
    assert not (tmp_path / "state" / "retrain.lock").exists()


def test_on_too_little_evidence_a_candidate_that_changes_confident_answers_is_held_unless_confirmed():
    def comparison(in_scope):
        return {"promote": True, "serving": {}, "candidate": {"examples": in_scope}, "reasons": ["accuracy ..."],
                "shadow": [{"turn_id": 1, "text": "where is my order", "serving": "track", "candidate": "cancel"},
                           {"turn_id": 2, "text": "weather", "serving": "unknown", "candidate": "track"},
                           {"turn_id": 3, "text": "my card", "serving": "clarify: refund|card", "candidate": "refund"}]}

    small = comparison(3)
    gate.hold_unconfirmed(small, {}, minimum=30)
    # only the change of a confident answer counts (not of a refusal or a question)
    assert small["promote"] is False and small["held"] and [c["turn_id"] for c in small["unconfirmed"]] == [1]
    assert small["reasons"][0].startswith("held for approval: the gate had 3 in-scope examples, too few to tell "
                                          "(retrain.min_gate_examples 30), and the candidate changes 1 answer")
    confirmed = comparison(3)
    gate.hold_unconfirmed(confirmed, {1: "cancel"}, minimum=30)  # a reviewer gave turn 1 the candidate's answer
    assert confirmed["promote"] is True and "held" not in confirmed
    enough = comparison(30)
    gate.hold_unconfirmed(enough, {}, minimum=30)
    assert enough["promote"] is True and "held" not in enough
    nothing = {**comparison(0), "shadow": [], "shadow_messages": 0}  # no gate example, no traffic to judge on
    gate.hold_unconfirmed(nothing, {}, minimum=30)
    assert nothing["held"] and "there is no logged traffic to judge it on either" in nothing["reasons"][0]
    unchanged = {**comparison(0), "shadow": [], "shadow_messages": 12}  # traffic, and it changes none of it
    gate.hold_unconfirmed(unchanged, {}, minimum=30)
    assert unchanged["promote"] is True
    some = {**comparison(3), "shadow": []}  # a few examples it was not worse on, and no traffic it changes
    gate.hold_unconfirmed(some, {}, minimum=30)
    assert some["promote"] is True
    refused = {**comparison(3), "promote": False}
    gate.hold_unconfirmed(refused, {}, minimum=30)
    assert "held" not in refused  # a refusal stays a refusal


def test_golden_examples_the_serving_model_was_trained_on_do_not_count_at_the_gate(bot):
    from training.retrain import collect_examples

    train_settings, store, registry, *_ = bot
    carved_late = store.examples()[0]  # trained on by the serving model, then set aside as golden
    store.db.execute("update examples set split = 'test' where id = ?", [carved_late.id])
    data = collect_examples(store.examples(), train_settings, registry.current_path(), RetrainSettings())
    assert carved_late.text not in {e.text for e in data.gate}
    assert data.counts["golden"] == sum(len(ts) for ts in GOLDEN.values())
    assert data.counts["golden_trained_on_by_serving"] == 1
