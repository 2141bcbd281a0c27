"""`run_bot.py train`, `evaluate` and `calibrate`: the intent model of a bot folder (its versions:
`bot/cli/models.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.common import add_bot_args, command, open_bot
from bot.folder.bot_folder import EVALUATION_FILE, BotFolder

def register(sub) -> None:
    p = command(sub, "train", train, "fine-tune, calibrate and evaluate a new intent-model version, then serve it",
                "  python run_bot.py train                          the demo store bot\n"
                "  python run_bot.py train --bot mybot --data more.csv\n"
                "  python run_bot.py train --bot mybot --data train.csv --only     exactly this file\n"
                "  python run_bot.py train --bot mybot --set train.epochs=2 --no-promote\n"
                "  python run_bot.py train --bot mybot --gpus 4                  data-parallel on four CUDA devices")
    add_bot_args(p)
    p.add_argument("--data", type=Path, action="append", default=[],
                   help="labelled examples (CSV/TSV with text,intent columns, or JSON lines) added to the bot's example "
                   "store: kept, and trained on again by every later train and retrain, with intents.yaml's")
    p.add_argument("--only", action="store_true", help="train on exactly the --data files (duplicates and "
                   "conflicting labels dropped and counted), without intents.yaml or the store, which stay untouched")
    p.add_argument("--no-promote", action="store_true", help="save the version without making it the serving one")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_parallel_args(p)

    p = command(sub, "evaluate", evaluate_cmd, "evaluate a model version on held-out data; writes JSON and Markdown reports",
                "  python run_bot.py evaluate                       demo store bot, its evaluation.csv\n"
                "  python run_bot.py evaluate --bot mybot --data test.csv --model 20261123T140000-ab12cd34")
    add_bot_args(p)
    p.add_argument("--data", type=Path, help=f"labelled test file (default: the bot folder's {EVALUATION_FILE}, "
                   "else stored examples of split 'test')")
    p.add_argument("--model", help="version to evaluate (default: the serving one)")
    p.add_argument("--out", type=Path, help="report folder (default: the version's folder)")
    p.add_argument("--conversations", nargs="?", type=Path, const=Path("conversations.yaml"), metavar="FILE",
                   help="replay conversation tests turn by turn through the router instead (default file: the bot "
                        "folder's conversations.yaml, written by a Rasa migration) and list the turns that now get "
                        "a different reply")
    p.add_argument("--predictions", type=Path, metavar="FILE", help="also write one CSV row per message: text, label, "
                   "decision, intent, calibrated confidence, out-of-scope score, top-k")

    p = command(sub, "calibrate", calibrate_cmd, "refit a version's out-of-scope threshold and clarify margin (new "
                "settings, new out-of-scope examples) into a new version, without fine-tuning again",
                "  python run_bot.py calibrate --bot mybot --set train.oos_share=0.5\n"
                "  python run_bot.py calibrate --bot mybot --oos offtopic.csv --no-promote\n"
                "  python run_bot.py calibrate --bot mybot --oos-share reviews --set train.oos_score=mahalanobis")
    add_bot_args(p)
    p.add_argument("--model", help="version to refit (default: the serving one)")
    p.add_argument("--oos", type=Path, metavar="FILE", help="out-of-scope messages (CSV/TSV/JSON lines; a text column, "
                   "an intent column is optional) that replace the version's own for fitting the threshold")
    p.add_argument("--oos-share", dest="oos_share", metavar="SHARE|reviews", help="expected out-of-scope share "
                   "(default train.oos_share); 'reviews': the share of reviewed messages marked out of scope")
    p.add_argument("--no-promote", action="store_true", help="save the version without making it the serving one")


def add_parallel_args(parser: argparse.ArgumentParser) -> None:
    """--gpus / --processes of `train` and `retrain` (read by `open_training_bot`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--gpus", type=int, metavar="N", help="fine-tune data-parallel on N CUDA devices, one process "
                       "each (train.processes=N, train.device=cuda); fewer devices is an error before anything trains")
    group.add_argument("--processes", type=int, metavar="N", help="fine-tune data-parallel in N processes on "
                       "train.device (train.processes=N); on CPU they split the cores (gloo): the code path of "
                       "--gpus, to check without a GPU")


def open_training_bot(args: argparse.Namespace) -> BotFolder:
    """`open_bot` with --gpus / --processes as train settings; refuses a device setting this machine cannot meet
    (too few CUDA devices) before anything is read or trained."""
    from training.finetune import choose_device

    if args.gpus is not None:
        args.overrides = [*args.overrides, f"train.processes={args.gpus}", "train.device=cuda"]
    elif args.processes is not None:
        args.overrides = [*args.overrides, f"train.processes={args.processes}"]
    folder = open_bot(args)
    choose_device(folder.settings.train.device, folder.settings.train.processes)
    return folder


def train(args: argparse.Namespace) -> int:
    from bot.training_run import train_bot

    train_bot(open_training_bot(args), args.data, only=args.only, promote=not args.no_promote,
              progress=not args.quiet)
    return 0


def evaluate_cmd(args: argparse.Namespace) -> int:
    from bot.training_run import evaluate_bot, model_version

    folder = open_bot(args)
    if args.conversations is not None:
        from bot.training_run import replay_conversations

        result, report = replay_conversations(folder, args.model, args.conversations, args.out)
        print(result.summary())
        print(f"report: {report}")
        return 0
    run = evaluate_bot(folder, model_version(folder, args.model), args.data, args.out, args.predictions)
    for warning in run.warnings:
        print(f"warning: {warning}")
    print(run.summary)
    print(f"reports: {run.json_path}, {run.markdown_path}")
    if args.predictions:
        print(f"predictions: {args.predictions} ({run.predictions} rows)")
    return 0


def calibrate_cmd(args: argparse.Namespace) -> int:
    from bot.training_run import model_version, recalibrate_bot
    from training.calibrate import expectation

    folder = open_bot(args)
    run = recalibrate_bot(folder, model_version(folder, args.model), args.oos, args.oos_share, not args.no_promote)
    if run.reviewed is not None:
        print(f"out-of-scope share from {run.reviewed} reviewed messages: {100 * run.calibration.oos_share:.1f} %")
    before, c = run.before, run.calibration
    print(f"{run.source.name} -> {run.version} ({'serving it now' if not args.no_promote else 'not promoted'})")
    print(f"  score {before.get('score', {}).get('name', 'max_prob')} >= {before.get('score_threshold', before['threshold']):.4f}"
          f" -> {c.score['name']} >= {c.score_threshold:.4f}; {expectation(c.to_dict())}")
    print(f"  margin {before['margin']:.2f} -> {c.margin:.2f} (questions expected for {100 * c.clarify.get('share', 0):.1f} %"
          " of in-scope messages)")
    return 0
