"""Out-of-scope scores: how far a message is from what the model was trained on (higher = more in scope).

Each score is computed from what one forward pass already gives, the pooled L2-normalised features and
the logits:

- `max_prob`: the calibrated top probability (the score before distance-aware ones).
- `energy`: T * logsumexp(logits / T), the logits' free energy.
- `mahalanobis`: minus the smallest Mahalanobis distance to a class mean, with one covariance shared by
  all classes (shrunk towards a scaled identity so that small bots, with fewer examples than
  dimensions, still get an invertible matrix), divided by the dimension.
- `knn`: mean cosine similarity to the `KNN` nearest training examples.
- `nearest`: cosine similarity to the nearest training example (what a small bot's fallback threshold uses,
  `training.calibrate.fallback`: with a few examples an intent, the `KNN` nearest mix several intents).

A combination such as `mahalanobis+max_prob` averages its parts after standardising each on the in-scope
validation messages (mean 0, spread 1), so no part dominates by its units.

Every score also has a *held-out* form for a validation message of intent k: the score it would get if
intent k had never been trained (k's mean, k's training examples, k's logit removed). That simulates
out-of-scope messages when a bot has none, the way `calibrate.leave_intent_out_confidence` does for the
top probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from training.settings import SCORE_PARTS as PARTS

KNN = 10  # neighbours averaged by the knn score
# Share of the scaled identity in the shared covariance. Chosen on BANKING77-OOS's validation split (in-domain
# out-of-scope AUROC of mahalanobis+max_prob: 0.895 at 0.1, 0.899 at 0.5, 0.903 at 0.9): the intents' own
# spread is estimated from few examples per dimension, so mostly-isotropic distances generalise better.
SHRINKAGE = 0.9
STATS_FILE = "oos.safetensors"


def parts_of(name: str) -> list[str]:
    """`"mahalanobis+max_prob"` -> its parts; raises ValueError for an unknown one."""
    parts = [p.strip() for p in name.split("+") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if not parts or bad:
        raise ValueError(f"unknown out-of-scope score {name!r}: use one of {', '.join(PARTS)} or a '+' combination")
    return parts


@dataclass
class FeatureStats:
    """The training data as the scores see it: class means, shared precision matrix, the example bank."""

    means: torch.Tensor  # (classes, dim)
    precision: torch.Tensor  # (dim, dim), inverse of the shrunk shared covariance
    bank: torch.Tensor  # (examples, dim) training features
    bank_labels: torch.Tensor  # (examples,)

    def __post_init__(self) -> None:
        # what every Mahalanobis distance reuses, in float64 (float32 loses digits in the expanded form)
        self._precision64 = self.precision.double()
        self._mp = self.means.double() @ self._precision64  # (classes, dim)
        self._mpm = (self._mp * self.means.double()).sum(-1)  # (classes,)

    def mahalanobis(self, features: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance of every row to every class mean: (rows, classes)."""
        x = features.double()
        d = ((x @ self._precision64) * x).sum(-1, keepdim=True) - 2 * x @ self._mp.T + self._mpm.unsqueeze(0)
        return d.clamp(min=0).float()

    @classmethod
    def fit(cls, features: torch.Tensor, targets: torch.Tensor, classes: int) -> "FeatureStats":
        features = features.double()
        dim = features.shape[1]
        means = torch.zeros(classes, dim, dtype=torch.double)
        for k in range(classes):
            rows = features[targets == k]
            if len(rows):
                means[k] = rows.mean(0)
        centred = features - means[targets]
        cov = centred.T @ centred / max(1, len(features) - 1)
        scale = float(cov.diagonal().mean().clamp(min=1e-6))
        shrunk = (1 - SHRINKAGE) * cov + SHRINKAGE * scale * torch.eye(dim, dtype=torch.double)
        precision = torch.linalg.inv(shrunk)
        return cls(means.float().contiguous(), precision.float().contiguous(), features.float().contiguous(),
                   targets.clone().contiguous())

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {f"{prefix}means": self.means, f"{prefix}precision": self.precision,
                f"{prefix}bank": self.bank, f"{prefix}bank_labels": self.bank_labels}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], prefix: str = "") -> "FeatureStats":
        return cls(t[f"{prefix}means"], t[f"{prefix}precision"], t[f"{prefix}bank"], t[f"{prefix}bank_labels"])


def raw_score(part: str, features: torch.Tensor, logits: torch.Tensor, temperature: float, stats: FeatureStats,
              exclude: torch.Tensor | None = None) -> torch.Tensor:
    """One part's score per row; with `exclude` (a class per row), as if that class had never been trained."""
    if part == "max_prob":
        probs = (logits / temperature).softmax(-1)
        if exclude is None:
            return probs.max(-1).values
        rest = probs.clone()
        rest[torch.arange(len(exclude)), exclude] = 0.0
        return rest.max(-1).values / rest.sum(-1).clamp(min=1e-9)
    if part == "energy":
        scaled = logits / temperature
        if exclude is not None:
            scaled = scaled.clone()
            scaled[torch.arange(len(exclude)), exclude] = float("-inf")
        return temperature * torch.logsumexp(scaled, -1)
    if part == "mahalanobis":
        dist = stats.mahalanobis(features)
        if exclude is not None:
            dist[torch.arange(len(exclude)), exclude] = float("inf")
        return -dist.min(-1).values / features.shape[1]
    if part in ("knn", "nearest"):
        sims = features.float() @ stats.bank.T  # both L2-normalised: cosine
        if exclude is not None:
            sims = sims.masked_fill(stats.bank_labels.unsqueeze(0) == exclude.unsqueeze(1), float("-inf"))
        k = 1 if part == "nearest" else max(1, min(KNN, sims.shape[1]))
        top = sims.topk(k, dim=-1).values
        top = torch.where(torch.isinf(top), torch.full_like(top, -1.0), top)
        return top.mean(-1)
    raise ValueError(f"unknown score part {part!r}")


@dataclass
class OOSScore:
    """A named score with the standardisation of its parts (used when there is more than one)."""

    name: str
    loc: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)

    @property
    def parts(self) -> list[str]:
        return parts_of(self.name)

    @property
    def needs_features(self) -> bool:
        return any(p in ("mahalanobis", "knn", "nearest") for p in self.parts)

    @classmethod
    def fit(cls, name: str, features, logits, temperature: float, stats: FeatureStats | None) -> "OOSScore":
        """Standardise each part on in-scope validation messages (only combinations need it)."""
        score = cls(name)
        if len(score.parts) > 1:
            for part in score.parts:
                values = raw_score(part, features, logits, temperature, stats)
                score.loc[part] = float(values.mean())
                score.scale[part] = float(values.std().clamp(min=1e-6)) if len(values) > 1 else 1.0
        return score

    def __call__(self, features, logits, temperature: float, stats: FeatureStats | None,
                 exclude: torch.Tensor | None = None) -> torch.Tensor:
        parts = self.parts
        if len(parts) == 1:
            return raw_score(parts[0], features, logits, temperature, stats, exclude)
        total = sum((raw_score(p, features, logits, temperature, stats, exclude) - self.loc.get(p, 0.0)) / self.scale.get(p, 1.0)
                    for p in parts)
        return total / len(parts)

    def to_dict(self) -> dict:
        return {"name": self.name, "loc": self.loc, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "OOSScore":
        return cls(d["name"], dict(d.get("loc", {})), dict(d.get("scale", {})))


def save_tensors(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(Path(folder) / STATS_FILE))


def load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(folder) / STATS_FILE
    return load_file(str(path)) if path.is_file() else {}


def auroc(in_scores, oos_scores) -> float | None:
    """Probability that an in-scope message scores higher than an out-of-scope one (ties count half)."""
    a = torch.as_tensor(in_scores, dtype=torch.double).flatten()
    b = torch.as_tensor(oos_scores, dtype=torch.double).flatten()
    if len(a) == 0 or len(b) == 0:
        return None
    both = torch.cat([a, b])
    order = both.argsort()
    ranks = torch.empty_like(both)
    ranks[order] = torch.arange(1, len(both) + 1, dtype=torch.double)
    # average ranks of ties
    values, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    if len(values) < len(both):
        sums = torch.zeros(len(values), dtype=torch.double).index_add_(0, inverse, ranks)
        ranks = (sums / counts)[inverse]
    rank_sum = ranks[: len(a)].sum().item()
    return (rank_sum - len(a) * (len(a) + 1) / 2) / (len(a) * len(b))
