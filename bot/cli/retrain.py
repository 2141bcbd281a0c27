"""`run_bot.py retrain`: gated re-fine-tuning, in this process (`bot.retraining.run`, as the server's retrain
process)."""

from __future__ import annotations

import argparse

from bot.cli.common import add_bot_args, command
from bot.cli.train import add_parallel_args


def register(sub) -> None:
    p = command(sub, "retrain", retrain_cmd,
                "re-fine-tune on all examples plus the new ones, gate the candidate against the serving model, "
                "promote it only if it is not worse",
                "  python run_bot.py retrain --bot mybot\n"
                "  python run_bot.py retrain --bot mybot --set retrain.warm_start=never\n"
                "  python run_bot.py retrain --bot mybot --gpus 2               data-parallel on two CUDA devices")
    add_bot_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_parallel_args(p)


def retrain_cmd(args: argparse.Namespace) -> int:
    from bot import retraining
    from bot.cli.train import open_training_bot

    return retraining.exit_code(retraining.run(open_training_bot(args), "cli", progress=not args.quiet))
