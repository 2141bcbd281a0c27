"""`run_bot.py import` (past transcripts -> training examples; Rasa project -> new bot folder) and
`run_bot.py intents` (review the intents proposed from unlabelled requests: propose, list, accept, rename,
merge, drop). Accepting a proposal labels its examples and appends the intent to the bot's intents.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from bot.cli.common import add_bot_args, command, open_bot
from bot.folder.bot_folder import BotFolder, load_intents

IMPORT_EXAMPLES = """\
  python run_bot.py import --bot mybot                                every file in mybot/transcripts/
  python run_bot.py import chats.csv --bot mybot --dry-run            preview counts and ten examples
  python run_bot.py import chats.csv --bot mybot --columns conversation_id=ticket --columns role=speaker
  python run_bot.py import twcs.csv --format twitter --bot mybot
  python run_bot.py import abcd_v1.1.json.gz --format abcd --bot mybot
  python run_bot.py import tickets.jsonl --format zendesk --bot mybot --set transcripts.tag_label_prefix=intent_
  python run_bot.py import conversations.json --format intercom --bot mybot
  python run_bot.py import chats.csv --into mybot                     start a new bot folder from past transcripts
  python run_bot.py import rasa-project/ --format rasa --into mybot   migrate a Rasa project to a new bot folder
  python run_bot.py import rasa-project/ --into mybot --retrieval-as knowledge   faq/... responses as articles"""

INTENTS_EXAMPLES = """\
  python run_bot.py intents propose --bot mybot        cluster unlabelled examples into proposals
  python run_bot.py intents list --bot mybot
  python run_bot.py intents accept 3 --name refund_status --bot mybot
  python run_bot.py intents merge 3 7 --bot mybot      fold proposal 7 into 3
  python run_bot.py intents drop 5 --bot mybot"""


def register(sub) -> None:
    from training.transcripts import FORMATS

    p = command(sub, "import", run_import, "import past transcripts as training examples, or migrate a Rasa project",
                IMPORT_EXAMPLES)
    p.add_argument("path", type=Path, nargs="?",
                   help="transcript file (CSV, JSON, JSON lines, .gz) or Rasa project folder; "
                        "default: every file in the bot's transcripts/ folder, each imported on its own")
    p.add_argument("--format", default="auto", choices=["auto", *FORMATS],
                   help="; ".join(f"{k}: {v}" for k, v in FORMATS.items()) + " (default: guessed from the file)")
    p.add_argument("--dry-run", action="store_true", help="read, label and cluster, print counts and ten examples; store nothing")
    p.add_argument("--columns", action="append", default=[], metavar="FIELD=COLUMN",
                   help="generic format: which column holds conversation_id, role, text, time or label (repeatable)")
    p.add_argument("--into", type=Path, metavar="NEW_BOT_FOLDER",
                   help="start a new bot folder (bot.toml, intents.yaml, knowledge/, transcripts/) and import into it; "
                        "a Rasa project is migrated: intents, answers, entities, its test stories as conversations.yaml, "
                        "and MIGRATION.md listing what could not be carried over")
    p.add_argument("--retrieval-as", choices=["intents", "knowledge"], default="intents",
                   help="Rasa migration: retrieval intents (faq/ask_price) become intents with their own answers "
                        "(default), or knowledge articles answered by retrieval")
    p.add_argument("--redact", action="store_true",
                   help="Rasa migration: redact personal data in the authored examples (default: keep them as "
                        "written; the report lists what redaction would change)")
    p.add_argument("--no-cluster", action="store_true", help="do not cluster unlabelled requests into proposed intents")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_bot_args(p)

    p = command(sub, "intents", lambda args: p.print_help() or 2,
                "review intents proposed from unlabelled imported requests", INTENTS_EXAMPLES)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = command(actions, "propose", propose, "cluster the unlabelled examples into proposed intents (replaces open ones)",
                "  python run_bot.py intents propose --bot mybot --set transcripts.min_cluster_size=5")
    add_bot_args(q)
    q = command(actions, "list", list_proposals, "show the open proposals: id, suggested name, size, examples",
                "  python run_bot.py intents list --bot mybot")
    add_bot_args(q)
    q = command(actions, "accept", accept, "create the intent (append it to intents.yaml) and label its examples",
                "  python run_bot.py intents accept 3 --bot mybot\n"
                "  python run_bot.py intents accept 3 --name track_order --bot mybot   (an existing intent: label only)")
    q.add_argument("id", type=int, help="proposal id (see `intents list`)")
    q.add_argument("--name", help="intent name (default: the suggested name)")
    add_bot_args(q)
    q = command(actions, "rename", rename, "change a proposal's suggested name",
                "  python run_bot.py intents rename 3 refund_status --bot mybot")
    q.add_argument("id", type=int)
    q.add_argument("name")
    add_bot_args(q)
    q = command(actions, "merge", merge, "merge proposals into the first one (which stays open for accepting)",
                "  python run_bot.py intents merge 3 7 9 --name delivery_delay --bot mybot")
    q.add_argument("ids", type=int, nargs="+", metavar="ID")
    q.add_argument("--name", help="name of the merged proposal (default: the first one's)")
    add_bot_args(q)
    q = command(actions, "drop", drop, "reject a proposal: its examples stay unlabelled and are not proposed again",
                "  python run_bot.py intents drop 5 --bot mybot")
    q.add_argument("id", type=int)
    add_bot_args(q)


# -- import -----------------------------------------------------------------------------------------
def run_import(args: argparse.Namespace) -> int:
    if args.into is not None:
        if args.path is None:
            raise ValueError("--into needs the transcript file (or Rasa project) to start the new bot from")
        from training.transcripts import detect_format

        if args.format == "rasa" or (args.format == "auto" and detect_format(args.path) == "rasa"):
            return migrate_rasa(args.path, args.into, args.overrides, redact=args.redact,
                                retrieval_as=args.retrieval_as)
        folder = new_bot_folder(args.into, args.path, args.overrides)
        args.path = folder.transcripts_dir / args.path.name
    else:
        folder = open_bot(args)
    from bot.database import open_bot_database
    from core.sqlite import connect
    from training.importer import import_transcripts
    from training.store import ExampleStore

    if args.path is None:
        paths = sorted(p for p in folder.transcripts_dir.glob("*") if p.is_file() and not p.name.startswith("."))
        if not paths:
            raise FileNotFoundError(f"no transcript files in {folder.transcripts_dir}: give a PATH")
    else:
        paths = [args.path]
    settings = folder.settings
    fresh = args.dry_run and not settings.on_postgres and not settings.db_path.exists()
    db = connect(None) if fresh else open_bot_database(settings)
    embedder = _Once(lambda: _embedder(settings))
    try:
        for path in paths:
            bars = _Bars(enabled=not args.no_progress)
            try:
                report = import_transcripts(
                    path, args.format, ExampleStore(db), settings=settings.transcripts, privacy=settings.privacy,
                    answers={name: i.answer for name, i in folder.intents.items() if i.answer},
                    intents=set(folder.intents), embedder=embedder, columns=tuple(args.columns),
                    root=folder.path, dry_run=args.dry_run, cluster=not args.no_cluster, progress=bars,
                )
            finally:
                bars.close()
            print(report.summary())
    finally:
        db.close()
    if not args.dry_run:
        print(f"stored in {'the PostgreSQL database (database.url)' if settings.on_postgres else settings.db_path}")
    if args.into is not None:
        print(f"Next: python run_bot.py intents list --bot {args.into}   (review the proposed intents)")
    return 0


def new_bot_folder(into: Path, transcript: Path, overrides: Sequence[str] = ()) -> BotFolder:
    """A new bot folder holding a copy of `transcript`; refuses to touch an existing non-empty folder."""
    into = Path(into)
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise ValueError(f"{into} already exists and is not empty: give a new folder for the bot")
    if not Path(transcript).is_file():
        raise FileNotFoundError(f"{transcript}: no such transcript file")

    def write(staging: Path) -> None:
        (staging / "bot.toml").write_text(
            f"# supportbot settings. Every setting and its default: python run_bot.py settings --bot {into}\n"
            f"name = {json.dumps(into.name)}\n", encoding="utf-8")
        (staging / "intents.yaml").write_text(
            f"# Intents of {into.name}, started from {Path(transcript).name}.\n"
            "# `run_bot.py intents accept` adds the intents proposed from the transcripts here; give each an\n"
            "# `answer:` (and drop `route: knowledge`) or add help articles to knowledge/ for them.\n\n"
            "entities: {}\n\nintents:\n", encoding="utf-8")
        (staging / "knowledge").mkdir()
        (staging / "transcripts").mkdir()
        shutil.copy2(transcript, staging / "transcripts" / Path(transcript).name)

    _write_folder(into, write)
    print(f"Created {into}: bot.toml, intents.yaml, knowledge/, transcripts/{Path(transcript).name}")
    return BotFolder.load(into, overrides)


def _write_folder(into: Path, write) -> None:
    """Write a new folder in a scratch folder beside it, check it loads, then rename it into place."""
    into.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{into.name}-", dir=into.parent))
    try:
        write(staging)
        BotFolder.load(staging)  # what we wrote must load
        if into.exists():
            into.rmdir()
        os.replace(staging, into)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class _Once:
    """A factory that builds its object on the first call only (the embedder, shared by several imports)."""

    def __init__(self, make):
        self.make, self.made = make, None

    def __call__(self):
        if self.made is None:
            self.made = self.make()
        return self.made


def _embedder(settings):
    from knowledge.embedder import SentenceEmbedder

    return SentenceEmbedder(settings.knowledge.embedder_model)


class _Bars:
    """One tqdm bar per import stage (reading bytes, matching replies)."""

    def __init__(self, enabled: bool):
        self.enabled, self.bars = enabled, {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            unit = {"reading": "B"}.get(stage, " replies")
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit=unit, unit_scale=stage == "reading",
                                          leave=False)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


# -- Rasa migration ---------------------------------------------------------------------------------
def migrate_rasa(project_path: Path, into: Path, overrides: Sequence[str] = (), redact: bool = False,
                 retrieval_as: str = "intents") -> int:
    """Write a new bot folder from a Rasa project, with MIGRATION.md; refuses to touch an existing non-empty folder."""
    from bot.folder.rasa_migration import REPORT_FILE
    from bot.folder.rasa_migration import migrate_rasa as migrate
    from bot.settings import load_settings
    from training.rasa.report import summary

    into = Path(into)
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise ValueError(f"{into} already exists and is not empty: give a new folder for the migrated bot")
    settings = load_settings(None, overrides)
    done = migrate(project_path, into, _write_folder, privacy=settings.privacy, redact=redact,
                   retrieval_as=retrieval_as, oos_label=settings.train.oos_label)
    print(done.report)
    print(f"Migrated {project_path} into {into} in {done.seconds:.2f} s: {summary(done.plan)}")
    print(f"Report: {into / REPORT_FILE}")
    print(f"Next: python run_bot.py train --bot {into}, then python run_bot.py evaluate --conversations --bot {into}")
    return 0


def render_intent(name: str, examples: Sequence[str], route: str = "knowledge", answer: str = "",
                  note: str = "", indent: str = "  ") -> str:
    """One intent as an intents.yaml block (strings JSON-quoted, which YAML reads as double-quoted)."""
    i2, i3 = indent * 2, indent * 3
    out = [f"{indent}{name}:"]
    for line in _wrap(note):
        out.append(f"{i2}# {line}")
    out.append(f"{i2}description: {json.dumps(name.replace('_', ' '), ensure_ascii=False)}")
    if answer:
        out.append(f"{i2}answer: {json.dumps(answer, ensure_ascii=False)}")
    if route != "template":
        out.append(f"{i2}route: {route}")
    out.append(f"{i2}examples:")
    out += [f"{i3}- {json.dumps(t, ensure_ascii=False)}" for t in examples]
    return "\n".join(out) + "\n"


def _wrap(text: str, width: int = 100) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def append_intent(file: Path, block_for_indent) -> None:
    """Insert an intent block at the end of the top-level `intents:` mapping; validated, then atomically replaced."""
    text = file.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(r"intents:\s*(#.*)?$", ln.rstrip("\n"))), None)
    if start is None:
        raise ValueError(f"{file}: no block-style 'intents:' mapping to append to")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"[^\s#]", lines[i])), len(lines))
    body = [ln for ln in lines[start + 1: end] if ln.strip() and not ln.lstrip().startswith("#")]
    indent = re.match(r"\s*", body[0]).group() if body else "  "
    before = "".join(lines[:end])
    if before and not before.endswith("\n"):
        before += "\n"
    new = before + "\n" + block_for_indent(indent) + ("\n" if end < len(lines) else "") + "".join(lines[end:])
    fd, tmp = tempfile.mkstemp(prefix=".intents-", suffix=".yaml", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new)
        load_intents(Path(tmp))
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- intents review ---------------------------------------------------------------------------------
def _stores(folder: BotFolder):
    from bot.database import open_bot_database
    from training.store import ExampleStore, ProposalStore

    db = open_bot_database(folder.settings)
    return db, ExampleStore(db), ProposalStore(db)


def propose(args: argparse.Namespace) -> int:
    from training.clusters import propose as cluster_proposals

    folder = open_bot(args)
    db, store, proposals = _stores(folder)
    ids = cluster_proposals(store, _embedder(folder.settings), folder.settings.transcripts)
    print(f"{len(ids)} proposed intents from the unlabelled examples")
    _print(proposals.proposals())
    return 0


def list_proposals(args: argparse.Namespace) -> int:
    db, store, proposals = _stores(open_bot(args))
    open_ = proposals.proposals()
    if not open_:
        print("no open proposals (run `run_bot.py intents propose` after importing transcripts)")
    _print(open_)
    return 0


def _print(proposals) -> None:
    for p in proposals:
        print(f"#{p.id}  {p.name}  ({p.size} examples)")
        for text in p.examples:
            print(f"      - {text}")


def _intent_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w]*", name or ""):
        raise ValueError(f"intent name {name!r}: use letters, digits and '_' (e.g. refund_status)")
    return name


def accept(args: argparse.Namespace) -> int:

    folder = open_bot(args)
    db, store, proposals = _stores(folder)
    proposal = proposals.get(args.id)
    if proposal.status != "open":
        raise ValueError(f"proposal {proposal.id} is {proposal.status}, not open")
    name = _intent_name(args.name or proposal.name)
    with db.transaction():
        labelled = proposals.label_members(proposal, name)
        proposals.update(proposal.id, status="accepted", intent=name, name=name)
        if name not in folder.intents:  # written last: an error above leaves intents.yaml untouched
            note = (f"TODO: accepted from proposal {proposal.id} ({proposal.size} imported requests). Answered from "
                    "the knowledge base until you write an `answer:` template and remove `route: knowledge`.")
            append_intent(folder.path / "intents.yaml",
                          lambda indent: render_intent(name, proposal.examples, note=note, indent=indent))
    where = "existing intent" if name in folder.intents else f"new intent in {folder.path / 'intents.yaml'}"
    print(f"accepted proposal {proposal.id} as {name} ({where}); labelled {labelled} examples")
    return 0


def rename(args: argparse.Namespace) -> int:

    db, store, proposals = _stores(open_bot(args))
    proposal = proposals.get(args.id)
    with db.transaction():
        proposals.update(proposal.id, name=_intent_name(args.name))
    print(f"proposal {proposal.id}: {proposal.name} -> {args.name}")
    return 0


def merge(args: argparse.Namespace) -> int:

    if len(args.ids) < 2:
        raise ValueError("merge needs at least two proposal ids")
    db, store, proposals = _stores(open_bot(args))
    group = [proposals.get(i) for i in dict.fromkeys(args.ids)]
    closed = [p.id for p in group if p.status != "open"]
    if closed:
        raise ValueError(f"proposals {closed} are not open")
    target, others = group[0], group[1:]
    members = {m for p in group for m in p.members}
    examples = list(dict.fromkeys(t for p in group for t in p.examples))[:8]
    name = _intent_name(args.name or target.name)
    with db.transaction():
        proposals.update(target.id, name=name, members=members, examples=examples)
        for p in others:
            proposals.update(p.id, status="merged", intent=f"#{target.id}")
    print(f"merged {', '.join('#' + str(p.id) for p in others)} into #{target.id} {name} ({len(members)} examples)")
    return 0


def drop(args: argparse.Namespace) -> int:

    db, store, proposals = _stores(open_bot(args))
    proposal = proposals.get(args.id)
    with db.transaction():
        proposals.update(proposal.id, status="dropped")
    print(f"dropped proposal {proposal.id} ({proposal.name}); its {proposal.size} examples stay unlabelled")
    return 0
