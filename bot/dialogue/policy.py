"""The decision policy's rules on what to offer: which intents a clarifying question may offer, and when an
article answers instead of asking.

The router (bot.dialogue.router) applies them in this order, and the logged `Decision.reason` names the rule:
1. conversation basics are answered as such, never from the knowledge base (bot.dialogue.basics);
2. a message close enough to one a reviewer settled gets that outcome instead of the model's (bot.review.memory,
   with its own fitted threshold; the match is logged in `Decision.memory`);
3. a message the out-of-scope score refuses is never offered intents: the knowledge base answers it when it is
   confident, else articles are suggested, or a person offered;
4. top intents too close to call are asked between (`ask_between`), unless the knowledge base answers the
   message confidently: a confident article beats a question between intents (`article_beats_asking`);
5. a confident intent answers by its route (template, knowledge base, person);
6. anything else goes to the knowledge base: its answer, suggested articles, or a person.
Every threshold compared with is the serving model's or the base's own (fitted), logged with the decision.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping

from training.classifier import Prediction
from training.evaluate import offered


def ask_between(p: Prediction, intents: Mapping[str, Any], pair_floor: float, margin: float, most: int,
                floor: float, oos_label: str, smalltalk: Collection[str]) -> list[tuple[str, float]]:
    """The intents a clarifying question offers (training.evaluate.offered, the rule evaluations apply too):
    only the bot's own intents, never out of scope or small talk (never worth a question)."""
    return offered(p, pair_floor, margin, floor, most,
                   lambda name: name in intents and name != oos_label and name not in smalltalk)


def article_beats_asking(answer: Any) -> bool:
    """A knowledge answer confident at the base's own fitted threshold settles a message whose intents are too
    close to call: the customer gets the answer instead of a question."""
    return answer is not None and bool(answer.confident) and bool(answer.text)
