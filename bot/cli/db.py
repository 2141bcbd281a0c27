"""`run_bot.py db copy`: the bot's database, moved from its SQLite file to a PostgreSQL server."""

from __future__ import annotations

import argparse

from bot.cli.common import add_bot_args, command, open_bot

EXAMPLES = """\
  python run_bot.py db copy --to postgresql://bot@db.example.com/supportbot --bot mybot
  SUPPORTBOT_DATABASE_URL=postgresql://bot:PASSWORD@db.example.com/supportbot python run_bot.py db copy --bot mybot"""


def register(sub) -> None:
    p = command(sub, "db", lambda args: p.print_help() or 2, "the bot's database: move it to PostgreSQL", EXAMPLES)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = command(actions, "copy", copy,
                "copy every table of the bot's SQLite file into an empty PostgreSQL database (one transaction, "
                "verified by row counts); then set database.url to it",
                "  python run_bot.py db copy --to postgresql://bot@db.example.com/supportbot --bot mybot")
    q.add_argument("--to", metavar="URL", default="",
                   help="the target, postgresql://user@host/dbname; default: database.url or SUPPORTBOT_DATABASE_URL "
                        "(a password is better there than on the command line)")
    add_bot_args(q)


def copy(args: argparse.Namespace) -> int:
    from bot.db_copy import copy_state
    from core.sqlite import connect
    from core.engine import is_postgres_url, open_database

    settings = open_bot(args).settings
    url = args.to or (settings.database_location if settings.on_postgres else "")
    if not is_postgres_url(url):
        raise ValueError("db copy needs a target: --to postgresql://user@host/dbname (or database.url, or "
                         "SUPPORTBOT_DATABASE_URL)")
    if not settings.db_path.is_file():
        raise FileNotFoundError(f"no SQLite database at {settings.db_path}: nothing to copy")
    source, target = connect(settings.db_path), open_database(url)
    try:
        print(f"copying {settings.db_path} to PostgreSQL ...", flush=True)
        counts = copy_state(source, target, lambda table, n: print(f"  {table}: {n} rows, as in the source", flush=True))
    finally:
        source.close()
        target.close()
    print(f"done: {len(counts)} tables, {sum(counts.values())} rows in one transaction. Point the bot at it with "
          "database.url (or SUPPORTBOT_DATABASE_URL) and restart it.")
    return 0
