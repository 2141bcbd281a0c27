"""What every `run_bot.py` command shares: the bot-folder argument, `--set` overrides, error output."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.folder import BotFolder

DEFAULT_BOT = Path(__file__).resolve().parent.parent.parent / "examples" / "demo_store"


def add_bot_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bot", type=Path, default=DEFAULT_BOT,
        help="bot folder (bot.toml, intents.yaml, knowledge/, transcripts/); default: the demo store",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help="override a setting, e.g. --set train.epochs=2 (repeatable; see `run_bot.py settings`)",
    )


def open_bot(args: argparse.Namespace) -> BotFolder:
    return BotFolder.load(args.bot, args.overrides)


def command(sub, name: str, func, help: str, examples: str = "") -> argparse.ArgumentParser:
    """Add a subcommand whose help ends with usage examples."""
    parser = sub.add_parser(
        name, help=help, description=help, epilog=f"examples:\n{examples}" if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser
