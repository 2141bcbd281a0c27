"""`run_bot.py memory stats`: the memory of reviewed answers (bot.review.memory) as the server builds it: how many
reviewed messages, the fitted similarity threshold and what its leave-one-out measured."""

from __future__ import annotations

import argparse
from collections import Counter

from bot.cli.common import add_bot_args, command, open_bot

EXAMPLES = """\
  python run_bot.py memory stats --bot mybot"""


def register(sub) -> None:
    memory = command(sub, "memory", lambda args: memory.print_help() or 2,
                     "the memory of reviewed answers, consulted before the intent model", EXAMPLES)
    inner = memory.add_subparsers(dest="memory_command", metavar="SUBCOMMAND")
    p = command(inner, "stats", stats, "reviewed messages, the fitted similarity threshold and its measured precision",
                EXAMPLES)
    add_bot_args(p)


def stats(args: argparse.Namespace) -> int:
    from bot.review.memory import mark_serving, memory_of
    from knowledge.base import KnowledgeBase

    folder = open_bot(args)
    s = folder.settings
    kb = KnowledgeBase.open(s.database_location, s.index_path, s.knowledge)
    try:
        memory = memory_of(folder, kb)
        mark_serving(folder, memory)
    finally:
        kb.close()
    outcomes = Counter(e.intent for e in memory.examples)
    print(f"reviewed messages {len(memory)} ({len(outcomes)} outcomes)")
    for outcome, n in outcomes.most_common(10):
        print(f"  {outcome}: {n}")
    print(memory.describe(folder.settings.review.memory_precision))
    if memory.learned_version:
        print(f"learned by the serving model {memory.learned_version}: {len(memory.learned)} of {len(memory)} "
              f"(answered right without the memory; kept)")
    if not folder.settings.review.memory:
        print("the memory is off (review.memory = false)")
    return 0
