"""A Rasa project migrated into a new bot folder: intents.yaml (answers with variants and quick replies,
entities, prompts), bot.toml (fallback message, small talk), knowledge/ (retrieval intents as articles when
asked), evaluation.csv and conversations.yaml (the project's test data, never trained on) and MIGRATION.md.

The decisions are `training.rasa.plan`'s; this module only writes them in the bot folder's formats.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml

from bot.folder import intents_file
from bot.folder.bot_folder import EVALUATION_FILE
from bot.folder.new_folder import write_folder

CONVERSATIONS_FILE = "conversations.yaml"
REPORT_FILE = "MIGRATION.md"


@dataclass
class Migration:
    plan: object  # training.rasa.plan.Plan
    report: str
    seconds: float
    redaction: dict[str, int]


def migrate_rasa(project_path: Path, into: Path, privacy=None, redact: bool = False, retrieval_as: str = "intents",
                 oos_label: str = "out_of_scope", project=None) -> Migration:
    """Plan the migration of `project_path` (or of the already loaded `project`) and write it as the new bot folder
    `into` (atomic, validated; refuses an existing non-empty folder)."""
    from training.rasa.plan import migration_plan
    from training.rasa.project import load_project
    from training.rasa.report import report
    from training.redact import Redactor

    start = time.perf_counter()
    project = project if project is not None else load_project(project_path)
    plan = migration_plan(project, retrieval_as=retrieval_as, oos_label=oos_label)
    redactor = Redactor(privacy) if privacy is not None else None
    texts = {}
    for d in plan.intents:  # authored examples stay as written unless --redact; the report says what would change
        texts[d.name] = [redactor.redact(t) if redactor else t for t in d.examples]
        if not redact:
            texts[d.name] = list(d.examples)
    counts = dict(redactor.counts) if redactor else {}
    seconds = time.perf_counter() - start
    text = report(plan, project_path, seconds, counts, redacted=redact)

    def write(staging: Path) -> None:
        (staging / "bot.toml").write_text(bot_toml(plan, project_path, into), encoding="utf-8")
        write_intents(staging / "intents.yaml", plan, texts, project_path)
        (staging / "knowledge").mkdir()
        (staging / "transcripts").mkdir()
        for stem, rows in plan.articles.items():
            (staging / "knowledge" / f"{stem}.csv").write_text(_csv(["question", "answer"], rows), encoding="utf-8")
        if plan.evaluation:
            (staging / EVALUATION_FILE).write_text(_csv(["text", "intent"], plan.evaluation), encoding="utf-8")
        if plan.conversations:
            (staging / CONVERSATIONS_FILE).write_text(conversations_yaml(plan, project_path), encoding="utf-8")
        (staging / REPORT_FILE).write_text(text, encoding="utf-8")

    write_folder(Path(into), write)
    return Migration(plan, text, seconds, counts)


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # JSON strings are YAML double-quoted strings


def _csv(header: Sequence[str], rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def bot_toml(plan, project_path: Path, into: Path) -> str:
    lines = [f"# supportbot settings of the bot migrated from the Rasa project {Path(project_path).name}.",
             f"# Every setting and its default: python run_bot.py settings --bot {into}",
             f"name = {_q(Path(into).name)}", ""]
    server = ["handoff_after_failures = 0  # as Rasa: no hand-off to a person after fallbacks; 3 = after three in a row"]
    if plan.fallback_message:
        server.append(f"fallback_message = {_q(plan.fallback_message)}  # Rasa's out-of-scope / fallback response")
    if plan.smalltalk:
        server.append("smalltalk_intents = [" + ", ".join(_q(n) for n in plan.smalltalk) + "]")
    lines += ["[server]", *server, ""]
    return "\n".join(lines)


INTENTS_HEADER = """\
Migrated from the Rasa project {project} by `run_bot.py import --format rasa --into`.
What could not be carried over is listed in MIGRATION.md. Intents without an answer are answered from
the knowledge base (add documents to knowledge/), or get an `answer:` and lose `route: knowledge`."""


def write_intents(file: Path, plan, texts: dict[str, list[str]], project_path: Path) -> None:
    """The plan's entities and intents written as intents.yaml by its one writer, each intent's note a comment."""
    entities = {e.name: {**({"pattern": e.pattern} if e.pattern else {}), **({"values": list(e.values)} if e.values else {}),
                         **({"synonyms": dict(e.synonyms)} if e.synonyms else {})} for e in plan.entities}
    intents = {}
    for d in plan.intents:
        spec: dict = {"description": d.name.replace("_", " ")}
        if d.answers:
            spec["answer"] = d.answers[0] if len(d.answers) == 1 else list(d.answers)  # variants: one per turn
        if d.quick_replies:
            spec["quick_replies"] = [{"label": label, "value": value} for label, value in d.quick_replies]
        if d.prompts:
            spec["prompts"] = dict(d.prompts)
        if d.route != "template":
            spec["route"] = d.route
        spec["examples"] = list(texts.get(d.name, d.examples))
        intents[d.name] = spec
    intents_file.create(file, intents, entities, INTENTS_HEADER.format(project=Path(project_path).name),
                        {d.name: d.note for d in plan.intents})


def conversations_yaml(plan, project_path: Path) -> str:
    from training.rasa.report import _rel

    doc = {"conversations": [
        {"name": c.name, "source": _rel(c.where, project_path), "turns": [
            {"user": t.user, "intent": t.intent, **({"skip": t.skip} if t.skip else {"expect": list(t.expect)}),
             "source": _rel(t.where, project_path)} for t in c.turns]}
        for c in plan.conversations]}
    head = ("# The Rasa project's test stories, replayed turn by turn by `run_bot.py evaluate --conversations`.\n"
            "# `expect`: Rasa's possible replies ({slot} matches any text); `skip`: why a turn is not scored.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=4096)
