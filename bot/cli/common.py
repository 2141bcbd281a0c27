"""What every `run_bot.py` command shares: the bot-folder argument, `--set` overrides, error output."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.folder.bot_folder import BotFolder

DEFAULT_BOT = Path(__file__).resolve().parent.parent.parent / "examples" / "demo_store"


def add_bot_args(parser: argparse.ArgumentParser, inherited: bool = False) -> None:
    """--bot and --set; `inherited` for a sub-action whose parent command has them too (either place works)."""
    parser.add_argument(
        "--bot", type=Path, default=argparse.SUPPRESS if inherited else DEFAULT_BOT,
        help="bot folder (bot.toml, intents.yaml, knowledge/, transcripts/); default: the demo store",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=argparse.SUPPRESS if inherited else [],
        metavar="SECTION.FIELD=VALUE",
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


def actor() -> str:
    """Who decided, in the review action log and the retrain log: the OS user at the command line."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"
