"""Drift: is this week's traffic still what the serving model was trained on?

Per ISO week (from the analytics rollups): the share of turns below the answer threshold (the model knew no
intent well enough), the share the model called out of scope, and the Jensen–Shannon distance between the mix of
intents the model recognised and the mix of intents in its training examples (base 2: 0 = the same mix, 1 = no
intent in common), with the intents whose share moved most. `analytics.drift_alert` is the distance of the last
7 days at or above which the server reports drift (`/readyz`, `/metrics`, the analytics page) and, when the
retraining schedule is on, starts a gated retrain early (once per alert week).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from bot.analytics.figures import Analytics, period, week_of

MOVED = 5  # intents listed as the ones that moved most


@dataclass(frozen=True)
class Drift:
    period: str  # an ISO week, or "last 7 days"
    turns: int
    below_threshold: int
    out_of_scope: int
    distance: float | None  # Jensen–Shannon distance; None without a training mix or recognised turns
    moved: tuple[tuple[str, float, float], ...] = ()  # intent, share now, share in training
    recognised: int = 0  # turns with an intent (not out of scope): the live mix's size

    @property
    def below_threshold_share(self) -> float | None:  # DEFINITIONS["below_threshold"]
        return self.below_threshold / self.turns if self.turns else None

    @property
    def out_of_scope_share(self) -> float | None:
        return self.out_of_scope / self.turns if self.turns else None

    def to_json(self) -> dict:
        return {"period": self.period, "turns": self.turns, "below_threshold_share": self.below_threshold_share,
                "out_of_scope_share": self.out_of_scope_share, "jensen_shannon": self.distance,
                "recognised_turns": self.recognised,
                "moved": [{"intent": i, "now": a, "training": b} for i, a, b in self.moved]}


def jensen_shannon(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen–Shannon distance (square root of the divergence, base 2) of two count or share mappings."""
    sp, sq = sum(p.values()), sum(q.values())
    if not sp or not sq:
        raise ValueError("both distributions need mass")
    divergence = 0.0
    for k in set(p) | set(q):
        a, b = p.get(k, 0) / sp, q.get(k, 0) / sq
        m = (a + b) / 2
        if a:
            divergence += 0.5 * a * math.log2(a / m)
        if b:
            divergence += 0.5 * b * math.log2(b / m)
    return math.sqrt(max(0.0, divergence))


def serving_path(models_path: Path, version: str | None) -> Path | None:
    """The folder of `version` (default the registry's current one), or None (no such version: a test double)."""
    from training.registry import ModelRegistry

    registry = ModelRegistry(models_path)
    try:
        return registry.path(version) if version else registry.current_path()
    except FileNotFoundError:
        return None


def training_mix(db, version_path: Path | None, oos_label: str) -> Counter[str]:
    """Examples per intent the model version at `version_path` was trained on (its data.json's example ids)."""
    if version_path is None or not (Path(version_path) / "data.json").is_file():
        return Counter()
    ids = set(json.loads((Path(version_path) / "data.json").read_text()).get("example_ids", []))
    if not ids:
        return Counter()
    from training.store import ExampleStore

    return Counter(e.intent for e in ExampleStore(db).examples(labelled=True)
                   if e.id in ids and e.intent and e.intent != oos_label)


def measure(period: str, rows: list[tuple[str, str, int, int]], mix: Mapping[str, int], oos_label: str) -> Drift:
    live: Counter[str] = Counter()
    turns = below = oos = 0
    for _, intent, n, low in rows:
        turns += n
        below += low
        if intent == oos_label:
            oos += n
        elif intent:
            live[intent] += n
    distance, moved = None, ()
    if mix and live:
        distance = round(jensen_shannon(live, mix), 4)
        total_live, total_mix = sum(live.values()), sum(mix.values())
        shift = sorted(((i, live.get(i, 0) / total_live, mix.get(i, 0) / total_mix) for i in set(live) | set(mix)),
                       key=lambda t: -abs(t[1] - t[2]))
        moved = tuple((i, round(a, 4), round(b, 4)) for i, a, b in shift[:MOVED])
    return Drift(period, turns, below, oos, distance, moved, sum(live.values()))


def weekly(analytics: Analytics, since: str, until: str, mix: Mapping[str, int], oos_label: str) -> list[Drift]:
    by_week: dict[str, list] = defaultdict(list)
    for row in analytics.intent_mix(since, until):
        by_week[week_of(row[0])].append(row)
    return [measure(week, rows, mix, oos_label) for week, rows in sorted(by_week.items())]


@dataclass
class DriftStatus:
    """What the server last measured (the last 7 days) and whether it is at the alert level."""

    alert_level: float
    min_turns: int = 1
    latest: Drift | None = None
    checked: float | None = None
    retrain_started_for: str = ""  # the ISO week an early retrain was started for
    extra: dict = field(default_factory=dict)

    @property
    def alert(self) -> bool:
        return bool(self.alert_level and self.latest and self.latest.distance is not None
                    and self.latest.recognised >= self.min_turns and self.latest.distance >= self.alert_level)

    def to_json(self) -> dict:
        return {"alert": self.alert, "alert_level": self.alert_level, "checked": self.checked,
                "last_7_days": self.latest.to_json() if self.latest else None,
                "retrain_started_for": self.retrain_started_for or None}


def last_week(analytics: Analytics, mix: Mapping[str, int], oos_label: str, now: float | None = None) -> Drift:
    since, until = period(7, now)
    return measure("last 7 days", analytics.intent_mix(since, until), mix, oos_label)
