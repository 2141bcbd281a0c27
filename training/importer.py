"""Importing past transcripts as training examples: the entry point `import_transcripts`.

read dialogs -> find and clean requests -> redact PII -> skip what is already stored -> label (explicit,
then template matching) -> cluster the unlabelled into proposed intents -> write everything in one
transaction. Requests are staged in a temporary SQLite file, so memory stays bounded on large exports;
a failure at any step leaves the store as it was. Idempotent: a request whose provenance (file,
conversation id, turn index) or normalised text is stored already is skipped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Collection, Iterator, Mapping

from core.sqlite import ScratchDatabase
from knowledge.embedder import Embedder
from training.clusters import Cluster, cluster_texts
from training.redact import RedactSettings, Redactor
from training.store import Example, ExampleStore, ProposalStore, normalise
from training.transcripts import Reading, detect_format, read_dialogs
from training.transcripts.dialogs import find_requests, label_name
from training.transcripts.settings import TranscriptSettings

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class ImportReport:
    """What an import found and did (or, in a dry run, would do)."""

    path: str
    format: str
    dry_run: bool = False
    conversations: int = 0
    requests: int = 0  # requests found in the file
    added: int = 0  # new examples stored (dry run: that would be stored)
    labelled: Counter = field(default_factory=Counter)  # label method -> new examples
    unlabelled: int = 0
    clustered: int = 0  # unlabelled examples placed in proposals
    proposals: list[tuple[str, int]] = field(default_factory=list)  # (suggested name, size)
    cluster_distance: float = 0.0  # the cut used (chosen per run when the setting is 0)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    redactions: Counter = field(default_factory=Counter)  # kind -> count
    new_labels: Counter = field(default_factory=Counter)  # explicit labels that are no intent of the bot
    warnings: list[str] = field(default_factory=list)
    samples: list[Example] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["samples"] = [{"text": e.text, "intent": e.intent, "label_method": e.label_method} for e in self.samples]
        return json.dumps(data, ensure_ascii=False)

    def summary(self) -> str:
        verb = "would add" if self.dry_run else "added"
        lines = [
            f"{'Dry run of' if self.dry_run else 'Imported'} {self.path} (format {self.format}, {self.seconds:.1f} s)",
            f"  conversations  {self.conversations}",
            f"  requests       {self.requests} found, {verb} {self.added} new examples",
            "  labelled       " + (", ".join(f"{m} {n}" for m, n in sorted(self.labelled.items())) or "none")
            + f"; unlabelled {self.unlabelled}",
            f"  clustered      {self.clustered} unlabelled into {len(self.proposals)} proposed intents"
            + (f" (cut at distance {self.cluster_distance:.2f})" if self.cluster_distance else "")
            + (" - see `run_bot.py intents list`" if self.proposals and not self.dry_run else ""),
            "  redacted       " + (", ".join(f"{k.lower()} {n}" for k, n in sorted(self.redactions.items())) or "nothing"),
            "  skipped        " + (", ".join(f"{r}: {n}" for r, n in self.skipped.most_common()) or "nothing"),
        ]
        if self.new_labels:
            names = ", ".join(f"{k} ({n})" for k, n in self.new_labels.most_common(8))
            lines.append(f"  new labels     {len(self.new_labels)} labels are no intent of this bot yet: {names}")
        lines += [f"  warning        {w}" for w in self.warnings]
        if self.samples:
            lines.append(f"  {'examples (first ten new)' if self.dry_run else 'first new examples'}:")
            lines += [f"    [{e.intent or '-'}{' via ' + e.label_method if e.label_method else ''}] {e.text}"
                      for e in self.samples]
        return "\n".join(lines)


def import_transcripts(
    path: str | Path, fmt: str, store: ExampleStore, *, settings: TranscriptSettings = TranscriptSettings(),
    privacy: RedactSettings = RedactSettings(), answers: Mapping[str, str] | None = None,
    intents: Collection[str] = (), embedder: Embedder | Callable[[], Embedder] | None = None,
    columns: tuple[str, ...] = (), root: Path | None = None, dry_run: bool = False, cluster: bool = True,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a transcript file (or Rasa project) into `store`; all or nothing.

    answers: intent -> answer template of the bot, for template matching; intents: the bot's intent names
    (explicit labels outside them are reported); embedder: an Embedder or a factory called only when
    needed; root: provenance paths are written relative to it (the bot folder) when the file is inside.
    """
    started = time.perf_counter()
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    report = ImportReport(path=str(path), format=fmt, dry_run=dry_run)
    lazy = _LazyEmbedder(embedder)
    with _Staging() as staged:
        reading = Reading(path, settings, columns, on_progress=(lambda d, t: progress("reading", d, t)) if progress else None)
        redactor = Redactor(privacy)
        _collect(reading, fmt, store, staged, redactor, _origin(path, root), report, set(intents))
        _label_by_templates(staged, answers or {}, lazy, settings, report, progress)
        pool, clusters = _cluster(staged, store, lazy, settings, report) if cluster else ([], [])
        _summarise(staged, report)
        if not dry_run:
            _write(store, staged, pool, clusters, _sha256(path), report)
    report.seconds = time.perf_counter() - started
    return report


def _collect(reading: Reading, fmt: str, store: ExampleStore, staged: "_Staging", redactor: Redactor,
             origin: str, report: ImportReport, intents: set[str]) -> None:
    """Read every dialog and stage its new requests, redacted, with explicit labels."""
    settings = reading.settings
    for dialog in read_dialogs(reading, fmt):
        report.conversations += 1
        requests, reason = find_requests(dialog, settings)
        if not requests:
            report.skipped[reason] += 1
            continue
        for request in requests:
            report.requests += 1
            text = redactor.redact(request.text)
            norm = normalise(text)
            provenance = f"{origin}#{dialog.id}:{request.turn}"
            if not norm:
                report.skipped["empty after redaction"] += 1
            elif store.has_provenance(provenance):
                report.skipped["already imported"] += 1
            elif store.has_text(text):
                report.skipped["duplicate of a stored example"] += 1
            else:
                label = label_name(request.label) if request.label and settings.explicit_labels else ""
                if label and intents and label not in intents:
                    report.new_labels[label] += 1
                if not staged.add(norm, text, provenance, label, "explicit" if label else "", request.replies):
                    report.skipped["duplicate within the file"] += 1
    report.redactions.update(redactor.counts)
    for source in reading.sources:
        if source.fallback_lines:
            report.warnings.append(
                f"{source.name}: {source.fallback_lines} lines were not UTF-8 and were read as Windows-1252 "
                f"(first at line {source.first_fallback_line})")


def _label_by_templates(staged: "_Staging", answers: Mapping[str, str], lazy: "_LazyEmbedder",
                        settings: TranscriptSettings, report: ImportReport, progress: Progress | None) -> None:
    """Label the still-unlabelled requests whose agent replies match an answer template."""
    answers = {k: v for k, v in answers.items() if v and v.strip()}
    pending = staged.unlabelled_with_replies()
    if not answers or not pending:
        return
    from training.labelling import TemplateMatcher

    matcher = TemplateMatcher(answers, lazy(), settings.match_threshold)
    matches = matcher.match([replies for _, replies in pending],
                            progress=(lambda d, t: progress("matching", d, t)) if progress else None)
    staged.set_labels((seq, m.intent, "template-match") for (seq, _), m in zip(pending, matches) if m.intent)


def _cluster(staged: "_Staging", store: ExampleStore, lazy: "_LazyEmbedder", settings: TranscriptSettings,
             report: ImportReport) -> tuple[list[tuple[str, object]], list[Cluster]]:
    """Cluster new and stored unlabelled requests (newest first, up to cluster_max) into proposals."""
    pool: list[tuple[str, object]] = [("new", (norm, text)) for norm, text in staged.unlabelled_texts(settings.cluster_max)]
    room = settings.cluster_max - len(pool)
    if room > 0:
        dropped = ProposalStore(store.db).dropped_members()
        pool += [("old", (e.id, e.text)) for e in store.unlabelled(exclude=dropped, limit=room)]
    if len(pool) < settings.min_cluster_size:
        return pool, []
    texts = [item[1][1] for item in pool]
    clusters, report.cluster_distance = cluster_texts(
        texts, lazy().encode(texts), settings.cluster_distance, settings.min_cluster_size)
    report.clustered = sum(len(c.members) for c in clusters)
    report.proposals = [(c.name, len(c.members)) for c in clusters]
    return pool, clusters


def _summarise(staged: "_Staging", report: ImportReport) -> None:
    for method, n in staged.method_counts().items():
        if method:
            report.labelled[method] = n
        else:
            report.unlabelled = n
    report.added = sum(report.labelled.values()) + report.unlabelled
    report.samples = [e for _, e in zip(range(10), staged.examples())]


def _write(store: ExampleStore, staged: "_Staging", pool: list, clusters: list[Cluster], sha256: str,
           report: ImportReport) -> None:
    """Everything in one transaction: examples, the proposals that replace the open ones, the import record."""
    proposals = ProposalStore(store.db)
    with store.db.transaction():
        result = store.insert(staged.examples())
        report.added = result.added
        if clusters:
            new_ids = store.ids_for(key[1] for kind, key in pool if kind == "new")
            ids = [new_ids.get(key[0]) if kind == "new" else key[0] for kind, key in pool]
            proposals.replace_open(
                (c.name, [ids[i] for i in c.members if ids[i] is not None], c.examples) for c in clusters)
        store.record_import(report.path, sha256, report.format, report.to_json())


def _origin(path: Path, root: Path | None) -> str:
    """The file as written in provenance: relative to the bot folder when inside it, else absolute."""
    resolved = path.resolve()
    if root is not None and resolved.is_relative_to(Path(root).resolve()):
        return str(resolved.relative_to(Path(root).resolve()))
    return str(resolved)


def _sha256(path: Path) -> str:
    if not path.is_file():
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _LazyEmbedder:
    """The sentence embedder, loaded on first use (imports without labelling or clustering never load it)."""

    def __init__(self, given: Embedder | Callable[[], Embedder] | None):
        self.given, self.loaded = given, None

    def __call__(self) -> Embedder:
        if self.loaded is None:
            if self.given is None:
                from knowledge.embedder import SentenceEmbedder

                self.loaded = SentenceEmbedder()
            elif hasattr(self.given, "encode"):
                self.loaded = self.given
            else:
                self.loaded = self.given()
        return self.loaded


class _Staging:
    """New requests of one import, in a temporary SQLite file (bounded memory); unique by normalised text."""

    def __init__(self) -> None:
        self.db = ScratchDatabase(prefix="supportbot-staging-")
        self.db.execute("create table req (seq integer primary key, norm text unique, text text, provenance text,"
                        " label text, method text, replies text)")
        self.db.execute("begin")  # one transaction for the whole import (the file goes with it)

    def add(self, norm: str, text: str, provenance: str, label: str, method: str, replies) -> bool:
        cur = self.db.execute("insert or ignore into req (norm, text, provenance, label, method, replies)"
                              " values (?, ?, ?, ?, ?, ?)", [norm, text, provenance, label, method, json.dumps(replies)])
        return cur.rowcount == 1

    def unlabelled_with_replies(self) -> list[tuple[int, list[str]]]:
        rows = self.db.execute("select seq, replies from req where label = '' and replies != '[]' order by seq")
        return [(seq, json.loads(replies)) for seq, replies in rows]

    def set_labels(self, labels) -> None:
        for seq, label, method in labels:
            self.db.execute("update req set label = ?, method = ? where seq = ?", [label, method, seq])

    def unlabelled_texts(self, limit: int) -> list[tuple[str, str]]:
        return self.db.execute("select norm, text from req where label = '' order by seq desc limit ?", [limit]).fetchall()

    def method_counts(self) -> dict[str, int]:
        return dict(self.db.execute("select method, count(*) from req group by method").fetchall())

    def examples(self) -> Iterator[Example]:
        for text, provenance, label, method in self.db.execute(
                "select text, provenance, label, method from req order by seq"):
            yield Example(text=text, intent=label or None, source="transcript", provenance=provenance,
                          label_method=method)

    def __enter__(self) -> "_Staging":
        return self

    def __exit__(self, *exc) -> None:
        self.db.close()
