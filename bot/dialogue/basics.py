"""Conversation basics every bot handles, in English: greeting, thanks, goodbye, affirm, deny, "are you a bot?"
and frustration. They are recognised by patterns, not by the intent model, so a bot needs no examples of them and
its model is not asked about a "thanks, bye!" it was never taught. A greeting that opens a request and thanks or a
goodbye that closes one ("hi, where is my order", "where is my order? thanks") are taken off, and the request is
routed as if sent alone.

An intent of the same name in intents.yaml (or a usual alias: `INTENT_NAMES`) answers instead of the built-in reply; `server.conversation_basics =
false` switches them off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

# name -> (pattern of the whole phrase, the built-in reply)
BASICS: dict[str, tuple[str, str]] = {
    "greet": (r"(?:hi+|hello+|hey+|hiya|howdy|good (?:morning|afternoon|evening)|greetings)"
              r"(?: there| all| again| everyone| team)?",
              "Hello! How can I help?"),
    "thanks": (r"(?:many )?thanks?(?: you)?(?: (?:so|very) much| a lot)?|thank you(?: (?:so|very) much)?|thx|ty|"
               r"cheers|much appreciated", "You're welcome!"),
    "goodbye": (r"(?:good)?bye(?: bye)?|see (?:you|ya)(?: later)?|have a (?:good|nice|great) (?:day|one|evening)",
                "Goodbye, have a nice day!"),
    "affirm": (r"(?:yes|yeah|yep|yup|sure|ok(?:ay)?)(?: please)?|correct|that'?s right", "Great! What else can I help with?"),
    "deny": (r"no|nope|nah|not really", "OK. What can I help you with?"),
    "bot_challenge": (r"are you (?:a )?(?:bot|robot|machine|human|real(?: person)?)|am i (?:talking|chatting) "
                      r"(?:to|with) (?:a )?(?:bot|robot|machine|human|real person)|is this a (?:bot|robot|real person)",
                      "I'm a virtual assistant. Ask for a person whenever you like and I'll hand you over."),
    "frustration": (r"(?:this is |you(?:'re| are) )?(?:useless|ridiculous|not helpful|not helping)|stupid bot|"
                    r"this (?:bot )?(?:sucks|is terrible)", "I'm sorry I couldn't help. Shall I hand you over to a person?"),
}
# names an intent answering a basic may have in intents.yaml (a migrated Rasa bot's are greet, thankyou, goodbye...)
INTENT_NAMES = {"greet": ("greet", "greeting", "hello"), "thanks": ("thanks", "thankyou", "thank_you", "thank"),
                "goodbye": ("goodbye", "bye"), "affirm": ("affirm",), "deny": ("deny",),
                "bot_challenge": ("bot_challenge",), "frustration": ("frustration",)}
MOST_CHARS = 60  # a basic phrase is short: longer starts are not tried
OPENING = ("greet",)  # may open a request
CLOSING = ("thanks", "goodbye")  # may close one
_EDGE = r"[\s,.!?;:)(\-\u2600-\u27bf\U0001f300-\U0001faff]*"  # punctuation and emoji around a phrase
_WHOLE = {name: re.compile(rf"^{_EDGE}(?:{pattern}){_EDGE}$", re.IGNORECASE) for name, (pattern, _) in BASICS.items()}
_START = {name: re.compile(rf"^{_EDGE}(?:{BASICS[name][0]})[\s,.!?;:-]+", re.IGNORECASE)
          for name in OPENING}
_END = {name: re.compile(rf"[\s,.!?;:-]+(?:{BASICS[name][0]}){_EDGE}$", re.IGNORECASE) for name in CLOSING}


@dataclass(frozen=True)
class Basics:
    """What a message holds of the basics: their names in order, and the request left (empty when none)."""

    names: tuple[str, ...]
    request: str


def split(text: str) -> Basics:
    """The basics of `text`: the whole message ("thanks, bye!" is two), or an opening greeting and closing thanks
    or goodbye around a request."""
    names: list[str] = []
    rest = text.strip()
    while rest:  # whole phrases, one after another ("thanks, bye!")
        found = next(((name, m) for name in BASICS for m in [_longest_prefix(name, rest)] if m), None)
        if found is None:
            break
        names.append(found[0])
        rest = re.sub(r"^(?:and|&)\s+", "", rest[found[1]:].strip(), flags=re.IGNORECASE)
    if not rest:
        return Basics(tuple(names), "")
    names, rest = [], text.strip()
    for name, pattern in _START.items():
        m = pattern.match(rest)
        if m and m.end() < len(rest):
            names.append(name)
            rest = rest[m.end():]
    closing: list[str] = []
    while True:  # "..., thanks, bye"
        found = next(((name, m) for name, pattern in _END.items() for m in [pattern.search(rest)] if m and m.start()),
                     None)
        if found is None:
            break
        closing.insert(0, found[0])
        rest = rest[:found[1].start()]
    return Basics(tuple(names + closing), rest.strip())


def _longest_prefix(name: str, text: str) -> int:
    """Length of the longest start of `text` that is this basic phrase alone (with its punctuation), else 0."""
    for end in range(min(len(text), MOST_CHARS), 0, -1):
        if (end == len(text) or not text[end - 1].isalnum() or not text[end].isalnum()) and _WHOLE[name].match(text[:end]):
            return end
    return 0


def reply(name: str) -> str:
    return BASICS[name][1]


def own_intent(name: str, intents: Mapping[str, Any]) -> Any | None:
    """The bot's own intent answering this basic (by its name or a usual alias), if it has one with an answer."""
    return next((intents[n] for n in INTENT_NAMES[name] if n in intents and intents[n].answers), None)
