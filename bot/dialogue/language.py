"""Which language a message is in, so that one in a language the bot does not speak gets a reply it can read
(`server.other_language_message`, with a person offered) instead of the English fallback.

The detector is py3langid (langid.py's model, offline, a few MB, about 0.1 ms a message), limited to the
common languages below so that its probabilities mean something on short messages. It is asked only about
messages no intent answers confidently: a typo-ridden English message the model understands never reaches it.
"""

from __future__ import annotations

import functools
import logging
from typing import Protocol

log = logging.getLogger("supportbot.language")

CANDIDATES = ("en", "es", "fr", "de", "it", "pt", "nl", "pl", "sv", "da", "no", "fi", "tr", "ru", "uk", "cs",
              "ro", "hu", "el", "ar", "he", "zh", "ja", "ko", "hi", "id", "vi", "th")


class Detector(Protocol):
    def detect(self, text: str) -> tuple[str, float]: ...


class LangidDetector:
    """py3langid with normalised probabilities over `CANDIDATES` (plus the bot's own languages)."""

    def __init__(self, languages: tuple[str, ...] = ()):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.identifier.set_languages(sorted(set(CANDIDATES) | set(languages)))

    def detect(self, text: str) -> tuple[str, float]:
        language, probability = self.identifier.classify(text)
        return str(language), float(probability)


@functools.lru_cache(maxsize=4)
def detector(languages: tuple[str, ...]) -> Detector | None:
    """The detector for a bot speaking `languages`; None (no check) when it has none or py3langid is missing.
    One per set of languages for the process: its model takes ~80 MB, and a router is built at every model
    swap (a new detector per swap grew the server by ~44 MB a swap; it is read-only once built)."""
    if not languages:
        return None
    try:
        return LangidDetector(languages)
    except ImportError:
        log.warning("py3langid is not installed: messages in other languages get the usual fallback")
        return None
