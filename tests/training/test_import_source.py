"""Reading files: streaming, encodings, and bad input that names the file and the line."""

from __future__ import annotations

import gzip
import json

import pytest

from training.transcripts import Reading, read_dialogs
from training.transcripts.source import SourceFile, TranscriptError


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.mark.parametrize("text, line, message", [
    ('[{"a": 1},\n {"a": 2', 2, "truncated"),
    ('[{"a": 1},\n {"a": 2},\n', 3, "end of file inside a JSON array"),
    ('{"tickets": [\n{"id": 1},\n{"id": 2}', 3, "truncated"),
    ('{"a": 1}\n{"a": nope}\n', 2, "Expecting value"),
    ('[{"a": 1}\n {"a": 2}]', 2, "expected , or ]"),
])
def test_bad_json_names_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, "bad.json", text)
    with pytest.raises(TranscriptError, match=message) as e:
        list(SourceFile(path).json_records(["tickets"]))
    assert (e.value.file, e.value.line) == (str(path), line)
    assert str(e.value).startswith(f"{path}:{line}: ")


def test_json_shapes_all_stream_records_with_their_lines(tmp_path):
    shapes = {
        "array.json": '[\n {"id": 1},\n {"id": 2}\n]',
        "wrapped.json": '{"count": 2,\n "tickets": [\n  {"id": 1},\n  {"id": 2}\n ],\n "next_page": null}',
        "lines.jsonl": '{"id": 1}\n\n{"id": 2}\n',
    }
    expected = {"array.json": [2, 3], "wrapped.json": [3, 4], "lines.jsonl": [1, 3]}
    for name, text in shapes.items():
        records = list(SourceFile(write(tmp_path, name, text)).json_records(["tickets"]))
        assert [r for _, r in records] == [{"id": 1}, {"id": 2}], name
        assert [ln for ln, _ in records] == expected[name], name


def test_json_is_streamed_not_loaded_whole(tmp_path):
    records = [{"id": i, "text": "x" * 200} for i in range(40000)]  # ~9 MB on one line
    path = write(tmp_path, "big.json", json.dumps({"tickets": records}))
    seen = []
    source = SourceFile(path, on_progress=lambda done, total: seen.append(done))
    stream = source.json_records(["tickets"])
    first = next(stream)
    assert first[1]["id"] == 0
    assert max(seen, default=0) < source.size / 4  # only the start of the file was read for the first record
    assert sum(1 for _ in stream) == 39999


def test_csv_missing_column_and_short_row(tmp_path):
    path = write(tmp_path, "chats.csv", "conversation_id,text\nc1,hello there\n")
    with pytest.raises(TranscriptError, match=r"chats.csv:1: missing column role"):
        list(read_dialogs(Reading(path), "generic"))
    path = write(tmp_path, "short.csv", "conversation_id,role,text\nc1,customer,where is my order\nc1,agent\n")
    with pytest.raises(TranscriptError, match=r"short.csv:3: row has 2 fields, the header has 3"):
        list(read_dialogs(Reading(path), "generic"))
    path = write(tmp_path, "roles.csv", "conversation_id,role,text\nc1,robot,beep\n")
    with pytest.raises(TranscriptError, match=r"roles.csv:2: unknown role 'robot'"):
        list(read_dialogs(Reading(path), "generic"))


def test_twitter_csv_errors(tmp_path):
    header = "tweet_id,author_id,inbound,created_at,text,response_tweet_id,in_response_to_tweet_id\n"
    path = write(tmp_path, "t.csv", header + "1,55,True,x,hi,,\n1,AppleSupport,False,x,hello,,1\n")
    with pytest.raises(TranscriptError, match=r"t.csv:3: tweet_id 1 appears more than once"):
        list(read_dialogs(Reading(path), "twitter"))
    path = write(tmp_path, "u.csv", header + "1,55,maybe,x,hi,,\n")
    with pytest.raises(TranscriptError, match=r"u.csv:2: inbound must be True or False"):
        list(read_dialogs(Reading(path), "twitter"))
    path = write(tmp_path, "v.csv", "tweet_id,text\n1,hi\n")
    with pytest.raises(TranscriptError, match=r"v.csv:1: missing column inbound"):
        list(read_dialogs(Reading(path), "twitter"))


def test_mixed_encodings_are_read_line_by_line(tmp_path):
    data = ("conversation_id,role,text\n".encode() + "c1,customer,Je veux un remboursement merci café\n".encode("utf-8")
            + "c2,customer,Où est mon colis crème brûlée\n".encode("cp1252"))
    reading = Reading(write(tmp_path, "mixed.csv", data))
    found = list(read_dialogs(reading, "generic"))
    assert found[0].turns[0].text.endswith("café") and found[1].turns[0].text == "Où est mon colis crème brûlée"
    assert reading.sources[0].fallback_lines == 1 and reading.sources[0].first_fallback_line == 3


def test_bom_utf16_and_gzip(tmp_path):
    text = "conversation_id,role,text\nc1,customer,where is my parcel\n"
    for name, data in [("bom.csv", b"\xef\xbb\xbf" + text.encode()), ("u16.csv", text.encode("utf-16")),
                       ("z.csv.gz", gzip.compress(text.encode()))]:
        (dialog,) = read_dialogs(Reading(write(tmp_path, name, data)), "generic")
        assert dialog.id == "c1" and dialog.turns[0].text == "where is my parcel", name


def test_abcd_and_helpdesk_shape_errors(tmp_path):
    with pytest.raises(TranscriptError, match=r"a.json:2: not an ABCD dialog"):
        list(read_dialogs(Reading(write(tmp_path, "a.json", '[\n{"convo_id": 1}]')), "abcd"))
    with pytest.raises(TranscriptError, match=r"z.jsonl:1: not a Zendesk ticket"):
        list(read_dialogs(Reading(write(tmp_path, "z.jsonl", '{"subject": "x"}\n')), "zendesk"))
    with pytest.raises(TranscriptError, match=r"i.jsonl:1: conversation 7: unknown author type 'alien'"):
        list(read_dialogs(Reading(write(tmp_path, "i.jsonl", json.dumps(
            {"id": 7, "source": {"body": "hi", "author": {"type": "alien"}}}) + "\n")), "intercom"))
    with pytest.raises(TranscriptError, match="no such file"):
        list(read_dialogs(Reading(tmp_path / "missing.csv"), "generic"))
