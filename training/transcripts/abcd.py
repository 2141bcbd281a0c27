"""ABCD (Action-Based Conversations Dataset) dialogs: JSON, a list of dialogs or {"train": [...], ...}.

Each dialog has `original` turns as [speaker, text] (agent | customer | action) and a scenario whose
flow/subflow names what the customer wanted: the explicit label (`transcripts.abcd_label`).
"""

from __future__ import annotations

from typing import Iterator

from training.transcripts import Reading
from training.transcripts.dialogs import AGENT, CUSTOMER, SYSTEM, Dialog, Turn

SPEAKERS = {"customer": CUSTOMER, "agent": AGENT, "action": SYSTEM}


def read(reading: Reading) -> Iterator[Dialog]:
    source = reading.open()
    which = reading.settings.abcd_label
    for line, record in source.json_records(("train", "dev", "test")):
        if not isinstance(record, dict) or not isinstance(record.get("original"), list):
            raise source.error(line, "not an ABCD dialog: expected an object with 'original' turns")
        turns = []
        for i, turn in enumerate(record["original"]):
            if not (isinstance(turn, list) and len(turn) == 2 and isinstance(turn[1], str)):
                raise source.error(line, f"dialog {record.get('convo_id')}: turn {i} is not [speaker, text]")
            role = SPEAKERS.get(str(turn[0]).lower())
            if role is None:
                raise source.error(line, f"dialog {record.get('convo_id')}: unknown speaker {turn[0]!r}")
            turns.append(Turn(role=role, text=turn[1], line=line))
        scenario = record.get("scenario") or {}
        flow, subflow = scenario.get("flow") or "", scenario.get("subflow") or ""
        label = {"flow": flow, "subflow": subflow, "flow/subflow": f"{flow}.{subflow}".strip(".")}[which]
        yield Dialog(id=str(record.get("convo_id", line)), turns=tuple(turns), line=line, label=label or None)
