"""`run_bot.py intents`: review the intents proposed from unlabelled imported requests (propose, list, accept,
rename, merge, drop, undo) through bot.review.proposals, as the review page does; each decision is a review
action in the name of the OS user (`cli:<user>`).
"""

from __future__ import annotations

import argparse

from bot.cli.common import actor, add_bot_args, command, open_bot

INTENTS_EXAMPLES = """\
  python run_bot.py intents propose --bot mybot        cluster unlabelled examples into proposals
  python run_bot.py intents list --bot mybot
  python run_bot.py intents accept 3 --name refund_status --bot mybot
  python run_bot.py intents merge 3 7 --bot mybot      fold proposal 7 into 3
  python run_bot.py intents drop 5 --bot mybot
  python run_bot.py intents undo 12 --bot mybot        take back review action 12 (printed by accept, merge, ...)"""


def register(sub) -> None:
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
    q = command(actions, "undo", undo, "take back an accept, rename, merge or drop by its review action id "
                "(printed by each; also listed on the review page)", "  python run_bot.py intents undo 12 --bot mybot")
    q.add_argument("action_id", type=int, metavar="ACTION_ID")
    add_bot_args(q)


def _proposals(folder):
    from bot.database import open_bot_database
    from bot.review.proposals import Proposals

    return Proposals(open_bot_database(folder.settings), folder)




def propose(args: argparse.Namespace) -> int:
    from knowledge.embedder import SentenceEmbedder

    folder = open_bot(args)
    proposals = _proposals(folder)
    ids = proposals.propose(SentenceEmbedder(folder.settings.knowledge.embedder_model))
    print(f"{len(ids)} proposed intents from the unlabelled examples")
    _print(proposals.open())
    return 0


def list_proposals(args: argparse.Namespace) -> int:
    open_ = _proposals(open_bot(args)).open()
    if not open_:
        print("no open proposals (run `run_bot.py intents propose` after importing transcripts)")
    _print(open_)
    return 0


def _print(proposals) -> None:
    for p in proposals:
        print(f"#{p.id}  {p.name}  ({p.size} examples)")
        for text in p.examples:
            print(f"      - {text}")


def _done(out) -> int:
    """What a decision did, and how to take it back."""
    print("; ".join(out.notes) + f" (undo: run_bot.py intents undo {out.action_ids[0]})")
    return 0


def accept(args: argparse.Namespace) -> int:
    return _done(_proposals(open_bot(args)).accept(args.id, args.name or "", actor()))


def rename(args: argparse.Namespace) -> int:
    return _done(_proposals(open_bot(args)).rename(args.id, args.name, actor()))


def merge(args: argparse.Namespace) -> int:
    return _done(_proposals(open_bot(args)).merge(args.ids, args.name or "", actor()))


def drop(args: argparse.Namespace) -> int:
    return _done(_proposals(open_bot(args)).drop(args.id, actor()))


def undo(args: argparse.Namespace) -> int:
    _proposals(open_bot(args)).undo(args.action_id, actor())
    print(f"undid review action {args.action_id}")
    return 0
