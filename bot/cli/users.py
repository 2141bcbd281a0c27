"""`run_bot.py users add | list | remove | password`: the review workspace's accounts."""

from __future__ import annotations

import argparse
import getpass
import sys

from bot.cli.common import add_bot_args, command, open_bot

EXAMPLES = """\
  python run_bot.py users add alice --role reviewer --bot mybot        asks for the password twice
  printf '%s\\n' "$PASSWORD" | python run_bot.py users add ops --role admin --password-stdin --bot mybot
  python run_bot.py users list --bot mybot
  python run_bot.py users password alice --bot mybot
  python run_bot.py users remove alice --bot mybot"""


def register(sub) -> None:
    p = command(sub, "users", lambda args: p.print_help() or 2, "manage review-workspace accounts", EXAMPLES)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = command(actions, "add", add, "create an account (reviewer: works the queue; admin: also users and models)",
                "  python run_bot.py users add alice --role reviewer --bot mybot")
    q.add_argument("name")
    q.add_argument("--role", choices=("reviewer", "admin"), default="reviewer", help="default: reviewer")
    q.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin (what happens anyway when stdin is not a terminal)")
    add_bot_args(q)
    q = command(actions, "list", list_users, "list accounts and their roles", "  python run_bot.py users list --bot mybot")
    add_bot_args(q)
    q = command(actions, "remove", remove, "delete an account (its sessions end at once)",
                "  python run_bot.py users remove alice --bot mybot")
    q.add_argument("name")
    add_bot_args(q)
    q = command(actions, "password", password, "set a new password (the account's sessions end)",
                "  python run_bot.py users password alice --bot mybot")
    q.add_argument("name")
    q.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin (what happens anyway when stdin is not a terminal)")
    add_bot_args(q)


def _store(args: argparse.Namespace):
    from bot.review.accounts import AccountStore
    from bot.database import open_bot_database

    return AccountStore(open_bot_database(open_bot(args).settings))


def _read_password(args: argparse.Namespace) -> str:
    """Asked twice at a terminal; otherwise (--password-stdin, or a pipe) the first line of standard input."""
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ValueError("no password on the first line of standard input")
        return password
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def add(args: argparse.Namespace) -> int:
    store = _store(args)
    account = store.add(args.name, args.role, _read_password(args))
    print(f"added {account.name} ({account.role})")
    return 0


def list_users(args: argparse.Namespace) -> int:
    accounts = _store(args).list()
    for a in accounts:
        print(f"{a.name}\t{a.role}")
    if not accounts:
        print("no accounts yet: `run_bot.py users add NAME --role reviewer`")
    return 0


def remove(args: argparse.Namespace) -> int:
    _store(args).remove(args.name)
    print(f"removed {args.name}")
    return 0


def password(args: argparse.Namespace) -> int:
    store = _store(args)
    if store.get(args.name) is None:
        raise ValueError(f"no user {args.name!r}")
    store.set_password(args.name, _read_password(args))
    print(f"new password set for {args.name}; its sessions have ended")
    return 0
