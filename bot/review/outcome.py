"""What a review action changed: the caller reloads the router or syncs the knowledge base when it says so, and
shows the action ids to undo. Shared by the desk (bot.review.desk) and intent proposals (bot.review.proposals)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    action_ids: list[int] = field(default_factory=list)
    bulk_id: str | None = None
    files: list[str] = field(default_factory=list)  # changed, relative to the bot folder
    reload_router: bool = False
    sync_knowledge: bool = False
    examples_added: int = 0
    notes: list[str] = field(default_factory=list)
    groups: int = 0

    def merge(self, other: "Outcome") -> None:
        self.action_ids += other.action_ids
        self.files = sorted(set(self.files) | set(other.files))
        self.reload_router |= other.reload_router
        self.sync_knowledge |= other.sync_knowledge
        self.examples_added += other.examples_added
        self.notes += other.notes
        self.groups += other.groups
