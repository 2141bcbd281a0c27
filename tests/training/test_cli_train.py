"""`run_bot.py train`, `evaluate` and `models` on a small bot folder with the tiny BERT."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import run_bot
from training.settings import TrainSettings

DEFAULT_SCORE = TrainSettings().oos_score

INTENTS = """
intents:
  track:
    examples: [where is my parcel, track my package, where is my delivery, parcel late]
    answer: Your parcel is on its way.
  refund:
    examples: [i want my money back, refund please, money back for my order, how do i get a refund]
    answer: Refunds take 5 days.
  login:
    examples: [reset my password, cannot login, password not working, login to my account]
    answer: Reset it at /reset.
"""


@pytest.fixture
def bot(tmp_path, tiny_bert):
    folder = tmp_path / "mybot"
    folder.mkdir()
    (folder / "intents.yaml").write_text(INTENTS)
    (folder / "bot.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\n[train]\nbase_model = "{tiny_bert}"\nonnx = false\nbatch_size = 8\n'
        "epochs = 3\nmin_steps = 0\nencoder_lr = 1e-3\nhead_lr = 5e-2\n"
        # 6 validation messages: enough to fit a threshold for 50 % precision (training.calibrate.validation_needed)
        "target_precision = 0.5\nval_fraction = 0.4\n"
    )
    (folder / "evaluation.csv").write_text(
        "text,intent\nwhere is my package,track\nmoney back,refund\npassword reset,login\nweather football,out_of_scope\n"
    )
    return folder


def test_a_bot_too_small_to_calibrate_gets_the_fallback_and_a_warning(bot, tmp_path, capsys):
    settings = ["--set", "train.target_precision=0.9", "--set", "train.val_fraction=0.1"]
    assert run_bot.main(["train", "--bot", str(bot), "--quiet", *settings]) == 0
    out = capsys.readouterr().out
    # 3 validation messages, 29 needed for 90 %: no threshold is fitted, the fallback serves, train says what to do
    assert "answers on its own when its out-of-scope score (nearest) >= 0.550" in out
    assert "coverage and precision cannot be estimated (evidence: too few validation messages to estimate (3, needs 29))" in out
    assert "warning: only 3 validation messages: too few to fit an answer threshold for 90 % precision" in out
    assert "Add examples" in out
    [version] = (tmp_path / "state" / "models").glob("2*")
    calibration = json.loads((version / "calibration.json").read_text())
    assert calibration["temperature"] == 1.0 and calibration["expected_precision"] is None


def test_train_evaluate_and_models(bot, tmp_path, capsys):
    assert run_bot.main(["train", "--bot", str(bot), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "intents.yaml: 12 new examples" in out and "model version" in out
    assert re.search(r"validation accuracy \d+\.\d %", out) and f"answers on its own when its out-of-scope score ({DEFAULT_SCORE}) >= " in out
    assert re.search(r"expected coverage \d+\.\d % at precision", out)
    versions = sorted((tmp_path / "state" / "models").glob("2*"))
    assert len(versions) == 1
    assert (tmp_path / "state" / "models" / "CURRENT").read_text().strip() == versions[0].name

    assert run_bot.main(["evaluate", "--bot", str(bot)]) == 0
    report = json.loads((versions[0] / "evaluation.json").read_text())
    assert report["in_scope"] == 3 and report["out_of_scope"] == 1
    curve = report["coverage_precision"]
    assert "oos_recall" in report and sum(r["chosen"] for r in curve) == 1 and max(r["coverage"] for r in curve) == 1.0
    assert "# Intent model evaluation" in (versions[0] / "evaluation.md").read_text()

    assert run_bot.main(["train", "--bot", str(bot), "--quiet", "--set", "train.epochs=1"]) == 0
    assert run_bot.main(["models", "rollback", "--bot", str(bot)]) == 0
    assert f"serving {versions[0].name}" in capsys.readouterr().out


def test_train_with_a_bad_data_file_fails_cleanly_and_stores_nothing(bot, tmp_path, capsys):
    bad = tmp_path / "more.csv"
    bad.write_bytes(b"text,intent\nok,track\n\xff\xfe,refund\n")
    assert run_bot.main(["train", "--bot", str(bot), "--data", str(bad), "--quiet"]) == 2
    assert "more.csv:3: not UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "state" / "models").exists() or not list((tmp_path / "state" / "models").glob("2*"))


def test_unknown_setting_is_a_clear_error(bot, capsys):
    assert run_bot.main(["train", "--bot", str(bot), "--set", "train.epoch=2"]) == 2
    assert "unknown setting train.epoch" in capsys.readouterr().err


def refuse_everything(version: Path) -> None:
    """Make a saved version answer nothing (an out-of-scope threshold no score clears), so that any candidate is
    at least as good at the gate: a retrain's outcome that does not depend on how well the tiny BERT learned."""
    calibration = json.loads((version / "calibration.json").read_text())
    (version / "calibration.json").write_text(json.dumps({**calibration, "score_threshold": 1e9}))


def test_golden_set_retrain_and_the_models_commands(bot, tmp_path, capsys):
    # carved before the first model: never trained on by either model, so the gate may count it
    assert run_bot.main(["models", "golden", "--bot", str(bot)]) == 0
    assert "golden set: 3 examples moved to split test" in capsys.readouterr().out  # one of each 4-example intent
    assert run_bot.main(["train", "--bot", str(bot), "--quiet"]) == 0
    models = tmp_path / "state" / "models"
    first = (models / "CURRENT").read_text().strip()
    refuse_everything(models / first)
    code = run_bot.main(["retrain", "--bot", str(bot), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and re.search(r"candidate \S+ \(warm start; 9 examples, 0 new\)", out)  # warm first: it passed
    assert re.search(r"promoted: compared on 3 in-scope and 0 out-of-scope examples; accuracy \d+\.\d % vs 0\.0 % "
                     "serving; no intent and no out-of-scope refusal worse than allowed", out)
    assert "shadow: 0 of the last 1000 customer messages" in out
    versions = {p.name: json.loads((p / "data.json").read_text()) for p in models.glob("2*")}
    [second] = [name for name, data in versions.items() if data.get("parent")]  # the retrain's candidate
    assert versions[second]["parent"] == first and (models / "CURRENT").read_text().strip() == second
    assert run_bot.main(["models", "diff", first, second, "--bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert f"{first} -> {second} on 3 gate examples (3 golden" in out and "changed predictions" in out
    assert "  would promote: accuracy" in out
    assert run_bot.main(["models", "runs", "--bot", str(bot)]) == 0
    assert re.search(r"#1 .* cli +promoted", capsys.readouterr().out)
    assert run_bot.main(["models", "--bot", str(bot)]) == 0
    assert f"warm from {first}  gate: promoted" in capsys.readouterr().out
    assert run_bot.main(["models", "promote", "nope", "--bot", str(bot)]) == 2
    assert "no model version 'nope'" in capsys.readouterr().err


def test_a_retrain_on_too_little_evidence_that_changes_confident_answers_waits_for_approval(bot, tmp_path, capsys):
    from bot.dialogue.conversations import ConversationLog
    from bot.dialogue.router import Decision, Reply
    from bot.folder.bot_folder import BotFolder
    from core.sqlite import connect
    from training.redact import Redactor

    assert run_bot.main(["train", "--bot", str(bot), "--quiet"]) == 0
    models = tmp_path / "state" / "models"
    first = (models / "CURRENT").read_text().strip()
    calibration = json.loads((models / first / "calibration.json").read_text())
    (models / first / "calibration.json").write_text(json.dumps({**calibration, "score_threshold": -1e9, "margin": 0}))
    # customers' messages the serving model (answering everything) answered; a new intent will take them over
    db = connect(BotFolder.load(bot).settings.db_path)
    log = ConversationLog(db, Redactor())
    for text in ("cancel my order", "please cancel the order", "cancel my order now"):
        convo, token = log.new()
        log.record_turn(convo, text, Reply("Your parcel is on its way.", Decision(route="template", reason="x")), token)
    db.close()
    with open(bot / "intents.yaml", "a") as f:
        f.write("  cancel:\n    examples: [cancel my order, please cancel the order, cancel it, i want to cancel]\n"
                "    answer: Cancelled.\n")
    capsys.readouterr()
    code = run_bot.main(["retrain", "--bot", str(bot), "--quiet", "--set", "retrain.warm_start=never"])
    out = capsys.readouterr().out
    assert code == 4, out  # bot.retraining.HELD
    # carved by the first gate that needed one; only the new intent's golden example was not trained on before
    assert "golden set: 4 examples set aside" in out
    assert re.search(r"held: compared on 1 in-scope and 0 out-of-scope examples; held for approval: the gate had 1 "
                     r"in-scope example, too few to tell \(retrain.min_gate_examples 30\), and the candidate changes "
                     r"\d answers? the serving model gave confidently", out)
    assert "run_bot.py models approve 1" in out and (models / "CURRENT").read_text().strip() == first
    [candidate] = [p.name for p in models.glob("2*") if p.name != first]
    assert json.loads((models / candidate / "gate.json").read_text())["unconfirmed"][0]["serving"] != "unknown"

    assert run_bot.main(["models", "approve", "1", "--bot", str(bot)]) == 0
    assert "approved by cli" in capsys.readouterr().out and (models / "CURRENT").read_text().strip() == candidate
    assert run_bot.main(["models", "runs", "--bot", str(bot)]) == 0
    assert re.search(r"#1 .* cli +approved", capsys.readouterr().out)
    assert run_bot.main(["models", "reject", "1", "--bot", str(bot)]) == 2  # decided once
    assert "retrain run 1 is not waiting for approval (it was approved)" in capsys.readouterr().err


def test_evaluate_reports_the_serving_decision_and_writes_one_row_per_message(bot, tmp_path, capsys):
    import csv

    assert run_bot.main(["train", "--bot", str(bot), "--quiet"]) == 0
    rows_file = tmp_path / "out" / "predictions.csv"
    assert run_bot.main(["evaluate", "--bot", str(bot), "--predictions", str(rows_file), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "at the serving decision, in scope: answered right" in out and "out-of-scope AUROC" in out
    assert "MCC (out of scope as its own class)" in out and "clarifying questions (margin" in out
    report = json.loads((tmp_path / "evaluation.json").read_text())
    d = report["decision"]
    assert sum(d.values()) == pytest.approx(1.0)
    assert 0.0 <= report["auroc"] <= 1.0 and -1.0 <= report["mcc"] <= 1.0
    assert report["score"] == DEFAULT_SCORE
    with open(rows_file, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows] == ["where is my package", "money back", "password reset", "weather football"]
    assert rows[3]["label"] == "out_of_scope" and all(r["decision"] in ("answer", "refuse", "clarify") for r in rows)
    assert all(r["oos_score"] and r["top_k"].count(":") == 3 for r in rows)
    # a row is right when the bot would do the right thing with it, and the report agrees
    in_scope_right = sum(r["right"] == "True" for r in rows[:3])
    assert in_scope_right == round(d["answered_right"] * 3)
    assert "knowledge base:" not in out  # this bot has none


def test_evaluate_says_what_the_knowledge_base_expects_of_its_answers(bot, capsys):
    (bot / "knowledge").mkdir()
    (bot / "knowledge" / "faq.csv").write_text(
        "question,answer\nHow long does delivery take?,Three working days.\nCan I return an item?,Within 30 days.\n")
    assert run_bot.main(["train", "--bot", str(bot), "--quiet"]) == 0
    assert run_bot.main(["evaluate", "--bot", str(bot)]) == 0
    assert "knowledge base:" not in capsys.readouterr().out  # not synced yet
    assert run_bot.main(["kb", "sync", "--bot", str(bot)]) == 0
    assert run_bot.main(["evaluate", "--bot", str(bot)]) == 0
    out = capsys.readouterr().out
    assert "knowledge base: answer threshold" in out and "of confident answers right (90 % interval from" in out


def test_calibrate_refits_thresholds_into_a_new_version_without_training(bot, tmp_path, capsys):
    assert run_bot.main(["train", "--bot", str(bot), "--quiet"]) == 0
    models = tmp_path / "state" / "models"
    [first] = sorted(models.glob("2*"))
    offtopic = tmp_path / "offtopic.txt"
    offtopic.write_text("weather tomorrow\nfootball scores\npizza recipe\n")
    capsys.readouterr()
    assert run_bot.main(["calibrate", "--bot", str(bot), "--oos", str(offtopic), "--set", "train.oos_share=0.6"]) == 0
    out = capsys.readouterr().out
    second = (models / "CURRENT").read_text().strip()
    assert second != first.name and f"{first.name} -> {second}" in out
    calibration = json.loads((models / second / "calibration.json").read_text())
    assert calibration["oos_share"] == 0.6 and calibration["oos_evidence"] == "out-of-scope examples"
    assert (models / second / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()
    assert json.loads((models / second / "data.json").read_text())["recalibrated_from"] == first.name
    assert run_bot.main(["calibrate", "--bot", str(bot), "--oos-share", "reviews"]) == 2
    assert "too few to estimate" in capsys.readouterr().err


def test_quoted_multi_line_csv_fields_are_one_field(tmp_path):
    from training.dataset import read_examples

    data = tmp_path / "ml.csv"
    data.write_text('text,intent\n"where is\nmy parcel, please",track\nrefund please,refund\n')
    loaded = read_examples(data)
    assert [(e.text, e.intent) for e in loaded.examples] == [("where is\nmy parcel, please", "track"),
                                                              ("refund please", "refund")]
    assert loaded.examples[1].provenance == "ml.csv:4"  # lines counted as in the file


def test_train_only_uses_exactly_the_given_file_and_counts_what_it_drops(bot, tmp_path, capsys):
    data = tmp_path / "exact.csv"
    data.write_text("text,intent\nparcel late,track\nParcel late!,track\nmoney back,refund\nmoney back,login\n"
                    "reset password,login\npassword gone,login\nrefund me,refund\nwhere parcel,track\n")
    assert run_bot.main(["train", "--bot", str(bot), "--data", str(data), "--only", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "8 rows, 6 new examples, 2 duplicates skipped (1 of them with a conflicting label" in out
    assert "intents.yaml: " not in out
    [version] = (tmp_path / "state" / "models").glob("2*")
    assert json.loads((version / "data.json").read_text())["examples"] == 6
    from core.sqlite import connect
    from training.store import ExampleStore

    db = tmp_path / "state" / "supportbot.db"
    assert not db.exists() or ExampleStore(connect(db)).examples() == []  # the bot's store is untouched


def test_reviewed_out_of_scope_share_needs_enough_reviews():
    from training.pipeline import reviewed_oos_share
    from training.store import Example

    few = [Example(f"m{i}", "out_of_scope" if i % 2 else "track", source="review") for i in range(10)]
    assert reviewed_oos_share(few, "out_of_scope") == (None, 10)
    many = [Example(f"m{i}", "out_of_scope" if i % 4 == 0 else "track", source="review") for i in range(100)]
    many += [Example(f"s{i}", "out_of_scope", source="seed") for i in range(100)]  # not reviewed: not counted
    assert reviewed_oos_share(many, "out_of_scope") == (0.25, 100)


def test_train_settings_follow_the_bots_own_traffic(bot):
    """Reviewed messages set the out-of-scope share once there are enough; ignored questions shrink the bound."""
    from bot.training_run import train_settings
    from bot.dialogue.conversations import ConversationLog
    from bot.folder.bot_folder import BotFolder
    from bot.dialogue.router import Decision, Reply
    from core.sqlite import connect
    from training.redact import Redactor
    from training.store import Example, ExampleStore

    folder = BotFolder.load(bot)
    db = connect(folder.settings.db_path)
    notes: list[str] = []
    assert train_settings(folder, db, notes.append) == folder.settings.train and notes == []

    ExampleStore(db).add([Example(f"reviewed {i}", "out_of_scope" if i % 5 == 0 else "track", source="review")
                          for i in range(60)])
    log = ConversationLog(db, Redactor())
    for i in range(30):
        convo, token = log.new()
        log.record_turn(convo, f"parcel {i}", Reply("Which one?", Decision(route="clarify", reason="close")), token)
        if i % 3 == 0:
            log.record_turn(convo, "/track", Reply("On its way.", Decision(route="template", reason="pick")))
    settings = train_settings(folder, db, notes.append)
    assert settings.oos_share == pytest.approx(0.2)  # 12 of 60 reviewed messages
    assert settings.max_clarify_share == pytest.approx(folder.settings.train.max_clarify_share / 3)
    assert len(notes) == 2 and "20 % of 60 reviewed" in notes[0] and "10 of 30" in notes[1]


@pytest.mark.integration
def test_train_and_retrain_in_two_processes_make_versions_that_serve(bot, tmp_path, capsys):
    from training.classifier import IntentClassifier

    one_fit = ["--quiet", "--set", "train.refit_below=0", "--set", "train.device=cpu"]  # no small-data refit
    assert run_bot.main(["train", "--bot", str(bot), "--processes", "2", *one_fit]) == 0
    assert re.search(r"training examples, \d+ s on cpu in 2 processes", capsys.readouterr().out)
    models = tmp_path / "state" / "models"
    serving = models / (models / "CURRENT").read_text().strip()
    assert json.loads((serving / "metrics.json").read_text())["processes"] == 2
    [prediction] = IntentClassifier.load(serving).predict(["where is my parcel"])
    assert prediction.top[0][0] in {"track", "refund", "login"} and 0 < prediction.confidence <= 1

    code = run_bot.main(["retrain", "--bot", str(bot), "--processes", "2", "--set", "retrain.warm_start=always", *one_fit])
    out = capsys.readouterr().out  # no golden set yet: the first gate carves one (one example of each intent)
    assert "golden set: 3 examples set aside" in out and re.search(r"candidate \S+ \(warm start; 9 examples, 0 new\)", out)
    # which the serving model was trained on: nothing to compare on, no traffic either, so it waits for a person
    assert code == 4 and "held: compared on 0 in-scope and 0 out-of-scope examples" in out
    [candidate] = [p for p in models.glob("2*") if json.loads((p / "data.json").read_text()).get("parent")]
    assert json.loads((candidate / "settings.json").read_text())["processes"] == 2
    assert IntentClassifier.load(candidate).predict(["refund please"])[0].top


def test_more_gpus_than_the_machine_has_is_an_error_before_anything_trains(bot, tmp_path, capsys):
    for command in ("train", "retrain"):
        assert run_bot.main([command, "--bot", str(bot), "--gpus", "64"]) == 2
        assert "(--gpus 64; train.device=cuda, train.processes=64) needs 64 CUDA device(s)" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()  # no example stored, no model written


def test_explain_says_the_decision_its_rule_and_every_signal_with_its_threshold(bot, capsys):
    assert run_bot.main(["explain", "where is my parcel", "--bot", str(bot)]) == 2  # nothing to explain with yet
    assert "no model serves bot mybot yet: run_bot.py train" in capsys.readouterr().err
    assert run_bot.main(["train", "--bot", str(bot), "--quiet"]) == 0
    capsys.readouterr()
    assert run_bot.main(["explain", "where is my parcel", "--bot", str(bot), "--json"]) == 0
    e = json.loads(capsys.readouterr().out)
    score = e["intent_model"]["score"]
    assert score["name"] == DEFAULT_SCORE and score["answered"] == (score["value"] >= score["threshold"])
    assert e["route"] in ("template", "clarify", "fallback", "knowledge") and e["rule"]
    assert [name for name, _ in e["intent_model"]["top"]][0] in ("track", "refund", "login")
    assert e["knowledge"]["candidates"] == []  # this bot has no articles
    assert run_bot.main(["explain", "where is my parcel", "--bot", str(bot)]) == 0
    text = capsys.readouterr().out
    assert f"out-of-scope score ({DEFAULT_SCORE})" in text and "vs threshold" in text and "vs margin" in text
    assert f"decision: {e['route']}" in text and f"rule: {e['rule']}" in text
