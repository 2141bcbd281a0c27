"""`run_bot.py models` (list, promote, rollback, prune, diff, golden, runs): the intent model's versions and how
they came to serve (`run_bot.py retrain`: bot/cli/retrain.py)."""

from __future__ import annotations

import argparse
import time

from bot.cli.common import actor, add_bot_args, command, open_bot

MODELS_EXAMPLES = """\
  python run_bot.py models --bot mybot                      list versions (* = serving) and the gate's verdicts
  python run_bot.py models promote 20261123T140000-ab12cd34 --bot mybot
  python run_bot.py models rollback --bot mybot
  python run_bot.py models prune --bot mybot
  python run_bot.py models diff 20261123T140000-ab12cd34 20261130T090000-cd34ef56 --bot mybot
  python run_bot.py models golden --bot mybot               set aside a stratified golden set for the gate
  python run_bot.py models runs --bot mybot                 the log of retrain runs
  python run_bot.py models approve 12 --bot mybot           serve the candidate retrain run 12 held for approval"""


def register(sub) -> None:
    p = command(sub, "models", list_cmd, "model versions: list, promote, rollback, prune, diff; the golden set; "
                "retrain runs", MODELS_EXAMPLES)
    add_bot_args(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    q = command(actions, "list", list_cmd, "versions, newest last (* = serving), with validation accuracy and "
                "the gate's verdict")
    add_bot_args(q, inherited=True)
    q = command(actions, "promote", promote_cmd, "serve this version (a running server picks it up by itself)")
    q.add_argument("version")
    add_bot_args(q, inherited=True)
    q = command(actions, "rollback", rollback_cmd, "serve the previously promoted version")
    add_bot_args(q, inherited=True)
    q = command(actions, "prune", prune_cmd, "delete all but the newest train.keep_versions versions (never the serving one)")
    add_bot_args(q, inherited=True)
    q = command(actions, "diff", diff_cmd, "compare two versions on the gate's data: overall, per intent, "
                "and every changed prediction with its text")
    q.add_argument("a", metavar="A")
    q.add_argument("b", metavar="B")
    q.add_argument("--limit", type=int, default=50, help="changed predictions shown (default 50)")
    add_bot_args(q, inherited=True)
    q = command(actions, "golden", golden_cmd, "set aside a stratified share (retrain.golden_share) of the labelled "
                "examples as the golden set (split test): never trained on, the gate's yardstick")
    add_bot_args(q, inherited=True)
    q = command(actions, "runs", runs_cmd, "the log of retrain runs: start, end, data counts, outcome")
    add_bot_args(q, inherited=True)
    for action, help in (("approve", "serve the candidate a retrain run held for approval (its changed answers: "
                                     "the review workspace, or `models diff`)"),
                         ("reject", "reject the candidate a retrain run held for approval; the serving model stays")):
        q = command(actions, action, settle_cmd, help)
        q.add_argument("run", type=int, metavar="RUN", help="the run's id (`models runs`)")
        add_bot_args(q, inherited=True)


def _registry(folder):
    from training.registry import ModelRegistry

    return ModelRegistry(folder.settings.models_path)


def list_cmd(args: argparse.Namespace) -> int:
    registry = _registry(open_bot(args))
    current = registry.current_version()
    for version in registry.versions():
        metrics = registry.record(version, "metrics") or {}
        v = metrics.get("validation") or {}
        acc = f"val accuracy {100 * v['accuracy']:.1f} %" if v else "no validation"
        data = registry.record(version, "data") or {}
        gate = registry.record(version, "gate")
        verdict = "" if gate is None else ("  gate: promoted" if gate["promote"] else "  gate: refused")
        start = f"  {data['start']} from {data.get('parent') or 'base'}" if data.get("start") else ""
        print(f"{'*' if version == current else ' '} {version}  {acc}  trained {metrics.get('trained_at', '?')}"
              f"{start}{verdict}")
    if not registry.versions():
        print("no model versions yet")
    return 0


def promote_cmd(args: argparse.Namespace) -> int:
    registry = _registry(open_bot(args))
    registry.promote(args.version)
    print(f"serving {args.version}")
    return 0


def rollback_cmd(args: argparse.Namespace) -> int:
    print(f"serving {_registry(open_bot(args)).rollback()}")
    return 0


def prune_cmd(args: argparse.Namespace) -> int:
    folder = open_bot(args)
    removed = _registry(folder).prune(folder.settings.train.keep_versions)
    print(f"removed {len(removed)} versions" + (f": {', '.join(removed)}" if removed else ""))
    return 0


def diff_cmd(args: argparse.Namespace) -> int:
    from bot.retraining import compare_versions

    folder = open_bot(args)
    c, counts = compare_versions(folder, args.a, args.b)
    sa, sb = c["serving"], c["candidate"]
    print(f"{args.a} -> {args.b} on {c['examples']} gate examples ({counts['golden']} golden, "
          f"{counts['fresh_reviewed']} newly reviewed, {counts['out_of_scope']} out of scope)")
    print(f"  accuracy {_pct(sa['accuracy'])} -> {_pct(sb['accuracy'])}; out-of-scope refused "
          f"{_pct(sa['oos_refused'])} -> {_pct(sb['oos_refused'])}")
    print(("  would promote: " if c["promote"] else "  would refuse: ") + "; ".join(c["reasons"]))
    moved = [r for r in c.get("per_intent", []) if r["serving"] != r["candidate"]]
    for r in sorted(moved, key=lambda r: r["candidate"] - r["serving"]):
        print(f"  {r['intent']:<28} recall {_pct(r['serving'])} -> {_pct(r['candidate'])}  ({r['support']} examples)")
    print(f"{len(c['changed'])} changed predictions:")
    for row in c["changed"][: args.limit]:
        print(f"  [{row['label']}] {row['text']!r}: {row['serving']} -> {row['candidate']}")
    gate_record = _registry(folder).record(args.b, "gate")
    if gate_record is not None:
        print(f"gate when {args.b} was trained: {'promoted' if gate_record['promote'] else 'refused'} "
              f"({'; '.join(gate_record['reasons'])}); {len(gate_record.get('shadow', []))} shadow changes")
    return 0


def golden_cmd(args: argparse.Namespace) -> int:
    from bot.retraining import carve_golden

    moved, size = carve_golden(open_bot(args))
    print(f"golden set: {moved} examples moved to split test (never trained on); {size} in all")
    return 0


def settle_cmd(args: argparse.Namespace) -> int:
    from bot.retraining import settle_held

    print(settle_held(open_bot(args), args.run, args.action == "approve", actor()))
    return 0


def runs_cmd(args: argparse.Namespace) -> int:
    from bot.database import open_bot_database
    from training.runs import RunLog

    runs = RunLog(open_bot_database(open_bot(args).settings)).runs()
    for r in runs:
        took = f"{r['ended'] - r['started']:.0f} s" if r["ended"] else "-"
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["started"]))
        print(f"#{r['id']} {when} {r['trigger']:<8} {r['outcome']:<9} {took:>7}  {r['candidate'] or ''}  "
              f"{r['counts'].get('new', '')} new  {r['detail'][:120]}")
    if not runs:
        print("no retrain runs yet")
    return 0


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"
