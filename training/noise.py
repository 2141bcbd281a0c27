"""Character-level typos as customers make them: swapped, dropped and doubled letters, a neighbouring key
hit instead, apostrophes left out. Used to measure robustness (a noised copy of a test set, fixed seed) and
to train for it (`train.typo_augment`: noised copies of training examples beside the originals)."""

from __future__ import annotations

import random

KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_POS = {c: (r, i) for r, row in enumerate(KEYBOARD) for i, c in enumerate(row)}


def neighbours(c: str) -> str:
    """Keys next to `c` on a QWERTY keyboard (same row and the rows above and below)."""
    if c.lower() not in _POS:
        return ""
    r, i = _POS[c.lower()]
    near = [KEYBOARD[rr][j] for rr in (r - 1, r, r + 1) if 0 <= rr < 3
            for j in (i - 1, i, i + 1) if 0 <= j < len(KEYBOARD[rr]) and (rr, j) != (r, i)]
    return "".join(near)


def typo(text: str, rng: random.Random, rate: float = 0.05) -> str:
    """`text` with about `rate` typos per letter (at least one in a message with letters); apostrophes always go."""
    chars = list(text.replace("'", "").replace("\u2019", ""))
    letters = [i for i, c in enumerate(chars) if c.isalpha()]
    if not letters:
        return "".join(chars)
    count = max(1, round(rate * len(letters)))
    for i in sorted(rng.sample(letters, min(count, len(letters))), reverse=True):
        kind = rng.choice(("swap", "drop", "double", "key"))
        if kind == "swap" and i + 1 < len(chars) and chars[i + 1].isalpha():
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif kind == "drop":
            del chars[i]
        elif kind == "double":
            chars.insert(i, chars[i])
        elif neighbours(chars[i]):
            chars[i] = rng.choice(neighbours(chars[i]))
    return "".join(chars)


def noised(texts: list[str], seed: int = 0, rate: float = 0.05) -> list[str]:
    """A typo-noised copy of `texts`, the same for the same seed."""
    rng = random.Random(seed)
    return [typo(t, rng, rate) for t in texts]


def augment(examples: list, share: float, seed: int, rate: float = 0.05) -> list:
    """Typo-noised copies of `share` of `examples` (each example at most once; share > 1 adds rounds)."""
    from dataclasses import replace

    rng = random.Random(seed)
    extra = []
    whole, part = int(share), share - int(share)
    for round_ in range(whole + (1 if part > 0 else 0)):
        chosen = examples if round_ < whole else rng.sample(examples, round(part * len(examples)))
        for e in chosen:
            text = typo(e.text, rng, rate)
            if text != e.text:
                extra.append(replace(e, text=text, id=None, label_method="typo-augmented"))
    return extra
