"""Router decisions on a fixed-probability model: every route, slots across turns, handoff after failures."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bot.dialogue.router import HANDOFF_VALUE, Conversation, Router
from runtime_doubles import FakeAnswer, FixedClassifier, ScriptedKnowledge


def make_router(folder, model=None, kb=None, remember=None, **server):
    model = model or FixedClassifier()
    kb = kb if kb is not None else ScriptedKnowledge()
    settings = folder.settings
    if server:
        settings = dataclasses.replace(settings, server=dataclasses.replace(settings.server, **server))

    async def classify(text):
        return model.predict([text])[0]

    async def search(text):
        return kb.answer(text)

    return Router(folder.intents, folder.entities, model, classify, search, settings, remember=remember), kb


async def test_confident_intent_with_entity_gets_template_answer(folder):
    router, kb = make_router(folder)
    reply = await router.respond("Where is my order AB12345?", Conversation("c"))
    d = reply.decision
    assert (d.route, d.intent, reply.answer) == ("template", "track_order", "Order AB12345 is on its way.")
    assert d.confidence == pytest.approx(0.93) and d.model_version == "v1" and d.flags == ()
    assert kb.queries == []


async def test_small_talk_never_reaches_the_knowledge_base(folder):
    router, kb = make_router(folder)
    reply = await router.respond("hello!", Conversation("c"))
    assert (reply.decision.route, reply.answer) == ("smalltalk", "Hello! How can I help?")
    assert kb.queries == []


async def test_close_top_two_ask_which_with_quick_replies_that_resolve_directly(folder):
    router, _ = make_router(folder)
    convo = Conversation("c")
    reply = await router.respond("cancel or track it", convo)
    assert reply.decision.route == "clarify" and "clarification" in reply.decision.flags
    assert [q.label for q in reply.quick_replies] == ["Cancel an order", "Track an order"]
    chosen = await router.respond(reply.quick_replies[1].value, convo)
    assert (chosen.decision.route, chosen.decision.intent) == ("template", "track_order")
    assert chosen.answer == "What is your order number?"


async def test_unknown_intent_goes_to_the_knowledge_base_with_sources(folder):
    router, kb = make_router(folder)
    reply = await router.respond("how long does shipping take", Conversation("c"))
    d = reply.decision
    assert d.route == "knowledge" and reply.answer == "Shipping takes 2-4 days."
    assert [(s.title, s.url) for s in d.sources] == [("Shipping", "https://shop.example/shipping")]
    assert d.intent is None and "low_confidence" in d.flags and d.kb_score == 0.8
    # every signal's threshold is logged with the decision
    assert d.thresholds == {"oos_score": 0.5, "margin": 0.1, "pair_floor": 0.5, "kb_relevance": 0.5}
    template = (await router.respond("Where is my order AB12345?", Conversation("d"))).decision
    assert template.thresholds == {"oos_score": 0.5, "margin": 0.1, "pair_floor": 0.5}  # no article was consulted
    assert kb.queries == ["how long does shipping take"]


async def test_intent_routed_to_knowledge(folder):
    router, kb = make_router(folder)
    reply = await router.respond("does the jacket come in red", Conversation("c"))
    assert (reply.decision.route, reply.decision.intent) == ("knowledge", "product_question")
    assert reply.answer == "The jacket comes in red and blue." and "low_confidence" not in reply.decision.flags


async def test_knowledge_intent_answers_itself_when_the_articles_do_not(folder):
    router, kb = make_router(folder)
    reply = await router.respond("when are you open on sundays", Conversation("c"))
    assert (reply.decision.route, reply.answer, reply.decision.kb_score) == ("template", "We are open 9 to 5.", 0.1)
    assert kb.queries == ["when are you open on sundays"]


async def test_nothing_good_falls_back_offering_a_person(folder):
    router, _ = make_router(folder)
    convo = Conversation("c")
    reply = await router.respond("blorp quux", convo)
    assert reply.decision.route == "fallback" and reply.decision.flags == ("low_confidence", "fallback")
    assert [(q.label, q.value) for q in reply.quick_replies] == [("Talk to a person", HANDOFF_VALUE)]
    assert convo.failures == 1


async def test_fallback_links_articles_worth_a_look(folder):
    near = FakeAnswer("Returns are free.", "Returns", "https://shop.example/returns", 0.6, False,
                      [FakeAnswer("", "Returns", "https://shop.example/returns", 0.58),
                       FakeAnswer("", "Refunds", "https://shop.example/refunds", 0.55), FakeAnswer("", "Jobs", "", 0.2)])
    kb = ScriptedKnowledge()
    kb.ARTICLES = {**kb.ARTICLES, "send it back": near}
    router, _ = make_router(folder, kb=kb)
    reply = await router.respond("can I send it back", Conversation("c"))
    d = reply.decision
    assert d.route == "fallback" and reply.answer == folder.settings.server.suggest_message
    assert [(s.title, s.url) for s in d.sources] == [("Returns", "https://shop.example/returns"),
                                                      ("Refunds", "https://shop.example/refunds")]
    assert [q.value for q in reply.quick_replies] == [HANDOFF_VALUE]
    assert (await router.respond("blorp", Conversation("d"))).decision.sources == ()  # scored 0.1: nothing to link


async def test_a_message_the_out_of_scope_score_refuses_is_never_offered_intents(folder):
    router, kb = make_router(folder)  # 0.30 + 0.28 >= threshold 0.5, each alone below it: refused, yet close
    reply = await router.respond("that order thing", Conversation("c"))
    assert reply.decision.route == "fallback" and "low_confidence" in reply.decision.flags
    assert not [q for q in reply.quick_replies if q.value.startswith("/") and q.value != HANDOFF_VALUE]
    assert kb.queries == ["that order thing"]  # articles may still answer or be suggested


async def test_a_confident_article_beats_a_question_between_intents_too_close_to_call(folder):
    """Intents too close to call are asked between only when no article answers the message confidently."""
    model = FixedClassifier(table={"cancel or track": {"cancel_order": 0.5, "track_order": 0.44}})
    router, kb = make_router(folder, model=model)
    reply = await router.respond("cancel or track the shipping", Conversation("c"))
    d = reply.decision
    assert (d.route, reply.answer, d.kb_score) == ("knowledge", "Shipping takes 2-4 days.", 0.8)
    assert "an article beats a question" in d.reason and d.thresholds["kb_relevance"] == 0.5
    asked = await router.respond("cancel or track it", Conversation("d"))  # no article answers it: asked
    assert asked.decision.route == "clarify" and kb.queries[-1] == "cancel or track it"


async def test_no_intent_below_the_floor_is_offered(folder):
    table = {"x": {"track_order": 0.3, "cancel_order": 0.25, "send_receipt": 0.05}}  # the third within the margin
    model = FixedClassifier(threshold=0.3, margin=0.5, table=table)
    floored, _ = make_router(folder, model=model)
    labels = [q.label for q in (await floored.respond("x", Conversation("c"))).quick_replies]
    assert labels == ["Track an order", "Cancel an order"]
    unfloored, _ = make_router(folder, model=model, clarify_floor=0.0)
    assert len((await unfloored.respond("x", Conversation("c"))).quick_replies) == 3


@pytest.mark.parametrize("probabilities", [
    {"greet": 0.41, "track_order": 0.38},  # small talk is never worth a question
    {"track_order": 0.26, "cancel_order": 0.23},  # together still below the threshold
    {"track_order": 0.40, "out_of_scope": 0.38},  # not an intent of this bot
])
async def test_no_clarifying_question(folder, probabilities):
    router, _ = make_router(folder, model=FixedClassifier(table={"x": probabilities}))
    reply = await router.respond("x", Conversation("c"))
    assert reply.decision.route == "fallback"


async def test_thresholds_come_from_the_model_not_the_code(folder):
    strict, _ = make_router(folder, model=FixedClassifier(threshold=0.95))
    reply = await strict.respond("Where is my order AB12345?", Conversation("c"))
    assert reply.decision.route == "fallback" and "low_confidence" in reply.decision.flags


async def test_slot_prompt_then_fill_across_two_turns(folder):
    router, _ = make_router(folder)
    convo = Conversation("c")
    first = await router.respond("where is my parcel?", convo)
    assert first.answer == "What is your order number?" and first.decision.slot == "order_id"
    assert convo.pending == {"intent": "track_order", "variable": "order_id"}
    second = await router.respond("it's ab12345", convo)
    assert (second.decision.route, second.answer) == ("template", "Order ab12345 is on its way.")
    assert convo.pending is None and convo.slots["order_id"] == "ab12345"
    # Remembered: the next intent needing it does not ask again.
    third = await router.respond("please cancel it", convo)
    assert third.answer == "I have cancelled order ab12345."


async def test_free_text_variable_takes_the_reply(folder):
    router, _ = make_router(folder)
    convo = Conversation("c")
    assert (await router.respond("call me something", convo)).answer == "What should I call you?"
    assert (await router.respond("Robin", convo)).answer == "Nice to meet you, Robin."


async def test_entity_prompt_is_asked_once_then_the_message_is_routed_anew(folder):
    router, _ = make_router(folder)
    convo = Conversation("c")
    await router.respond("where is my order", convo)
    reply = await router.respond("how long does shipping take", convo)
    assert reply.decision.route == "knowledge" and convo.pending is None


async def test_list_entities_use_the_canonical_value(folder):
    router, _ = make_router(folder)
    assert router.extractor.extract("a DARK BLUE one") == {"color": "dark blue"}


async def test_handoff_after_n_failures_then_bot_stays_quiet(folder):
    router, kb = make_router(folder, handoff_after_failures=2)
    convo = Conversation("c")
    assert (await router.respond("blorp", convo)).decision.route == "fallback"
    reply = await router.respond("quux", convo)
    assert reply.handoff and reply.decision.reason == "2 failed turns in a row" and "handoff" in reply.decision.flags
    assert convo.handoff
    queries = len(kb.queries)
    waiting = await router.respond("hello?", convo)
    assert waiting.handoff and waiting.answer == "A person will reply here soon." and waiting.decision.flags == ()
    assert len(kb.queries) == queries


async def test_success_resets_the_failure_count(folder):
    router, _ = make_router(folder, handoff_after_failures=2)
    convo = Conversation("c")
    await router.respond("blorp", convo)
    await router.respond("hello", convo)
    assert convo.failures == 0
    assert (await router.respond("quux", convo)).decision.route == "fallback"


@pytest.mark.parametrize("how", ["intent", "quick reply", "action"])
async def test_handoff_routes(folder, how):
    router, _ = make_router(folder)
    convo = Conversation("c")
    if how == "intent":
        reply = await router.respond("I want a human", convo)
        assert reply.answer == "Our team will take it from here."
    elif how == "quick reply":
        reply = await router.respond(HANDOFF_VALUE, convo)
    else:
        reply = await router.respond("", convo, action="handoff")
    assert reply.handoff and convo.handoff and reply.answer
    assert reply.answer.endswith("A person will reply here soon.") == (how != "intent")


async def test_decision_is_one_json_object_with_latency(folder):
    router, _ = make_router(folder)
    d = (await router.respond("does the jacket come in red", Conversation("c"))).decision
    logged = json.loads(json.dumps(d.to_json()))
    assert set(logged) >= {"route", "intent", "confidence", "alternatives", "sources", "model_version", "latency_ms"}
    assert logged["sources"][0]["url"] == "https://shop.example/jackets" and logged["latency_ms"] >= 0


async def test_bot_name_is_filled_from_display_name_and_only_answers_are_rateable(folder):
    greet = dataclasses.replace(folder.intents["greet"], answer="Hi, I'm {bot_name}.")
    named = dataclasses.replace(folder, intents={**folder.intents, "greet": greet},
                                settings=dataclasses.replace(folder.settings, display_name="Acme Help"))
    router, _ = make_router(named)
    hello = await router.respond("hello!", Conversation("c"))
    assert hello.answer == "Hi, I'm Acme Help." and not hello.decision.rateable
    convo = Conversation("d")
    asked = await router.respond("where is my order", convo)
    assert asked.decision.slot == "order_id" and not asked.decision.rateable
    answered = await router.respond("AB12345", convo)
    assert answered.decision.route == "template" and answered.decision.rateable


class FixedLanguage:
    def __init__(self, language: str, probability: float):
        self.result, self.seen = (language, probability), []

    def detect(self, text):
        self.seen.append(text)
        return self.result


def language_router(folder, detector, **server):
    router, kb = make_router(folder, **server)
    router.detector = detector
    return router, kb


async def test_a_message_in_another_language_keeps_its_order_number_and_gets_the_configured_reply(folder):
    from bot.dialogue.language import LangidDetector

    router, kb = language_router(folder, LangidDetector(("en",)), other_language_message="Solo inglés, lo siento.")
    convo = Conversation("c")
    reply = await router.respond("¿Dónde está mi pedido AB12345?", convo)
    d = reply.decision
    assert (d.route, d.language, reply.answer) == ("fallback", "es", "Solo inglés, lo siento.")
    assert [q.value for q in reply.quick_replies] == [HANDOFF_VALUE]  # a person is offered
    assert "AB12345" in convo.slots.values()  # the order number is kept for whoever answers next
    assert kb.queries == []  # the English knowledge base is not asked
    assert json.loads(json.dumps(d.to_json()))["language"] == "es"  # logged with the turn


async def test_language_check_only_for_messages_no_intent_answers_and_only_when_sure(folder):
    detector = FixedLanguage("es", 0.99)
    router, _ = language_router(folder, detector)
    reply = await router.respond("Where is my order AB12345?", Conversation("c"))
    assert reply.decision.route == "template" and reply.decision.language is None and detector.seen == []
    unsure, _ = language_router(folder, FixedLanguage("pl", 0.5))  # misspelt English looks Polish, barely
    reply = await unsure.respond("hw do i cancle my ordr plz", Conversation("c"))
    assert reply.decision.language is None and reply.answer != unsure.server.other_language_message
    spoken, _ = language_router(folder, FixedLanguage("es", 0.99), languages=("en", "es"))
    assert (await spoken.respond("hola que tal", Conversation("c"))).decision.language is None


@pytest.mark.parametrize("message, names, answer", [
    ("thanks, bye!", "thanks, goodbye", "You're welcome! Goodbye, have a nice day!"),
    ("Hello 👋", "greet", "Hello! How can I help?"),  # the bot's own greet answer (intents.yaml)
    ("are you a bot?", "bot_challenge", "I'm a virtual assistant."),
    ("this is useless", "frustration", "Shall I hand you over to a person?"),
])
async def test_conversation_basics_are_answered_without_the_model(folder, message, names, answer):
    model = FixedClassifier()
    router, kb = make_router(folder, model=model)
    reply = await router.respond(message, Conversation("c"))
    assert reply.decision.route == "smalltalk" and reply.decision.reason == f"conversation basics: {names}"
    assert answer in reply.answer and model.calls == [] and kb.queries == []
    offers_a_person = [q.value for q in reply.quick_replies] == [HANDOFF_VALUE]
    assert offers_a_person == (names in ("bot_challenge", "frustration"))


async def test_a_greeting_or_thanks_around_a_request_gets_both_handled(folder):
    router, _ = make_router(folder)
    reply = await router.respond("hi, where is my order AB12345? thanks", Conversation("c"))
    assert reply.decision.route == "template" and reply.decision.intent == "track_order"
    assert reply.answer == "Hello! How can I help? Order AB12345 is on its way."


async def test_conversation_basics_can_be_switched_off(folder):
    model = FixedClassifier()
    router, _ = make_router(folder, model=model, conversation_basics=False)
    await router.respond("thanks, bye!", Conversation("c"))
    assert model.calls == [["thanks, bye!"]]  # the model decides


async def test_an_intent_of_the_same_name_answers_a_basic_instead_of_the_built_in_reply(folder):
    from bot.dialogue.router import Router
    from bot.folder.bot_folder import Intent

    model = FixedClassifier()
    intents = {**folder.intents, "thanks": Intent("thanks", ("thanks",), "Any time, from {bot_name}!")}

    async def classify(text):
        return model.predict([text])[0]

    router = Router(intents, folder.entities, model, classify, None, folder.settings)
    reply = await router.respond("thank you so much!", Conversation("c"))
    assert reply.answer == f"Any time, from {folder.settings.shown_name}!"


def remembering(texts: dict[str, str]):
    """A memory of reviewed answers that knows these messages (text -> what a reviewer said they should get)."""
    from bot.review.memory import Match
    from training.store import Example

    async def remember(text):
        outcome = texts.get(text)
        return None if outcome is None else Match(Example(text, outcome, "review", provenance="turn:42", id=7),
                                                  0.93, 0.8)
    return remember


async def test_a_message_a_reviewer_settled_gets_that_answer_before_the_model_is_asked(folder):
    model = FixedClassifier()
    router, kb = make_router(folder, model=model, remember=remembering({
        "has my thing shipped": "track_order", "what's the weather": "out_of_scope", "gone intent": "no_such_intent"}))
    reply = await router.respond("has my thing shipped", Conversation("c"))
    d = reply.decision
    assert (d.route, d.intent, reply.answer) == ("template", "track_order", "What is your order number?")
    assert d.reason.startswith("matched reviewed turn 42, similarity 0.93")
    assert d.memory["outcome"] == "track_order" and d.memory["example"] == 7 and d.thresholds["memory"] == 0.8
    assert model.calls == []  # the model was not asked
    refused = (await router.respond("what's the weather", Conversation("d"))).decision
    assert refused.route == "fallback" and refused.memory["outcome"] == "out_of_scope" and model.calls == []
    gone = (await router.respond("gone intent", Conversation("e"))).decision  # deleted since: the model decides
    assert gone.memory is None and model.calls == [["gone intent"]]
