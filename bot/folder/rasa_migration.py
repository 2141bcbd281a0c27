"""A Rasa project migrated into a new bot folder: intents.yaml (answers with variants and quick replies,
entities, prompts), bot.toml (fallback message, small talk), knowledge/ (retrieval intents as articles when
asked), evaluation.csv and conversations.yaml (the project's test data, never trained on) and MIGRATION.md.

The decisions are `training.rasa.plan`'s; this module only writes them in the bot folder's formats.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import yaml

CONVERSATIONS_FILE = "conversations.yaml"
EVALUATION_FILE = "evaluation.csv"
REPORT_FILE = "MIGRATION.md"


@dataclass
class Migration:
    plan: object  # training.rasa.plan.Plan
    report: str
    seconds: float
    redaction: dict[str, int]


def migrate_rasa(project_path: Path, into: Path, write_folder: Callable[[Path, Callable[[Path], None]], None],
                 privacy=None, redact: bool = False, retrieval_as: str = "intents",
                 oos_label: str = "out_of_scope", project=None) -> Migration:
    """Plan the migration of `project_path` (or of the already loaded `project`) and write it with
    `write_folder(into, write)` (atomic, validated)."""
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
        (staging / "intents.yaml").write_text(intents_yaml(plan, texts, project_path), encoding="utf-8")
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


def intents_yaml(plan, texts: dict[str, list[str]], project_path: Path) -> str:
    out = [f"# Migrated from the Rasa project {Path(project_path).name} by `run_bot.py import --format rasa --into`.",
           "# What could not be carried over is listed in MIGRATION.md. Intents without an answer are answered from",
           "# the knowledge base (add documents to knowledge/), or get an `answer:` and lose `route: knowledge`.", ""]
    if plan.entities:
        out.append("entities:")
        for e in plan.entities:
            out.append(f"  {e.name}:")
            if e.pattern:
                out.append(f"    pattern: {_q(e.pattern)}")
            if e.values:
                out.append("    values: [" + ", ".join(_q(v) for v in e.values) + "]")
            if e.synonyms:
                out.append("    synonyms: {" + ", ".join(f"{_q(a)}: {_q(c)}" for a, c in e.synonyms) + "}")
        out.append("")
    else:
        out += ["entities: {}", ""]
    out.append("intents:")
    for d in plan.intents:
        out.append(f"  {d.name}:")
        out += [f"    # {line}" for line in textwrap.wrap(d.note, 100)]
        out.append(f"    description: {_q(d.name.replace('_', ' '))}")
        if len(d.answers) == 1:
            out.append(f"    answer: {_q(d.answers[0])}")
        elif d.answers:
            out.append("    answer:  # variants: one is chosen at random per turn")
            out += [f"      - {_q(a)}" for a in d.answers]
        if d.quick_replies:
            out.append("    quick_replies:")
            out += [f"      - {{label: {_q(label)}, value: {_q(value)}}}" for label, value in d.quick_replies]
        if d.prompts:
            out.append("    prompts:")
            out += [f"      {var}: {_q(q)}" for var, q in d.prompts]
        if d.route != "template":
            out.append(f"    route: {d.route}")
        out.append("    examples:")
        out += [f"      - {_q(t)}" for t in texts.get(d.name, d.examples)]
        out.append("")
    return "\n".join(out)


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
