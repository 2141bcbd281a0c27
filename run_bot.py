#!/usr/bin/env python3
"""supportbot command line: a thin layer over the bot/, knowledge/ and training/ Python APIs.

Heavy libraries (torch, transformers, faiss) are imported inside the commands, so --help is fast.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EXAMPLES = """examples:
  python run_bot.py demo                       train the demo store bot and serve it
  python run_bot.py train --bot mybot          fine-tune the intent model of a bot folder
  python run_bot.py evaluate --bot mybot       report on the serving model
  python run_bot.py report --since 7d          last week's containment, fallbacks, intents, latency
  python run_bot.py settings                   list every setting with its default and help
"""


def build_parser() -> argparse.ArgumentParser:
    from bot.cli import (db, explain, import_, intents, kb, memory, models, report, retrain, review, serve, settings,
                         train, users)

    parser = argparse.ArgumentParser(
        prog="run_bot.py", description="supportbot: customer-service bots from transcripts, canned answers and help articles.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, retrain, models, import_, intents, kb, memory, explain, serve, users, review, report, settings,
                   db):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
