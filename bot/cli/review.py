"""`run_bot.py review list | show | export`: the review queue from the command line (the pages' data)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time

from bot.cli.common import add_bot_args, command, open_bot

EXAMPLES = """\
  python run_bot.py review list --bot mybot                        new items, newest first
  python run_bot.py review list --kind negative_feedback --sort frequent --bot mybot
  python run_bot.py review show 12 --bot mybot
  python run_bot.py review export --format csv --status done --bot mybot > reviewed.csv"""
FIELDS = ("id", "text", "status", "size", "kinds", "intent", "route", "model_version", "first_seen", "last_seen",
          "decision", "decided_by")


def register(sub) -> None:
    from bot.review.store import KINDS, SORTS, STATUSES

    p = command(sub, "review", lambda args: p.print_help() or 2, "read the review queue: list, show, export", EXAMPLES)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def filters(q: argparse.ArgumentParser) -> None:
        q.add_argument("--kind", choices=KINDS, default="")
        q.add_argument("--status", choices=[*STATUSES, "any"], default="new", help="default: new")
        q.add_argument("--intent", default="")
        q.add_argument("--route", default="")
        q.add_argument("--model-version", default="")
        q.add_argument("--search", default="", help="text the message contains")
        q.add_argument("--since", default="", help="last seen on or after this date (YYYY-MM-DD)")
        q.add_argument("--until", default="", help="last seen on or before this date (YYYY-MM-DD)")
        q.add_argument("--sort", choices=SORTS, default="newest")
        add_bot_args(q)

    q = command(actions, "list", list_items, "list queue items (groups of near-identical messages)",
                "  python run_bot.py review list --kind fallback --bot mybot")
    filters(q)
    q.add_argument("--limit", type=int, default=50)
    q = command(actions, "show", show, "one item: its turns, the bot's decision, ratings, and what was done",
                "  python run_bot.py review show 12 --bot mybot")
    q.add_argument("id", type=int)
    add_bot_args(q)
    q = command(actions, "export", export, "every item of a selection as CSV or JSON lines (stdout)",
                "  python run_bot.py review export --format jsonl --status any --bot mybot")
    filters(q)
    q.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")


def _desk(args: argparse.Namespace):
    from bot.database import migrate_stores, open_bot_database
    from bot.review.desk import ReviewDesk

    folder = open_bot(args)
    db = open_bot_database(folder.settings)
    migrate_stores(db)  # a bot that never served has no log yet: an empty queue, not a missing table
    desk = ReviewDesk(db, folder)
    desk.sync()
    return desk


def _filters(args: argparse.Namespace):
    from bot.review.store import Filters

    return Filters.from_query({"kind": args.kind, "status": "" if args.status == "any" else args.status,
                         "intent": args.intent, "route": args.route, "model_version": args.model_version,
                         "q": args.search, "since": args.since, "until": args.until, "sort": args.sort})


def _items(desk, filters, limit: int | None = None):
    cursor, n = None, 0
    while True:
        page = desk.reviews.page(filters, cursor, 500)
        for g in page.groups:
            yield g
            n += 1
            if limit is not None and n >= limit:
                return
        cursor = page.next_cursor
        if cursor is None:
            return


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) if t else ""


def list_items(args: argparse.Namespace) -> int:
    desk = _desk(args)
    shown = 0
    for g in _items(desk, _filters(args), args.limit):
        print(f"{g['id']:>6}  {g['status']:<7} x{g['size']:<4} {','.join(g['kinds']):<28} {g['intent'] or '-':<20} "
              f"{_when(g['last_seen'])}  {g['text'][:80]}")
        shown += 1
    counts = desk.reviews.counts("" if args.status == "any" else args.status)
    print(f"{shown} shown; per kind: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def show(args: argparse.Namespace) -> int:
    desk = _desk(args)
    g = desk.reviews.group(args.id)
    if g is None:
        raise ValueError(f"no review item {args.id}; see `run_bot.py review list`")
    turn = desk.reviews.turn(g["last_turn_id"])
    d = turn["decision"]
    print(f"item {g['id']}: {g['text']}")
    print(f"  status {g['status']}" + (f" ({g['decision']} by {g['decided_by']})" if g["decision"] else ""))
    print(f"  sent {g['size']} times, kinds {', '.join(g['kinds'])}, last {_when(g['last_seen'])}")
    print(f"  answer: {turn['answer']}")
    print(f"  route {turn['route']}, intent {turn['intent']}, confidence {turn['confidence']}, model {turn['model_version']}")
    print(f"  alternatives: {', '.join(f'{n} {p:.2f}' for n, p in d.get('alternatives', []))}")
    for s in d.get("sources", []):
        print(f"  passage: {s['title']} ({s['score']:.2f}) {s['url']}")
    for f in turn["feedback"]:
        print(f"  rated {f['rating']}: {f['comment'] or '(no comment)'}")
    for a in desk.reviews.actions(group_id=g["id"]):
        print(f"  {_when(a['created'])} {a['actor']} {a['action']}{' (undone)' if a['undone'] else ''}: "
              f"{json.dumps(a['before'])} -> {json.dumps(a['after'])}")
    return 0


def export(args: argparse.Namespace) -> int:
    desk = _desk(args)
    out = sys.stdout
    writer = csv.DictWriter(out, FIELDS) if args.format == "csv" else None
    if writer:
        writer.writeheader()
    for g in _items(desk, _filters(args)):
        row = {k: g[k] for k in FIELDS}
        if writer:
            writer.writerow({**row, "kinds": ",".join(row["kinds"])})
        else:
            out.write(json.dumps(row) + "\n")
    return 0
