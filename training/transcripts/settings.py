"""Settings of transcript import: reading formats, finding requests, labelling and clustering them.

The two thresholds are measured, not guessed: `benchmarks/bench_labelling.py` reproduces both numbers
(see BENCHMARKS.md, "Transcript import").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.settings import refuse_invalid, setting

GENERIC_FIELDS = ("conversation_id", "role", "text", "time", "label")


@dataclass(frozen=True)
class TranscriptSettings:
    """How past conversations become training examples."""

    columns: tuple[str, ...] = setting(
        (), "Generic format: column names as field=column, e.g. [\"conversation_id=ticket\", \"role=speaker\"]; "
        "fields: conversation_id, role, text, time, label. Unmapped fields are looked up under common names.")
    customer_roles: tuple[str, ...] = setting(
        ("customer", "user", "client", "visitor", "end-user", "enduser", "end_user", "requester", "contact",
         "lead", "human", "guest", "inbound", "true"),
        "Role values (case-insensitive) that mark the customer's turns in generic transcripts.")
    agent_roles: tuple[str, ...] = setting(
        ("agent", "admin", "assistant", "support", "staff", "operator", "representative", "rep", "bot",
         "advisor", "outbound", "false", "team"),
        "Role values (case-insensitive) that mark the support agent's (or bot's) turns in generic transcripts.")
    ignored_roles: tuple[str, ...] = setting(
        ("system", "action", "note", "event", "internal"),
        "Role values whose turns are skipped (system events, internal notes). Any other role is an error.")
    explicit_labels: bool = setting(True, "Use labels found in the data (a label column, ABCD subflows, tags).")
    abcd_label: str = setting("subflow", "ABCD dialogs: which scenario field is the label: subflow, flow or flow/subflow (labels \"flow.subflow\").")
    tag_label_prefix: str = setting(
        "", "Zendesk/Intercom: a tag starting with this prefix labels the ticket (\"intent_refund\" -> refund); "
        "empty = tags are not labels.")
    min_words: int = setting(2, "Customer messages with fewer words (after cleaning) are not requests.")
    max_request_chars: int = setting(
        400, "Longer requests are cut at a sentence end before this many characters (intent models read ~64 tokens).")
    max_replies: int = setting(3, "Agent turns after a request that are compared with the answer templates.")
    new_request_after: str = setting(
        r"anything else|something else|else (?:can|could|may) i|other questions?|help (?:you )?with anything",
        "Regular expression: an agent turn matching it invites a new request, so the customer's next "
        "substantive message becomes a training text too.")
    match_threshold: float = setting(
        0.67, "Template matching: similarity between an agent reply and an answer template (mean of whole-text and "
        "sentence-coverage cosines) from which the request is labelled with that intent. Calibrated by "
        "benchmarks/bench_labelling.py for 95 % precision: on held-out replies it labelled 95 of 96 canned, edited or "
        "paraphrased answers correctly and none of 98 other replies, and 27 of 27 canned replies in the demo store's "
        "transcripts with no false label.")
    cluster_distance: float = setting(
        0.0, "Clustering: average-linkage cosine distance at which unlabelled requests are grouped; 0 = chosen per run "
        "as the cut (0.30-0.75) with the best silhouette. Measured in benchmarks/bench_labelling.py: on BANKING77 the "
        "silhouette picks 0.40, the cut with the best adjusted Rand index; on the demo store's long leftover "
        "requests it picks a looser cut that still groups them by topic, where 0.40 groups nothing.")
    min_cluster_size: int = setting(3, "Smallest group of unlabelled requests proposed as a new intent.")
    cluster_max: int = setting(5000, "Most unlabelled requests clustered at once (newest first); the rest wait for the next run.")

    def __post_init__(self) -> None:
        for item in self.columns:
            field, sep, column = item.partition("=")
            if not sep or field.strip() not in GENERIC_FIELDS or not column.strip():
                raise ValueError(f"transcripts.columns: {item!r} must be field=column with field one of {GENERIC_FIELDS}")
        try:
            re.compile(self.new_request_after)
        except re.error as e:
            raise ValueError(f"transcripts.new_request_after is not a valid regular expression: {e}") from e
        checks = {
            "abcd_label": self.abcd_label in ("subflow", "flow", "flow/subflow"),
            "min_words": self.min_words >= 1,
            "max_request_chars": self.max_request_chars >= 20,
            "max_replies": self.max_replies >= 1,
            "match_threshold": 0 < self.match_threshold <= 1,
            "cluster_distance": 0 <= self.cluster_distance < 2,
            "min_cluster_size": self.min_cluster_size >= 2,
            "cluster_max": self.cluster_max >= 10,
        }
        refuse_invalid(self, "transcripts", checks)

    def column_map(self, extra: tuple[str, ...] = ()) -> dict[str, str]:
        """field -> column name from these settings and `extra` (e.g. --columns), the latter winning."""
        mapping = {}
        for item in (*self.columns, *extra):
            field, _, column = item.partition("=")
            if field.strip() not in GENERIC_FIELDS:
                raise ValueError(f"--columns {item!r}: field must be one of {GENERIC_FIELDS}")
            mapping[field.strip()] = column.strip()
        return mapping
