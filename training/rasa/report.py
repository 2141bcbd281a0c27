"""The migration report (MIGRATION.md): what migrated, by count and name, and every Rasa concept left behind,
with its file and line and what to do instead. Intents left with no answer come first: they are what makes a
migrated bot hand everyone to a person."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from training.rasa.plan import Plan


def _rel(where, root: Path) -> str:
    return "" if where is None else where.relative_to(root)


def unanswered(plan: Plan) -> list:
    """Intents with neither an answer nor a knowledge article (the out-of-scope label aside)."""
    return [d for d in plan.intents if d.route == "knowledge" and not d.answers and not d.note.startswith(("Rasa out", "Rasa retrieval"))]


def report(plan: Plan, project_root: Path, seconds: float, redaction: dict[str, int] | None = None,
           redacted: bool = False) -> str:
    lines = [f"# Migration report: {Path(project_root).name}", ""]
    missing = unanswered(plan)
    if missing:
        lines += ["## Intents with no answer (listed first: the bot falls back, then hands off, on these)", "",
                  "| intent | examples | why |", "|---|---|---|"]
        for d in sorted(missing, key=lambda d: -len(d.examples)):
            why = d.note.removeprefix("TODO: ").split("; answered from")[0]
            lines.append(f"| {d.name} | {len(d.examples)} | {why} |")
        lines += ["", "Give each an `answer:` in intents.yaml (and drop `route: knowledge`), or add help articles "
                      "to knowledge/ that answer it.", ""]
    templated = [d for d in plan.intents if d.route == "template"]
    lines += ["## Migrated", "",
              f"- {len(plan.intents)} intents, {sum(len(d.examples) for d in plan.intents)} examples "
              f"(took {seconds:.2f} s)",
              f"- {len(templated)} intents with answer templates "
              f"({sum(len(d.answers) for d in templated)} variants, "
              f"{sum(len(d.quick_replies) for d in templated)} quick replies): "
              + ", ".join(d.name for d in templated)]
    for intent, how in sorted(plan.answered_by.items()):
        lines.append(f"  - {intent}: {how}")
    handoff = [d.name for d in plan.intents if d.route == "handoff"]
    if handoff:
        lines.append(f"- hand-off intents: {', '.join(handoff)}")
    if plan.articles:
        lines.append("- knowledge articles: " + ", ".join(f"knowledge/{s}.csv ({len(rows)} questions)"
                                                          for s, rows in plan.articles.items()))
    if plan.entities:
        lines.append("- entities: " + ", ".join(
            f"{e.name} ({len(e.values)} values, {len(e.synonyms)} synonyms{', a pattern' if e.pattern else ''})"
            for e in plan.entities))
    if plan.smalltalk:
        lines.append(f"- small talk (server.smalltalk_intents): {', '.join(plan.smalltalk)}")
    if plan.fallback_message:
        lines.append(f"- fallback message (server.fallback_message): {plan.fallback_message!r}")
    lines.append("- note: bot.toml sets server.handoff_after_failures = 0, so that, as in Rasa, fallbacks never hand "
                 "the conversation to a person by themselves; supportbot's default is 3 (after three in a row)")
    turns = [t for c in plan.conversations for t in c.turns]
    scored = [t for t in turns if not t.skip]
    lines.append(f"- held-out check: {len(plan.evaluation)} labelled test messages in evaluation.csv; "
                 f"{len(plan.conversations)} test conversations in conversations.yaml, {len(turns)} turns, "
                 f"{len(scored)} scored ({len(turns) - len(scored)} need a custom action or form, or expect no reply). "
                 "Replay them: `python run_bot.py evaluate --conversations --bot FOLDER`")
    if redaction:
        verb = "redacted" if redacted else "would be redacted with --redact (examples kept as written)"
        lines.append("- personal data " + verb + ": " + ", ".join(f"{k.lower()} {n}" for k, n in sorted(redaction.items())))
    lines.append("")
    by_concept = defaultdict(list)
    for d in plan.dropped:
        by_concept[d.concept].append(d)
    if by_concept:
        lines += ["## Not carried over", "", "| concept | name | where | why | instead |", "|---|---|---|---|---|"]
        for concept in sorted(by_concept):
            seen = set()
            for d in by_concept[concept]:
                key = (d.name, d.why, str(d.where))
                if key in seen:
                    continue
                seen.add(key)
                lines.append(f"| {concept} | {_cell(d.name)} | {_rel(d.where, project_root)} | {_cell(d.why)} | "
                             f"{_cell(d.instead)} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary(plan: Plan) -> str:
    """The few lines printed after a migration."""
    templated = sum(d.route == "template" for d in plan.intents)
    missing = unanswered(plan)
    out = [f"{len(plan.intents)} intents ({templated} with answers), {len(plan.entities)} entities, "
           f"{len(plan.conversations)} test conversations, {len(plan.dropped)} items not carried over"]
    if missing:
        out.append("no answer: " + ", ".join(f"{d.name} ({len(d.examples)} examples)" for d in missing))
    return "\n".join(out)
