"""Answer templates with several variants (one chosen at random per turn), quick replies, entity synonyms."""

from __future__ import annotations

import random

import pytest

from bot.folder.bot_folder import load_intents
from bot.dialogue.router import Conversation, Router
from bot.dialogue.templates import EntityExtractor, fill
from training.classifier import Prediction

INTENTS = """
entities:
  card:
    values: [credit, debit]
    synonyms: {credit card: credit, "visa": credit}
intents:
  greet:
    answer:
      - "Hi!"
      - "Hello there!"
    quick_replies:
      - {label: "great", value: "/mood_great"}
      - "help"
    examples: [hi]
  balance:
    answer: "Your {card} balance is fine."
    examples: [my balance]
"""


@pytest.fixture
def intents(tmp_path):
    file = tmp_path / "intents.yaml"
    file.write_text(INTENTS)
    return load_intents(file)


def test_variants_are_kept_and_chosen_at_random(intents):
    greet = intents[0]["greet"]
    assert greet.answers == ("Hi!", "Hello there!") and greet.answer == "Hi!"
    seen = {fill(greet, {}, random.Random(seed)).answer for seed in range(20)}
    assert seen == {"Hi!", "Hello there!"}
    assert intents[0]["balance"].answers == ("Your {card} balance is fine.",)


def test_synonyms_find_the_listed_value(intents):
    extractor = EntityExtractor(intents[1])
    assert extractor.extract("what about my Visa") == {"card": "credit"}
    assert extractor.extract("my credit card balance") == {"card": "credit"}
    assert extractor.extract("debit please") == {"card": "debit"}


def test_a_variant_with_an_unknown_variable_or_a_synonym_of_no_value_is_refused(tmp_path):
    file = tmp_path / "intents.yaml"
    file.write_text("intents:\n  a:\n    answer: [ok, 'hi {who}']\n    examples: [x]\n")
    with pytest.raises(ValueError, match="intents.yaml:3: intent a: answer uses {who}"):
        load_intents(file)
    file.write_text("entities:\n  c:\n    values: [a]\n    synonyms: {b: z}\nintents: {}\n")
    with pytest.raises(ValueError, match="synonyms must name listed values"):
        load_intents(file)


class Fixed:
    version, threshold, margin = "v", 0.5, 0.1

    def predict(self, texts, k=3):
        return [Prediction("greet", 0.99, [("greet", 0.99)], False, False) for _ in texts]


async def test_the_router_sends_the_intents_quick_replies(intents, folder):
    model = Fixed()

    async def classify(text):
        return model.predict([text])[0]

    router = Router(intents[0], intents[1], model, classify, None, folder.settings)
    reply = await router.respond("hi", Conversation("c"))
    assert reply.answer in ("Hi!", "Hello there!")
    assert [(q.label, q.value) for q in reply.quick_replies] == [("great", "/mood_great"), ("help", "help")]
