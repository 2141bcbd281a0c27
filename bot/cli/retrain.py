"""`run_bot.py retrain`: gated re-fine-tuning, in this process."""

from __future__ import annotations

import argparse

from bot.cli.common import add_bot_args, command
from bot.cli.models import _state
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
    p.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)  # "schedule" when the server starts it
    add_parallel_args(p)


def retrain_cmd(args: argparse.Namespace) -> int:
    from bot.cli.train import open_training_bot
    from bot.dialogue.conversations import ConversationLog
    from bot.training_run import train_settings
    from training.redact import Redactor
    from training.retrain import retrain
    from training.runs import RunLog
    from training.store import ExampleStore

    folder = open_training_bot(args)
    settings = folder.settings
    db, registry = _state(folder)
    store = ExampleStore(db)
    store.add(folder.seed_examples())
    conversations = ConversationLog(db, Redactor(settings.privacy))
    outcome = retrain(
        store.examples(), train_settings(folder, db), settings.retrain, registry, RunLog(db), settings.state_path / "retrain.lock",
        shadow_messages=conversations.recent_messages(settings.retrain.shadow_turns), trigger=args.trigger,
        progress=not args.quiet,
    )
    c = outcome.comparison
    shadow = c.get("shadow", [])
    flagged = conversations.flag_turns(
        "shadow", {s["turn_id"]: f"{outcome.candidate}: {s['serving']} -> {s['candidate']}" for s in shadow})
    counts = c["counts"]
    print(f"candidate {outcome.candidate} ({outcome.start} start; {counts['train']} examples, {counts['new']} new"
          + (f", new intents: {', '.join(counts['new_intents'])}" if counts["new_intents"] else "") + ")")
    print(("promoted: " if outcome.promoted else "refused: ") + "; ".join(c["reasons"]))
    print(f"shadow: {len(shadow)} of the last {settings.retrain.shadow_turns} customer messages would be decided "
          f"differently; {flagged} flagged for review")
    print(f"details: run_bot.py models diff {c.get('parent') or outcome.candidate} {outcome.candidate} --bot {folder.path}")
    return 0 if outcome.promoted else 3
