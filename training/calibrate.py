"""Calibrated confidence: temperature scaling, the answer threshold and the ambiguity margin.

The threshold must hold up on out-of-scope traffic, which in-scope validation data never shows.
Without real out-of-scope examples we simulate them by leaving intents out: for a validation
example of intent k, the model's distribution with k removed is what it would say about a
message from an intent it was never taught. Real out-of-scope examples replace the simulation.

The answer decision uses an out-of-scope score (`training.oos`, `train.oos_score`); the threshold on the
calibrated top probability is fitted too, as the floor the top two must clear together to be worth a
clarifying question. The margin is fitted to what a question buys: a wrong top intent whose right one is
among the choices offered, against a right one asked back needlessly, within `max_clarify_share`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch.nn import functional as F

from training.oos import FeatureStats, OOSScore


# A needless question (the top intent was right) costs the customer one click; a wrong answer costs a
# wrong reply and a rephrase. Counting the question as half a wrong answer makes asking pay once one in
# three questions fixes a wrong top intent.
QUESTION_COST = 0.5
# A threshold is estimated only from enough validation messages: with n answered all right, the one-sided
# lower confidence bound (at CONFIDENCE) on precision is (1 - CONFIDENCE) ** (1 / n), below the target until
# n reaches `validation_needed` (29 for 90 %, 59 for 95 %). With fewer, a fitted threshold is noise (4 messages
# all right fitted a temperature of 0.12 and a threshold that answered everything): the fallback serves.
CONFIDENCE = 0.95
# The fallback answers only messages whose cosine similarity to the nearest training example (the fine-tuned
# model's pooled features) is at least this: the lowest threshold at which small bots built from BANKING77's
# training split (5-10 intents, 5-10 examples each, seeds 1-2) reach 90 % precision on average with 40 %
# out-of-scope traffic (half other banking intents, half CLINC150 off-topic); benchmarks/bench_small_bots.py.
FALLBACK_SCORE = "nearest"
FALLBACK_THRESHOLD = 0.55


@dataclass(frozen=True)
class Calibration:
    temperature: float
    threshold: float  # answer when the calibrated top probability is at least this
    margin: float  # ask which one when the top two probabilities are closer than this
    target_precision: float
    oos_evidence: str  # "held-out intents (simulated)", "out-of-scope examples", or why it is the fallback
    expected_precision: float | None  # precision of answered messages at the threshold, on validation (None:
    expected_coverage: float | None  # share of in-scope validation messages answered  (too few to estimate)
    score: dict = field(default_factory=lambda: OOSScore("max_prob").to_dict())  # training.oos.OOSScore
    score_threshold: float | None = None  # answer when the out-of-scope score is at least this
    oos_share: float | None = None  # the share of out-of-scope traffic the threshold was fitted for
    clarify: dict = field(default_factory=dict)  # expected share, right intent among choices, direct accuracy

    def to_dict(self) -> dict:
        return asdict(self)


def expectation(c: dict) -> str:
    """A calibration's (as a dict) expected coverage and precision in words, or that it cannot know them."""
    if c["expected_precision"] is None:
        return f"coverage and precision cannot be estimated (evidence: {c['oos_evidence']})"
    return (f"expected coverage {100 * c['expected_coverage']:.1f} % at precision {100 * c['expected_precision']:.1f} %"
            f" with {100 * (c.get('oos_share') or 0):.0f} % out-of-scope traffic (evidence: {c['oos_evidence']})")


def validation_needed(target_precision: float) -> int:
    """In-scope validation messages needed to estimate a threshold for `target_precision` (see CONFIDENCE)."""
    return math.ceil(math.log(1 - CONFIDENCE) / math.log(target_precision))


def fallback(validation: int, target_precision: float, oos_share: float) -> Calibration:
    """The calibration of a bot with too few validation messages to estimate one: no temperature (1.0), an
    answer only for messages close to one of the training examples (FALLBACK_THRESHOLD), no clarifying
    questions, and no expected precision or coverage, which it cannot know."""
    why = f"too few validation messages to estimate ({validation}, needs {validation_needed(target_precision)})"
    return Calibration(1.0, 0.5, 0.0, target_precision, why, None, None, OOSScore(FALLBACK_SCORE).to_dict(),
                       FALLBACK_THRESHOLD, oos_share)


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature minimising validation NLL; 1.0 without validation data, and when every validation message
    is right: then the NLL keeps falling as the temperature goes to 0, and the minimum is only the clamp's
    bound (0.05), which makes every probability 100 % and the threshold meaningless."""
    if len(targets) == 0 or bool((logits.argmax(-1) == targets).all()):
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def _without_target(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each row's distribution with its true intent removed and the rest renormalised."""
    rest = probs.clone()
    rest[torch.arange(len(targets)), targets] = 0.0
    return rest / rest.sum(-1, keepdim=True).clamp(min=1e-9)


def leave_intent_out_confidence(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Top probability after removing each example's true intent and renormalising."""
    return _without_target(probs, targets).max(-1).values


def choose_threshold(
    in_conf: torch.Tensor, in_correct: torch.Tensor, oos_conf: torch.Tensor, oos_share: float, target: float,
    candidates: list[float] | None = None,
) -> tuple[float, float, float]:
    """Lowest threshold whose answered precision reaches `target` → (threshold, precision, coverage).

    Precision counts answered out-of-scope messages as errors, weighted so that they make up
    `oos_share` of the traffic. If no threshold reaches the target, the most precise one is used.
    """
    n_in, n_oos = len(in_conf), len(oos_conf)
    w_in = (1 - oos_share) / max(n_in, 1)
    w_oos = oos_share / n_oos if n_oos else 0.0
    candidates = torch.linspace(0.0, 1.0, 201).tolist() if candidates is None else candidates
    best = (candidates[-1], 0.0, 0.0)
    best_precision = -1.0
    for t in candidates:
        answered = in_conf >= t
        right = (answered & in_correct).sum().item() * w_in
        wrong = (answered & ~in_correct).sum().item() * w_in + (oos_conf >= t).sum().item() * w_oos
        if right + wrong == 0:
            continue
        precision = right / (right + wrong)
        coverage = answered.float().mean().item()
        if precision >= target:
            return t, precision, coverage
        if precision > best_precision:
            best, best_precision = (t, precision, coverage), precision
    return best


def score_candidates(*scores: torch.Tensor, n: int = 400) -> list[float]:
    """Ascending thresholds for any score: `n` quantiles of all the scores given."""
    values = torch.cat([x.flatten().float() for x in scores if len(x)])
    qs = torch.quantile(values, torch.linspace(0.0, 1.0, n)) if len(values) else torch.zeros(1)
    return sorted({round(float(q), 6) for q in qs} | {float(values.max()) + 1e-6 if len(values) else 1.0})


def clarify_choices(probs: torch.Tensor, margin: float, most: int) -> torch.Tensor:
    """Per row, which intents a clarifying question offers: the top two and any others as close to the
    second as the margin, at most `most` (as the router does). Boolean (rows, intents)."""
    values, indices = probs.topk(min(most, probs.shape[1]), dim=-1)
    offered = torch.zeros_like(values, dtype=torch.bool)
    offered[:, :2] = True
    if values.shape[1] > 2:
        offered[:, 2:] = (values[:, 1:2] - values[:, 2:]) < margin
    mask = torch.zeros_like(probs, dtype=torch.bool)
    mask.scatter_(1, indices, offered)
    return mask


def clarify_figures(probs: torch.Tensor, targets: torch.Tensor, answered: torch.Tensor, asked: torch.Tensor,
                    margin: float, most: int) -> dict:
    """What the questions asked would do on labelled in-scope messages: their share, how often the right
    intent is among the choices, and the accuracy of the messages answered directly."""
    n = len(targets)
    right_top = probs.argmax(-1) == targets
    among = clarify_choices(probs, margin, most)[torch.arange(n), targets]
    direct = answered & ~asked
    return {
        "share": asked.float().mean().item() if n else 0.0,
        "right_among_choices": among[asked].float().mean().item() if asked.any() else None,
        "top_wrong_right_among_choices": (among & ~right_top)[asked].float().mean().item() if asked.any() else None,
        "direct_accuracy": right_top[direct].float().mean().item() if direct.any() else None,
    }


def choose_margin(probs: torch.Tensor, targets: torch.Tensor, answered: torch.Tensor, pair_floor: float,
                  max_share: float, most: int = 3) -> float:
    """The gap between the top two below which asking back pays, with at most `max_share` of the in-scope
    messages asked; 0 when no margin pays. A question goes to a message the score answers whose top two are
    closer than the margin and together clear `pair_floor` (one of them is meant): a message the score
    refuses is never offered intents (bot.dialogue.router). It gains 1 where it turns a wrong answer into the
    right pick (the right intent is among the choices) and costs `QUESTION_COST` where the top intent was
    right. An out-of-scope message the score answers is wrong whether it is asked or answered, so it does
    not weigh in.
    """
    n = len(targets)
    if n == 0 or probs.shape[1] < 2 or max_share <= 0:
        return 0.0
    top2 = probs.topk(2, dim=-1).values
    gap, pair = top2[:, 0] - top2[:, 1], (top2.sum(-1) >= pair_floor) & answered
    right_top = probs.argmax(-1) == targets
    best, best_gain = 0.0, 0.0
    for m in torch.linspace(0.01, 0.5, 50).tolist():
        asked = pair & (gap < m)
        if asked.sum().item() > max_share * n:
            break  # wider margins only ask more
        among = clarify_choices(probs, m, most)[torch.arange(n), targets]
        gain = float((asked & among & ~right_top).sum()) - QUESTION_COST * float((asked & right_top).sum())
        if gain > best_gain:
            best, best_gain = m, gain
    return round(best, 3)


def calibrate(
    logits: torch.Tensor, targets: torch.Tensor, target_precision: float, oos_share: float,
    oos_logits: torch.Tensor | None = None, *, score: str = "max_prob", features: torch.Tensor | None = None,
    stats: FeatureStats | None = None, oos_features: torch.Tensor | None = None,
    oos_stats: FeatureStats | None = None, max_clarify_share: float = 0.08, choices: int = 3,
) -> Calibration:
    """Fit temperature, thresholds and margin on validation outputs (+ real out-of-scope ones if any).

    `features`/`stats`: the validation messages' pooled features and the training data's statistics of the
    same model; `oos_features`/`oos_stats` those of the real out-of-scope examples (by the serving model).
    """
    if len(targets) < validation_needed(target_precision):
        return fallback(len(targets), target_precision, oos_share)
    temperature = fit_temperature(logits, targets)
    probs = (logits / temperature).softmax(-1)
    conf, pred = probs.max(-1)
    correct = pred == targets
    has_oos = oos_logits is not None and len(oos_logits) > 0
    if has_oos:
        oos_conf = (oos_logits / temperature).softmax(-1).max(-1).values
        evidence = "out-of-scope examples"
    else:
        oos_conf = leave_intent_out_confidence(probs, targets)
        evidence = "held-out intents (simulated)"
    threshold, precision, coverage = choose_threshold(conf, correct, oos_conf, oos_share, target_precision)

    scorer = OOSScore.fit(score, features, logits, temperature, stats)
    if scorer.name == "max_prob":
        score_threshold, oos_score = threshold, oos_conf
        answered = conf >= threshold
    else:
        in_score = scorer(features, logits, temperature, stats)
        oos_score = (scorer(oos_features, oos_logits, temperature, oos_stats) if has_oos
                     else scorer(features, logits, temperature, stats, exclude=targets))
        score_threshold, precision, coverage = choose_threshold(
            in_score, correct, oos_score, oos_share, target_precision, score_candidates(in_score, oos_score))
        answered = in_score >= score_threshold
    margin = choose_margin(probs, targets, answered, threshold, max_clarify_share, choices)
    top2 = probs.topk(min(2, probs.shape[1]), dim=-1).values
    asked = answered & (top2.sum(-1) >= threshold) & (top2[:, 0] - top2[:, -1] < margin)
    clarify = clarify_figures(probs, targets, answered, asked, margin, choices)
    clarify["max_share"] = max_clarify_share
    return Calibration(temperature, round(threshold, 3), margin, target_precision, evidence, precision, coverage,
                       scorer.to_dict(), float(score_threshold), oos_share, clarify)
