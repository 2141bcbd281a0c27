"""`run_bot.py import`: past transcripts -> training examples; a Rasa project or a transcript file -> a new bot
folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from bot.cli.common import add_bot_args, command, open_bot
from bot.folder.new_folder import from_transcript

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


# -- import -----------------------------------------------------------------------------------------
def run_import(args: argparse.Namespace) -> int:
    path = args.path
    if args.into is not None:
        if args.path is None:
            raise ValueError("--into needs the transcript file (or Rasa project) to start the new bot from")
        from training.transcripts import detect_format

        if args.format == "rasa" or (args.format == "auto" and detect_format(args.path) == "rasa"):
            return migrate_rasa(args.path, args.into, args.overrides, redact=args.redact,
                                retrieval_as=args.retrieval_as)
        folder = from_transcript(args.into, args.path, args.overrides)
        print(f"Created {args.into}: bot.toml, intents.yaml, knowledge/, transcripts/{args.path.name}")
        path = folder.transcripts_dir / args.path.name  # the copy in the new bot folder
    else:
        folder = open_bot(args)
    from bot.folder.transcript_import import TranscriptImport, transcript_files

    settings = folder.settings
    paths = [path] if path is not None else transcript_files(folder)
    with TranscriptImport(folder, lambda: _embedder(settings), dry_run=args.dry_run) as importer:
        for file in paths:
            with _Bars(enabled=not args.no_progress) as bars:
                report = importer.run(file, args.format, tuple(args.columns), cluster=not args.no_cluster,
                                      progress=bars)
            print(report.summary())
    if not args.dry_run:
        print(f"stored in {'the PostgreSQL database (database.url)' if settings.on_postgres else settings.db_path}")
    if args.into is not None:
        print(f"Next: python run_bot.py intents list --bot {args.into}   (review the proposed intents)")
    return 0


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

    def __enter__(self) -> "_Bars":
        return self

    def __exit__(self, *exc) -> None:
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
    settings = load_settings(None, overrides)
    done = migrate(project_path, into, privacy=settings.privacy, redact=redact, retrieval_as=retrieval_as,
                   oos_label=settings.train.oos_label)
    print(done.report)
    print(f"Migrated {project_path} into {into} in {done.seconds:.2f} s: {summary(done.plan)}")
    print(f"Report: {into / REPORT_FILE}")
    print(f"Next: python run_bot.py train --bot {into}, then python run_bot.py evaluate --conversations --bot {into}")
    return 0
