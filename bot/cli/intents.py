"""`run_bot.py intents`: review the intents proposed from unlabelled imported requests (propose, list, accept,
rename, merge, drop). Accepting a proposal labels its examples and appends the intent to the bot's intents.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Sequence

from bot.cli.common import add_bot_args, command, open_bot
from bot.folder.bot_folder import BotFolder, load_intents

INTENTS_EXAMPLES = """\
  python run_bot.py intents propose --bot mybot        cluster unlabelled examples into proposals
  python run_bot.py intents list --bot mybot
  python run_bot.py intents accept 3 --name refund_status --bot mybot
  python run_bot.py intents merge 3 7 --bot mybot      fold proposal 7 into 3
  python run_bot.py intents drop 5 --bot mybot"""



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


def render_intent(name: str, examples: Sequence[str], route: str = "knowledge", answer: str = "",
                  note: str = "", indent: str = "  ") -> str:
    """One intent as an intents.yaml block (strings JSON-quoted, which YAML reads as double-quoted)."""
    i2, i3 = indent * 2, indent * 3
    out = [f"{indent}{name}:"]
    for line in _wrap(note):
        out.append(f"{i2}# {line}")
    out.append(f"{i2}description: {json.dumps(name.replace('_', ' '), ensure_ascii=False)}")
    if answer:
        out.append(f"{i2}answer: {json.dumps(answer, ensure_ascii=False)}")
    if route != "template":
        out.append(f"{i2}route: {route}")
    out.append(f"{i2}examples:")
    out += [f"{i3}- {json.dumps(t, ensure_ascii=False)}" for t in examples]
    return "\n".join(out) + "\n"


def _wrap(text: str, width: int = 100) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def append_intent(file: Path, block_for_indent) -> None:
    """Insert an intent block at the end of the top-level `intents:` mapping; validated, then atomically replaced."""
    text = file.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(r"intents:\s*(#.*)?$", ln.rstrip("\n"))), None)
    if start is None:
        raise ValueError(f"{file}: no block-style 'intents:' mapping to append to")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"[^\s#]", lines[i])), len(lines))
    body = [ln for ln in lines[start + 1: end] if ln.strip() and not ln.lstrip().startswith("#")]
    indent = re.match(r"\s*", body[0]).group() if body else "  "
    before = "".join(lines[:end])
    if before and not before.endswith("\n"):
        before += "\n"
    new = before + "\n" + block_for_indent(indent) + ("\n" if end < len(lines) else "") + "".join(lines[end:])
    fd, tmp = tempfile.mkstemp(prefix=".intents-", suffix=".yaml", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new)
        load_intents(Path(tmp))
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- intents review ---------------------------------------------------------------------------------
def _stores(folder: BotFolder):
    from bot.database import open_bot_database
    from training.store import ExampleStore, ProposalStore

    db = open_bot_database(folder.settings)
    return db, ExampleStore(db), ProposalStore(db)


def propose(args: argparse.Namespace) -> int:
    from knowledge.embedder import SentenceEmbedder
    from training.clusters import propose as cluster_proposals

    folder = open_bot(args)
    db, store, proposals = _stores(folder)
    embedder = SentenceEmbedder(folder.settings.knowledge.embedder_model)
    ids = cluster_proposals(store, embedder, folder.settings.transcripts)
    print(f"{len(ids)} proposed intents from the unlabelled examples")
    _print(proposals.proposals())
    return 0


def list_proposals(args: argparse.Namespace) -> int:
    db, store, proposals = _stores(open_bot(args))
    open_ = proposals.proposals()
    if not open_:
        print("no open proposals (run `run_bot.py intents propose` after importing transcripts)")
    _print(open_)
    return 0


def _print(proposals) -> None:
    for p in proposals:
        print(f"#{p.id}  {p.name}  ({p.size} examples)")
        for text in p.examples:
            print(f"      - {text}")


def _intent_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w]*", name or ""):
        raise ValueError(f"intent name {name!r}: use letters, digits and '_' (e.g. refund_status)")
    return name


def accept(args: argparse.Namespace) -> int:
    from core.engine import writing

    folder = open_bot(args)
    db, store, proposals = _stores(folder)
    proposal = proposals.get(args.id)
    if proposal.status != "open":
        raise ValueError(f"proposal {proposal.id} is {proposal.status}, not open")
    name = _intent_name(args.name or proposal.name)
    with writing(db):
        labelled = proposals.label_members(proposal, name)
        proposals.update(proposal.id, status="accepted", intent=name, name=name)
        if name not in folder.intents:  # written last: an error above leaves intents.yaml untouched
            note = (f"TODO: accepted from proposal {proposal.id} ({proposal.size} imported requests). Answered from "
                    "the knowledge base until you write an `answer:` template and remove `route: knowledge`.")
            append_intent(folder.path / "intents.yaml",
                          lambda indent: render_intent(name, proposal.examples, note=note, indent=indent))
    where = "existing intent" if name in folder.intents else f"new intent in {folder.path / 'intents.yaml'}"
    print(f"accepted proposal {proposal.id} as {name} ({where}); labelled {labelled} examples")
    return 0


def rename(args: argparse.Namespace) -> int:
    from core.engine import writing

    db, store, proposals = _stores(open_bot(args))
    proposal = proposals.get(args.id)
    with writing(db):
        proposals.update(proposal.id, name=_intent_name(args.name))
    print(f"proposal {proposal.id}: {proposal.name} -> {args.name}")
    return 0


def merge(args: argparse.Namespace) -> int:
    from core.engine import writing

    if len(args.ids) < 2:
        raise ValueError("merge needs at least two proposal ids")
    db, store, proposals = _stores(open_bot(args))
    group = [proposals.get(i) for i in dict.fromkeys(args.ids)]
    closed = [p.id for p in group if p.status != "open"]
    if closed:
        raise ValueError(f"proposals {closed} are not open")
    target, others = group[0], group[1:]
    members = {m for p in group for m in p.members}
    examples = list(dict.fromkeys(t for p in group for t in p.examples))[:8]
    name = _intent_name(args.name or target.name)
    with writing(db):
        proposals.update(target.id, name=name, members=members, examples=examples)
        for p in others:
            proposals.update(p.id, status="merged", intent=f"#{target.id}")
    print(f"merged {', '.join('#' + str(p.id) for p in others)} into #{target.id} {name} ({len(members)} examples)")
    return 0


def drop(args: argparse.Namespace) -> int:
    from core.engine import writing

    db, store, proposals = _stores(open_bot(args))
    proposal = proposals.get(args.id)
    with writing(db):
        proposals.update(proposal.id, status="dropped")
    print(f"dropped proposal {proposal.id} ({proposal.name}); its {proposal.size} examples stay unlabelled")
    return 0
