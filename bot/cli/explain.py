"""`run_bot.py explain "message"`: why the bot answers a message as it does (bot.dialogue.explain), as the review
workspace's "try it" page shows it."""

from __future__ import annotations

import argparse
import json

from bot.cli.common import add_bot_args, command, open_bot

EXAMPLES = """\
  python run_bot.py explain "where is my order NW-482913" --bot mybot
  python run_bot.py explain "what's the weather like tomorrow" --json --bot mybot"""


def register(sub) -> None:
    p = command(sub, "explain", explain_cmd, "why the bot answers a message as it does: the decision, the rule that "
                "made it, every signal with its threshold, the knowledge candidates with their score parts", EXAMPLES)
    p.add_argument("message")
    p.add_argument("--json", action="store_true", help="print the explanation as one JSON object")
    add_bot_args(p)


def explain_cmd(args: argparse.Namespace) -> int:
    from bot.dialogue.explain import as_text, explain_in_folder

    explained = explain_in_folder(open_bot(args), args.message)
    print(json.dumps(explained, indent=2, ensure_ascii=False) if args.json else as_text(explained))
    return 0
