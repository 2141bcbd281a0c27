"""`run_bot.py settings`: every setting with its current value and help."""

from __future__ import annotations

from bot.cli.common import add_bot_args, command, open_bot
from bot.settings import describe


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
        print(f"{name} = {value!r}\n    {help}")
    return 0
