"""Typo correction in front of the intent model and the knowledge search: "refnd status pls" is read as
"refund status pls".

A word of four letters or more that is neither a known word (the intent model's: its training examples, saved
with the version as `vocabulary.json`; the knowledge base's: its titles and passages) nor a whole word of the
tokenizer's vocabulary (so real words the bot never saw are left alone) is replaced by the most frequent known
word one edit away (a letter dropped, added, changed, or two swapped: what `training.noise` and customers do), or,
when none is, split into two known words ("whereis" -> "where is"). Emoji are dropped and runs of punctuation
kept to their first mark ("where is it???!!! 😡" -> "where is it?"), which neither the intent model nor the
search learns anything from. Nothing else changes, so plainly typed messages are read as before.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

VOCABULARY_FILE = "vocabulary.json"
MIN_LENGTH = 4  # shorter words have too many neighbours one edit away to guess from
LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORD = re.compile(r"[A-Za-z]+")
_EMOJI = re.compile(r"[\u2600-\u27bf\U0001f300-\U0001faff\ufe0f\u200d]+")  # pictographs, dingbats, their joiners
_PUNCTUATION_RUN = re.compile(r"([?!.,;:])[?!.,;:]+")


def tidy(text: str) -> str:
    """The text without emoji, each run of punctuation kept to its first mark, spaces collapsed."""
    return " ".join(_PUNCTUATION_RUN.sub(r"\1", _EMOJI.sub(" ", text)).split())


def vocabulary(texts: Iterable[str]) -> dict[str, int]:
    """Word counts of the training texts, lower-cased."""
    return dict(Counter(w.lower() for t in texts for w in _WORD.findall(t)))


class Speller:
    def __init__(self, counts: dict[str, int], known: Iterable[str] = ()):
        self.counts = counts
        self.known = frozenset(w for w in known if w.isalpha())  # the tokenizer's whole words

    @classmethod
    def load(cls, folder: Path, tokenizer) -> "Speller | None":
        """The speller of a saved version, or None when it was trained without a vocabulary file."""
        file = Path(folder) / VOCABULARY_FILE
        if not file.is_file():
            return None
        return cls(json.loads(file.read_text()), tokenizer.get_vocab())

    def __call__(self, text: str) -> str:
        return _WORD.sub(self._word, tidy(text))

    def _word(self, match: re.Match) -> str:
        word = match.group(0)
        low = word.lower()
        if len(low) < MIN_LENGTH or low in self.counts or low in self.known:
            return word
        near = [(self.counts[c], c) for c in _edits(low) if c in self.counts]
        if near:
            return max(near)[1]
        splits = [(min(self.counts[low[:i]], self.counts[low[i:]]), f"{low[:i]} {low[i:]}")
                  for i in range(2, len(low) - 1) if low[:i] in self.counts and low[i:] in self.counts]
        return max(splits)[1] if splits else word


def _edits(word: str) -> set[str]:
    """Every string one edit from `word` (Norvig's: deletes, transposes, replaces, inserts)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return ({a + b[1:] for a, b in splits if b}
            | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
            | {a + c + b[1:] for a, b in splits if b for c in LETTERS}
            | {a + c + b for a, b in splits for c in LETTERS})
