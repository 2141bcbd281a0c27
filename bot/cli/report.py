"""`run_bot.py report`: the analytics page's figures in the terminal, or as a Markdown report with PNG plots
(matplotlib, the `report` extra) for a weekly e-mail (bot.analytics.report_text)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli.common import add_bot_args, command, open_bot

EXAMPLES = """\
  python run_bot.py report --since 7d --bot mybot                         the last 7 days in the terminal
  python run_bot.py report --since 4w --markdown weekly/report.md --bot mybot   Markdown + PNG plots beside it"""


def register(sub) -> None:
    p = command(sub, "report", report, "analytics of a period: containment, handoff, fallback, routes, intents, "
                "thumbs, latency, per day and per model version", EXAMPLES)
    p.add_argument("--since", default="", help="how far back: 7d, 2w, 30 (days; default analytics.days)")
    p.add_argument("--markdown", type=Path, metavar="FILE",
                   help="write a Markdown report here, its PNG plots beside it (needs matplotlib: pip install "
                        "'supportbot[report]')")
    add_bot_args(p)


def report(args: argparse.Namespace) -> int:
    from bot.analytics import report as reports
    from bot.analytics.figures import parse_since
    from bot.analytics.report_text import check_matplotlib, terminal, write_markdown
    from bot.database import open_bot_database

    folder = open_bot(args)
    days = parse_since(args.since) if args.since else None
    if args.markdown:
        check_matplotlib()
    if not folder.settings.on_postgres and not folder.settings.db_path.is_file():
        raise FileNotFoundError(f"no conversation log at {folder.settings.db_path}: serve the bot first")
    db = open_bot_database(folder.settings)
    unanswered, growing = reports.unanswered_and_growing(db, folder, days or folder.settings.analytics.days)
    r = reports.build(db, folder.settings, days, unanswered=unanswered, growing=growing)
    print(terminal(r))
    if args.markdown:
        written = write_markdown(r, args.markdown)
        print(f"wrote {args.markdown} and {len(written)} plots beside it", file=sys.stderr)
    return 0
