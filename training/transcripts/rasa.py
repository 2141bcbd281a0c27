"""Rasa projects (2.x/3.x YAML) as a transcript format: each NLU example a one-turn dialog labelled with its
intent (entity markup stripped). Migrating a whole project into a bot folder is `training.rasa`'s job."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from training.rasa.plan import intent_name, migration_plan  # noqa: F401  (the migration's entry points)
from training.rasa.project import load_project, strip_entities  # noqa: F401
from training.transcripts import Reading
from training.transcripts.dialogs import CUSTOMER, Dialog, Turn
from training.transcripts.source import TranscriptError


def read(reading: Reading) -> Iterator[Dialog]:
    """Each NLU example as a one-turn dialog, labelled with its intent."""
    project = load_project(reading.path)
    if not project.examples:
        raise TranscriptError(str(reading.path), 0, "no Rasa NLU examples found (YAML files with an 'nlu:' section)")
    base = reading.path if reading.path.is_dir() else reading.path.parent
    for intent, examples in project.examples.items():
        for ex in examples:
            file = Path(ex.where.file)
            rel = file.relative_to(base) if file.is_relative_to(base) else file
            yield Dialog(id=f"{rel}:{ex.where.line}", line=ex.where.line, prepared=True, label=intent_name(intent),
                         turns=(Turn(role=CUSTOMER, text=ex.text, line=ex.where.line),))
