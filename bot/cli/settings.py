"""`run_bot.py settings`: every setting with its current value and help."""

from __future__ import annotations

from bot.cli.common import add_bot_args, command, open_bot
from bot.settings import describe

SECRETS = ("server.admin_token", "server.identity_secret", "database.url")  # shown as set or not, never printed


def register(sub) -> None:
    p = command(sub, "settings", show, "list every setting, its value for this bot and what it does",
                "  python run_bot.py settings --bot mybot --set train.epochs=2")
    add_bot_args(p)


def show(args) -> int:
    settings = open_bot(args).settings
    for name, _default, help in describe():
        value = settings
        for part in name.split("."):
            value = getattr(value, part)
        shown = ("'(set, hidden)'" if value else "''") if name in SECRETS else repr(value)
        print(f"{name} = {shown}\n    {help}")
    return 0
