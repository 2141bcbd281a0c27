"""Bad data files give clear errors naming file and line, or counted warnings."""

from __future__ import annotations

import pytest

from training.dataset import DataError, data_hash, read_examples, stratified_split
from training.store import Example


def test_reads_csv_with_warnings_for_empty_intents_and_single_examples(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("text,intent\nwhere is my order,track\nparcel late,track\nhello,\nrefund please,refund\n")
    loaded = read_examples(f)
    assert [e.intent for e in loaded.examples] == ["track", "track", "refund"]
    assert loaded.examples[0].provenance == "data.csv:2"
    assert any("1 rows with an empty intent" in w and "lines 4" in w for w in loaded.warnings)
    assert any("single example" in w and "refund" in w for w in loaded.warnings)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"text,label_x\nhi,greet\n", r"data.csv:1: header .* lacks an intent column"),
        (b"utterance\nhi\n", r"data.csv:1: header .* lacks an intent column"),
        (b"text,intent\nhi,greet\nbad,row,extra\n", r"data.csv:3: 3 fields, the header has 2"),
        (b"text,intent\nhi,greet\ncaf\xe9,order\n", r"data.csv:3: not UTF-8"),
        (b"text,intent\n,\n", r"data.csv: no labelled examples"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, content, message):
    f = tmp_path / "data.csv"
    f.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_examples(f)


def test_jsonl_errors_name_the_line(tmp_path):
    f = tmp_path / "data.jsonl"
    f.write_text('{"text": "hi", "intent": "greet"}\n{"text": "oops"\n')
    with pytest.raises(DataError, match=r"data.jsonl:2: invalid JSON"):
        read_examples(f)


def test_stratified_split_holds_out_each_intent_and_hash_ignores_order():
    examples = [Example(f"t{i}", "a") for i in range(10)] + [Example(f"u{i}", "b") for i in range(5)] + [Example("x", "c")]
    train, val = stratified_split(examples, 0.2, seed=0)
    assert sorted(e.intent for e in val) == ["a", "a", "b"]
    assert len(train) + len(val) == len(examples)
    assert data_hash(examples) == data_hash(list(reversed(examples)))
    assert data_hash(examples) != data_hash(examples[1:])


def test_the_answer_threshold_is_fitted_on_examples_like_traffic_not_on_reviewed_ones():
    """Reviewed examples were chosen for being hard: they all train, and validation comes from the others while
    those are enough to fit a threshold; otherwise from all."""
    from training.calibrate import validation_needed
    from training.pipeline import calibration_split
    from training.settings import TrainSettings

    settings = TrainSettings(val_fraction=0.2)
    needed = validation_needed(settings.target_precision)
    seed = [Example(f"seed {i} of {k}", f"intent_{k}", "seed") for k in range(needed) for i in range(5)]
    reviewed = [Example(f"hard {i} of {k}", f"intent_{k}", "review") for k in range(needed) for i in range(5)]
    train, val = calibration_split(seed + reviewed, settings)
    assert val and all(e.source == "seed" for e in val) and len(val) >= needed
    assert set(reviewed) <= set(train) and len(train) + len(val) == len(seed + reviewed)
    few = seed[:10] + reviewed  # too few typical examples to fit on: validation from all of them
    train, val = calibration_split(few, settings)
    assert any(e.source == "review" for e in val)
