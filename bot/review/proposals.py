"""Intents proposed from unlabelled imported requests (`run_bot.py intents propose`): accept, rename, merge, drop.

The one implementation behind the command line (`run_bot.py intents`) and the review page: the same intent-name
rule, and every decision recorded as a review action (who, before, after) that `undo` takes back: the labels it
gave, the intent it appended to intents.yaml, the proposals as they were.
"""

from __future__ import annotations

from typing import Sequence

from bot.folder import intents_file
from bot.folder.bot_folder import BotFolder, load_intents
from bot.review.outcome import Outcome
from bot.review.store import ReviewStore
from training.store import ExampleStore, Proposal, ProposalStore

ACTIONS = ("accept_proposal", "rename_proposal", "merge_proposals", "drop_proposal")
MAX_EXAMPLES = 20  # of a proposal's representative texts written to intents.yaml with a new intent
MERGED_EXAMPLES = 8  # representative texts a merged proposal keeps


class Proposals:
    """One bot's proposals (its database and intents.yaml); methods are synchronous, like the desk's."""

    def __init__(self, db, folder: BotFolder):
        self.db = db
        self.store = ProposalStore(db)
        self.examples = ExampleStore(db)
        self.reviews = ReviewStore(db, folder.settings.review.audit_rate)
        self.settings = folder.settings.transcripts
        self.intents_path = folder.path / "intents.yaml"

    def open(self) -> list[Proposal]:
        return self.store.proposals("open")

    def propose(self, embedder) -> list[int]:
        """Cluster the unlabelled examples into proposals, replacing the open ones."""
        from training.clusters import propose

        return propose(self.examples, embedder, self.settings)

    def accept(self, proposal_id: int, name: str, actor: str) -> Outcome:
        """The proposal's still-unlabelled requests become examples of `name` (default: the suggested name), which
        is appended to intents.yaml, with a TODO note, when the bot has no such intent yet."""
        proposal = self._open(proposal_id)
        name = intents_file.checked_name(name.strip() or proposal.name)
        new = name not in load_intents(self.intents_path)[0]
        out = Outcome(files=["intents.yaml"] if new else [], reload_router=new)
        with self.db.transaction():
            labelled = self.store.label_members(proposal, name)
            self.store.update(proposal.id, status="accepted", intent=name, name=name)
            after = {"intent": name, "relabelled": [[i, None, ""] for i in labelled]}  # undo: unlabelled again
            if new:
                after["new_intent"] = name
            out.action_ids.append(self._record("accept_proposal", actor, [proposal], after))
            if new:  # written last: an error above leaves intents.yaml untouched
                note = (f"TODO: accepted from proposal {proposal.id} ({proposal.size} imported requests). Answered "
                        "from the knowledge base until you write an `answer:` template and remove `route: knowledge`.")
                intents_file.add_intent(self.intents_path, name, proposal.examples[:MAX_EXAMPLES], note=note)
        out.examples_added = len(labelled)
        where = "a new intent in intents.yaml" if new else "an existing intent"
        out.notes.append(f"accepted proposal {proposal.id} as {name} ({where}); labelled {len(labelled)} examples")
        return out

    def rename(self, proposal_id: int, name: str, actor: str) -> Outcome:
        proposal = self._open(proposal_id)
        name = intents_file.checked_name(name)
        with self.db.transaction():
            self.store.update(proposal.id, name=name)
            return Outcome(action_ids=[self._record("rename_proposal", actor, [proposal], {"name": name})],
                           notes=[f"proposal {proposal.id}: {proposal.name} -> {name}"])

    def merge(self, proposal_ids: Sequence[int], name: str, actor: str) -> Outcome:
        """Fold the other proposals into the first, which stays open for accepting (named `name`, default its own)."""
        proposal_ids = list(dict.fromkeys(proposal_ids))
        if len(proposal_ids) < 2:
            raise ValueError("merge needs at least two proposal ids")
        group = [self._open(i) for i in proposal_ids]
        target, others = group[0], group[1:]
        members = {m for p in group for m in p.members}
        examples = list(dict.fromkeys(t for p in group for t in p.examples))[:MERGED_EXAMPLES]
        name = intents_file.checked_name(name.strip() or target.name)
        with self.db.transaction():
            self.store.update(target.id, name=name, members=members, examples=examples)
            for p in others:
                self.store.update(p.id, status="merged", intent=f"#{target.id}")
            after = {"into": target.id, "name": name, "size": len(members)}
            return Outcome(action_ids=[self._record("merge_proposals", actor, group, after)],
                           notes=[f"merged {', '.join(f'#{p.id}' for p in others)} into #{target.id} {name} "
                                  f"({len(members)} examples)"])

    def drop(self, proposal_id: int, actor: str) -> Outcome:
        """Reject a proposal: its examples stay unlabelled and are not proposed again."""
        proposal = self._open(proposal_id)
        with self.db.transaction():
            self.store.update(proposal.id, status="dropped")
            return Outcome(action_ids=[self._record("drop_proposal", actor, [proposal], {"status": "dropped"})],
                           notes=[f"dropped proposal {proposal.id} ({proposal.name}); its {proposal.size} examples "
                                  "stay unlabelled"])

    def undo(self, action_id: int, actor: str) -> Outcome:
        """Take a decision on proposals back: its labels, the intent it appended, the proposals as they were."""
        a = self.reviews.action(action_id)
        if a is None or a["action"] not in ACTIONS:
            raise ValueError(f"review action {action_id} is not a decision on an intent proposal")
        if a["undone"]:
            raise ValueError(f"action {action_id} was already undone")
        before, after = a["before"], a["after"]
        if "proposals" not in before:
            raise ValueError(f"action {action_id} was recorded before decisions on proposals could be undone")
        out = Outcome()
        with self.db.transaction():
            for example_id, intent, method in after.get("relabelled", []):
                self.examples.relabel(example_id, intent, method)
            out.examples_added = -len(after.get("relabelled", []))
            for p in before["proposals"]:
                self.store.update(p["id"], name=p["name"], members=p["members"], examples=p["examples"],
                                  status=p["status"], intent=p["intent"])
            if after.get("new_intent"):
                intents_file.remove_intent(self.intents_path, after["new_intent"])
                out.files.append("intents.yaml")
                out.reload_router = True
            self.reviews.mark_undone(action_id, actor)
            out.action_ids.append(self.reviews.record(None, "undo", actor, {"action": action_id}, before))
        return out

    def _open(self, proposal_id: int) -> Proposal:
        proposal = self.store.get(proposal_id)
        if proposal.status != "open":
            raise ValueError(f"proposal {proposal.id} is {proposal.status}, not open")
        return proposal

    def _record(self, action: str, actor: str, proposals: list[Proposal], after: dict) -> int:
        """The review action, with the proposals as they were before it (what undo restores)."""
        before = {"proposals": [{"id": p.id, "name": p.name, "members": list(p.members), "examples": list(p.examples),
                                 "status": p.status, "intent": p.intent} for p in proposals]}
        return self.reviews.record(None, action, actor, before, after)
