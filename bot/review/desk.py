"""What a reviewer's decision does: examples for training, edits of the bot folder, the group's status, and
an undoable record of it all (who, when, before, after).

Actions: confirm, correct (an existing or a new intent), out_of_scope, answer (the intent's template in
intents.yaml), article (a Markdown file under knowledge/), ignore. Bulk actions apply one of confirm,
correct (existing intent), out_of_scope or ignore to every group of a filtered selection; they add examples
and never relabel an example someone else labelled. Methods are synchronous (the web app's database thread);
the caller reloads the router or syncs the knowledge base when the outcome says so. Decisions on intents proposed
from imported transcripts are bot.review.proposals' (the desk's `proposals`); `undo` takes those back too.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

from bot.folder import intents_file
from bot.folder.bot_folder import BotFolder, load_intents
from bot.review import proposals
from bot.review.memory import REVIEWED_SOURCES
from bot.review.outcome import Outcome
from bot.review.store import Filters, ReviewStore
from training.store import Example, ExampleStore

ACTIONS = ("confirm", "correct", "out_of_scope", "answer", "article", "ignore")
BULK_ACTIONS = ("confirm", "correct", "out_of_scope", "ignore")
MAX_TEXTS = 20  # distinct messages of a group turned into examples


class ReviewDesk:
    def __init__(self, db, folder: BotFolder):
        settings = folder.settings
        self.db, self.folder = db, folder
        self.reviews = ReviewStore(db, settings.review.audit_rate)
        self.examples = ExampleStore(db)
        self.intents_path = folder.path / "intents.yaml"
        self.oos_label = settings.train.oos_label
        self.proposals = proposals.Proposals(db, folder)

    # filing
    def sync(self, batches: int | None = None) -> dict[str, int]:
        """File new flags and audits (at most `batches` of them, see ReviewStore.sync); store the intents customers
        picked from clarifying questions as examples."""
        filed = self.reviews.sync(batches)
        if filed["more"]:
            return filed
        last = self.reviews.watermark("pick")
        picks = self.reviews.clarification_picks(last)
        with self.db.transaction():
            if picks:
                result = self.examples.insert(
                    Example(text=text, intent=intent, source="conversation", label_method="clarification",
                            provenance=f"turn:{asked}") for _, asked, text, intent in picks)
                filed["clarifications"] = result.added
                self.reviews.set_watermark("pick", picks[-1][0])
            else:
                self.reviews.set_watermark("pick", max(last, self.reviews.watermark("turn")))
        return filed

    def intents(self) -> list[str]:
        intents, _ = load_intents(self.intents_path)
        return sorted(intents)

    # one group
    def act(self, group_id: int, action: str, actor: str, *, intent: str = "", answer: str = "", title: str = "",
            body: str = "", bulk_id: str | None = None) -> Outcome:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        group = self.reviews.group(group_id)
        if group is None:
            raise LookupError(f"no review item {group_id}")
        before = {"status": group["status"], "decision": group["decision"], "decided_by": group["decided_by"]}
        after: dict[str, Any] = {}
        out = Outcome(bulk_id=bulk_id, groups=1)
        status, decision = "done", action
        with self.db.transaction():
            if action == "confirm":
                knowledge = group["route"] == "knowledge"  # the article was right: the base tunes on it
                named = bool(group["intent"]) and group["intent"] != self.oos_label
                if not (named or knowledge):
                    raise ValueError("the bot named no intent to confirm: correct it instead, or mark it out of scope")
                if named:
                    self._label(group, group["intent"], "review-confirmed", after, out, relabel=bulk_id is None)
                    after["intent"] = group["intent"]
                if knowledge:
                    after["knowledge"] = out.sync_knowledge = True
            elif action == "correct":
                name = intent.strip()
                known = self.intents()
                if name not in known:
                    if bulk_id is not None:
                        raise ValueError(f"no intent {name!r}: a bulk correction names an existing intent")
                    intents_file.checked_name(name)
                    texts = self._texts(group)
                    intents_file.add_intent(self.intents_path, name, texts, answer)
                    after["new_intent"] = name
                    out.files.append("intents.yaml")
                    out.reload_router = True
                self._label(group, name, "review-corrected", after, out, relabel=bulk_id is None)
                after["intent"] = name
                self.reviews.set_intent(group_id, name)
                before["intent"] = group["intent"]
            elif action == "out_of_scope":
                self._label(group, self.oos_label, "review-out-of-scope", after, out, relabel=bulk_id is None)
            elif action == "answer":
                name = intent.strip() or group["intent"] or ""
                if not answer.strip():
                    raise ValueError("write the answer first")
                spec = intents_file.intent_spec(self.intents_path, name) if name else None
                if spec is None:
                    raise ValueError(f"no intent {name!r} in intents.yaml: correct the intent first (a new one if need be)")
                intents_file.set_answer(self.intents_path, name, answer)
                before.update(intent_answer=spec["answer"] or None, route=spec["route"])
                after.update(intent=name, answer=answer.strip())
                out.files.append("intents.yaml")
                out.reload_router = True
            elif action == "article":
                rel, previous = self._write_article(title, body, group)
                before["article_text"] = previous
                after["article"] = rel
                out.files.append(rel)
                out.sync_knowledge = True
            elif action == "ignore":
                status, decision = "ignored", "ignored"
            self.reviews.set_status(group_id, status, decision, actor)
            after.update(status=status, decision=decision)
            out.action_ids.append(self.reviews.record(group_id, action, actor, before, after, bulk_id))
        return out

    def bulk(self, filters: Filters, action: str, actor: str, intent: str = "") -> Outcome:
        """One action on every group of the filtered selection (all pages); one bulk id to undo them together."""
        if action not in BULK_ACTIONS:
            raise ValueError(f"bulk action must be one of {BULK_ACTIONS}")
        bulk_id = secrets.token_hex(6)
        out = Outcome(bulk_id=bulk_id)
        for group_id in self.reviews.group_ids(filters):
            try:
                out.merge(self.act(group_id, action, actor, intent=intent, bulk_id=bulk_id))
            except ValueError as e:  # e.g. nothing to confirm: that group stays as it was
                out.notes.append(f"item {group_id}: {e}")
        return out

    # undo
    def undo(self, action_id: int, actor: str) -> Outcome:
        a = self.reviews.action(action_id)
        if a is None:
            raise LookupError(f"no review action {action_id}")
        if a["action"] in proposals.ACTIONS:
            return self.proposals.undo(action_id, actor)
        if a["undone"]:
            raise ValueError(f"action {action_id} was already undone")
        before, after = a["before"], a["after"]
        out = Outcome(groups=1)
        with self.db.transaction():
            self.examples.remove(after.get("examples", []))
            for example_id, old_intent, old_method in after.get("relabelled", []):
                self.examples.relabel(example_id, old_intent, old_method)
            out.examples_added = -len(after.get("examples", []))
            if "intent" in before and a["action"] == "correct":
                self.reviews.set_intent(a["group_id"], before["intent"])
            if after.get("new_intent"):
                intents_file.remove_intent(self.intents_path, after["new_intent"])
                out.files.append("intents.yaml")
                out.reload_router = True
            if a["action"] == "answer":
                spec = intents_file.intent_spec(self.intents_path, after["intent"])
                if spec is not None and spec["answer"] != after["answer"]:
                    raise ValueError(f"the answer of {after['intent']} changed since; edit it instead of undoing")
                intents_file.restore(self.intents_path, after["intent"], before.get("intent_answer"), before.get("route"))
                out.files.append("intents.yaml")
                out.reload_router = True
            if after.get("article"):
                path = self.folder.path / after["article"]
                if before.get("article_text") is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_text(before["article_text"], encoding="utf-8")
                out.files.append(after["article"])
                out.sync_knowledge = True
            out.sync_knowledge |= bool(after.get("knowledge"))  # a confirmed answer the base no longer tunes on
            if a["group_id"] is not None:
                self.reviews.set_status(a["group_id"], before["status"], before["decision"], before.get("decided_by"))
            self.reviews.mark_undone(action_id, actor)
            out.action_ids.append(self.reviews.record(a["group_id"], "undo", actor, {"action": action_id}, before))
        return out

    def undo_bulk(self, bulk_id: str, actor: str) -> Outcome:
        out = Outcome(bulk_id=bulk_id)
        for a in self.reviews.actions(bulk_id=bulk_id, limit=10 ** 9):
            if not a["undone"]:
                out.merge(self.undo(a["id"], actor))
        return out

    # training
    def unseen(self, trained_at: float | None) -> int:
        """Reviewed examples (review decisions, clarification picks) stored after the serving model was trained."""
        return self.examples.count_since(REVIEWED_SOURCES, trained_at or 0.0)

    def label_texts(self, texts_with_turns: list[tuple[str, int]], intent: str, method: str, actor: str,
                    new_intent: bool = False) -> Outcome:
        """Accepting a cluster: its messages become examples of an existing or a new intent (one undoable record)."""
        out = Outcome()
        after: dict[str, Any] = {"examples": [], "intent": intent}
        with self.db.transaction():
            if new_intent:
                intents_file.checked_name(intent)
                intents_file.add_intent(self.intents_path, intent, [t for t, _ in texts_with_turns][:MAX_TEXTS])
                after["new_intent"] = intent
                out.files.append("intents.yaml")
                out.reload_router = True
            for text, turn_id in texts_with_turns:
                if self.examples.find(text) is None:
                    self.examples.insert([Example(text=text, intent=intent, source="review", label_method=method,
                                                  provenance=f"turn:{turn_id}")])
                    after["examples"].append(self.examples.find(text).id)
            out.examples_added = len(after["examples"])
            out.action_ids.append(self.reviews.record(None, "accept_cluster", actor, {}, after))
        return out

    # helpers
    def _texts(self, group: dict[str, Any]) -> list[str]:
        members = self.reviews.members(group["id"], limit=200)
        return list(dict.fromkeys(m["message"] for m in members))[:MAX_TEXTS] or [group["text"]]

    def _label(self, group: dict[str, Any], intent: str, method: str, after: dict, out: Outcome, relabel: bool) -> None:
        after.setdefault("examples", [])
        after.setdefault("relabelled", [])
        members = self.reviews.members(group["id"], limit=200)
        seen: set[str] = set()
        for m in members:
            text = m["message"]
            if text in seen or len(seen) >= MAX_TEXTS or text.startswith("/"):
                continue
            seen.add(text)
            existing = self.examples.find(text)
            if existing is None:
                self.examples.insert([Example(text=text, intent=intent, source="review", label_method=method,
                                              provenance=f"turn:{m['turn_id']}")])
                after["examples"].append(self.examples.find(text).id)
                out.examples_added += 1
            elif existing.intent != intent:
                if relabel and existing.source in REVIEWED_SOURCES:
                    self.examples.relabel(existing.id, intent, method)
                    after["relabelled"].append([existing.id, existing.intent, existing.label_method])
                else:
                    out.notes.append(f"{text!r} is already an example of {existing.intent} ({existing.source}); left as it is")

    def _write_article(self, title: str, body: str, group: dict[str, Any]) -> tuple[str, str | None]:
        title, body = title.strip(), body.strip()
        if not title or not body:
            raise ValueError("an article needs a title and a text")
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or f"review-{group['id']}"
        folder = self.folder.knowledge_dir
        folder.mkdir(exist_ok=True)
        path = folder / f"{slug}.md"
        previous = path.read_text(encoding="utf-8") if path.is_file() else None
        path.write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
        return str(path.relative_to(self.folder.path)), previous


def article_path(folder: BotFolder, rel: str) -> Path:
    return folder.path / rel
