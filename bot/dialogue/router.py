"""The router: one message in, one reply out, with the `Decision` that explains it (logged whole).

Routes: template (a confident intent with an answer), smalltalk (greetings, thanks, goodbyes and the other
conversation basics, bot.dialogue.basics: never the knowledge base), clarify (an answered message whose top
intents are too close: ask which; never a refused one, never when an article answers it confidently),
knowledge (no confident intent, or the intent routes there), fallback (nothing good: offer a person, with links
to articles worth a look), handoff (asked for, routed there, or too many failures in a row). Thresholds come
from the serving model's calibration, via `Prediction.unknown` (the out-of-scope score below its threshold) /
`.ambiguous` and `model.threshold` (the probability the top two must reach together), and from the knowledge
base's own; none are constants here. The rules and their order are bot.dialogue.policy's.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

from bot.dialogue import basics, policy
from bot.folder.bot_folder import Entity, Intent
from bot.dialogue.language import Detector
from bot.settings import Settings
from bot.dialogue.templates import EntityExtractor, fill, slot_reply
from training.classifier import Prediction

ROUTES = ("template", "smalltalk", "clarify", "knowledge", "fallback", "handoff")
FLAGS = ("low_confidence", "fallback", "clarification", "negative_feedback", "handoff",
         "shadow")  # shadow: a retrain's candidate model would decide this turn differently
HANDOFF_VALUE = "/handoff"  # quick-reply value (and message) that asks for a person
INTENT_VALUE = "/"  # quick-reply values "/<intent>" pick that intent without classifying
SUGGESTIONS = 2  # articles linked by a fallback, at most
RATEABLE_ROUTES = ("template", "knowledge")


class CalibratedClassifier(Protocol):
    """What the router needs of a model version (training.classifier.IntentClassifier, or a test double)."""

    version: str
    threshold: float
    margin: float

    def predict(self, texts: Sequence[str], k: int = 3) -> list[Prediction]: ...


class Knowledge(Protocol):
    """knowledge.base.KnowledgeBase, or a test double; `answer_many()` returns knowledge.base.Answers."""

    def answer_many(self, queries: Sequence[str], tags: Sequence[str] = ()) -> list[Any]: ...


@dataclass(frozen=True)
class Source:
    title: str
    url: str
    score: float
    doc_id: str = ""  # the knowledge base's document id ("faq.csv#do-you-ship-abroad")


@dataclass(frozen=True)
class QuickReply:
    label: str
    value: str


@dataclass(frozen=True)
class Decision:
    """Why the bot answered as it did; stored as JSON with every turn."""

    route: str
    reason: str
    intent: str | None = None
    confidence: float = 0.0  # calibrated probability of `intent` (or of the top intent when none)
    oos_score: float | None = None  # the model's out-of-scope score (training.oos; answered when above its threshold)
    alternatives: tuple[tuple[str, float], ...] = ()
    sources: tuple[Source, ...] = ()
    model_version: str = ""
    latency_ms: float = 0.0
    kb_score: float | None = None
    slot: str | None = None  # the variable this turn asked for
    flags: tuple[str, ...] = ()
    language: str | None = None  # detected language of a message no intent answered (bot.dialogue.language), else None
    # what each signal was compared with: oos_score (answered at or above it), margin (asks below it), pair_floor
    # (the top two must reach it together to be asked about), kb_relevance (an article answers at or above it)
    thresholds: dict[str, float] = field(default_factory=dict)
    memory: dict[str, Any] | None = None  # the reviewed message it matched (bot.review.memory.Match.to_json)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def rateable(self) -> bool:
        """An answer to the customer's question (not a greeting, a question back, or a fallback): worth a thumb."""
        return self.route in RATEABLE_ROUTES and self.slot is None


@dataclass(frozen=True)
class Reply:
    answer: str
    decision: Decision
    quick_replies: tuple[QuickReply, ...] = ()

    @property
    def handoff(self) -> bool:
        return self.decision.route == "handoff"


@dataclass
class Conversation:
    """The state the router reads and updates; the conversation log loads and saves it."""

    id: str
    handoff: bool = False
    failures: int = 0  # fallback answers in a row
    pending: dict[str, str] | None = None  # {"intent", "variable"} asked for on the previous turn
    slots: dict[str, str] = field(default_factory=dict)
    turns: int = 0  # turns recorded when it was read: the log refuses to save over a newer state
    customer: str | None = None  # the verified customer's keyed hash (bot/serving/identity.py), never the id


Classify = Callable[[str], Awaitable[Prediction]]
Search = Callable[[str], Awaitable[Any]]
Remember = Callable[[str], Awaitable[Any]]  # the memory of reviewed answers: a bot.review.memory.Match, or None


class Router:
    """Routes messages for one model version; a new version gets a new Router (hot reload)."""

    def __init__(self, intents: Mapping[str, Intent], entities: Mapping[str, Entity], model: CalibratedClassifier,
                 classify: Classify, search: Search | None, settings: Settings, detector: Detector | None = None,
                 remember: Remember | None = None):
        self.intents, self.model, self.classify, self.search = intents, model, classify, search
        self.remember = remember
        self.detector = detector  # bot.dialogue.language: None = no language check
        self.extractor = EntityExtractor(entities)
        self.server = settings.server
        self.oos_label = settings.train.oos_label
        self.suggest_relevance = settings.knowledge.suggest_relevance
        self.builtins = {"bot_name": settings.shown_name}

    @property
    def version(self) -> str:
        return self.model.version

    async def respond(self, text: str, convo: Conversation, action: str | None = None) -> Reply:
        """Decide and answer; updates `convo` (slots, pending prompt, failures, handoff)."""
        start = time.perf_counter()
        reply = await self._respond(" ".join(text.split()), convo, action)
        decision = dataclasses.replace(reply.decision, latency_ms=round((time.perf_counter() - start) * 1000, 2))
        return dataclasses.replace(reply, decision=decision)

    async def _respond(self, text: str, convo: Conversation, action: str | None) -> Reply:
        if convo.handoff:
            return self._reply("handoff", "conversation is waiting for a person", self.server.waiting_message)
        if action == "handoff" or text.lower() == HANDOFF_VALUE:
            return self._handoff(convo, "the user asked for a person", None)
        found = basics.split(text) if self.server.conversation_basics else basics.Basics((), text)
        if found.names and not found.request:
            return self._basics(found.names, convo)
        reply = await self._request(found.request or text, convo)
        if "greet" in found.names:  # "hi, where is my order": greeted back, then answered
            reply = dataclasses.replace(reply, answer=f"{self._basic_answer('greet')} {reply.answer}")
        return reply

    def _basics(self, names: tuple[str, ...], convo: Conversation) -> Reply:
        """A message of conversation basics only: each answered once, in order; frustration and "are you a bot?"
        offer a person."""
        convo.pending = None
        names = tuple(dict.fromkeys(names))
        own = basics.own_intent(names[0], self.intents)
        if len(names) == 1 and own is not None:  # the bot's own intent: its answer and buttons
            return self._template(own, None, convo, f"conversation basics: {names[0]}")
        if "frustration" not in names:  # answered as meant, like any small talk
            convo.failures = 0
        offer = any(n in ("frustration", "bot_challenge") for n in names)
        return self._reply("smalltalk", f"conversation basics: {', '.join(names)}",
                           " ".join(self._basic_answer(n) for n in names), intent=names[0],
                           quick_replies=(QuickReply("Talk to a person", HANDOFF_VALUE),) if offer else ())

    def _basic_answer(self, name: str) -> str:
        """The bot's own answer when intents.yaml has an intent of this name with one, else the built-in reply."""
        intent = basics.own_intent(name, self.intents)
        filled = fill(intent, self.builtins) if intent is not None else None
        return filled.answer if filled is not None and not filled.missing else basics.reply(name)

    async def _request(self, text: str, convo: Conversation) -> Reply:
        found = self.extractor.extract(text)
        convo.slots.update(found)
        chosen = self._chosen_intent(text)
        pending, convo.pending = (None, None) if chosen else (convo.pending, None)
        asked = self.intents.get(pending["intent"]) if pending else None
        if asked is not None and pending["variable"] in found:
            return self._template(asked, None, convo, f"reply to the prompt for {pending['variable']}")
        match = await self.remember(text) if self.remember is not None and not chosen else None
        if match is not None and match.example.intent != self.oos_label and match.example.intent not in self.intents:
            match = None  # an intent deleted since: the model decides
        if chosen:
            prediction = Prediction(chosen, 1.0, [(chosen, 1.0)], False, False)
        elif match is not None:  # what a reviewer said a message this close should get
            outcome = match.example.intent
            prediction = (Prediction(None, 0.0, [], True, False) if outcome == self.oos_label
                          else Prediction(outcome, 1.0, [(outcome, 1.0)], False, False))
        else:
            prediction = await self.classify(text)
        if asked is not None and self._still_answering(text, prediction, asked, pending["variable"]):
            convo.slots[pending["variable"]] = slot_reply(text)
            return self._template(asked, None, convo, f"reply to the prompt for {pending['variable']}")
        reply = await self._route(text, prediction, convo, "quick reply" if chosen else "")
        if match is None:
            return reply
        d = reply.decision  # policy rule 0: the memory of reviewed answers decided what the model would have
        return dataclasses.replace(reply, decision=dataclasses.replace(
            d, reason=f"{match.describe()}: {d.reason}", memory=match.to_json(),
            thresholds={**d.thresholds, "memory": round(match.threshold, 4)}))

    async def _route(self, text: str, p: Prediction, convo: Conversation, why: str) -> Reply:
        choices = policy.ask_between(p, self.intents, self.model.threshold, self.model.margin,
                                     self.server.clarify_choices, self.server.clarify_floor, self.oos_label,
                                     self.server.smalltalk_intents)
        if choices:
            answer = await self.search(text) if self.search is not None else None
            if policy.article_beats_asking(answer):
                return self._article(answer, p, convo, "top intents too close to call, but the knowledge base is "
                                     "confident: an article beats a question")
            return self._clarify(p, choices)
        intent = self.intents.get(p.intent) if p.intent and p.intent != self.oos_label else None
        if intent is None:
            language = self._other_language(text)
            if language is not None:  # entities were taken from it already (convo.slots)
                reply = self._fallback(convo, p, f"no confident intent; the message is in {language}, not one of "
                                       f"{', '.join(self.server.languages)}", None,
                                       message=self.server.other_language_message)
                return dataclasses.replace(reply, decision=dataclasses.replace(reply.decision, language=language))
            return await self._knowledge(text, p, convo, "no confident intent")
        if intent.route == "handoff":
            return self._handoff(convo, f"intent {intent.name} routes to a person", p, intent.answer)
        if intent.route == "knowledge":
            return await self._knowledge(text, p, convo, f"intent {intent.name} routes to the knowledge base",
                                         intent)
        return self._template(intent, p, convo, why or "confident intent")

    def _other_language(self, text: str) -> str | None:
        """The message's language when the detector is sure it is none of the bot's, else None."""
        if self.detector is None:
            return None
        language, probability = self.detector.detect(text)
        ok = language in self.server.languages or probability < self.server.language_confidence
        return None if ok else language

    def _template(self, intent: Intent, p: Prediction | None, convo: Conversation, why: str) -> Reply:
        filled = fill(intent, {**convo.slots, **self.builtins})
        if filled.missing:
            convo.pending = {"intent": intent.name, "variable": filled.missing}
            return self._reply("template", f"{why}; asking for {filled.missing}", filled.prompt, p,
                               intent=intent.name, slot=filled.missing)
        route = "smalltalk" if intent.name in self.server.smalltalk_intents else "template"
        convo.failures = 0
        replies = tuple(QuickReply(label, value) for label, value in intent.quick_replies)
        return self._reply(route, why, filled.answer, p, intent=intent.name, quick_replies=replies)

    def _still_answering(self, text: str, p: Prediction, asked: Intent, variable: str) -> bool:
        """A free-text reply to last turn's prompt fills the variable, unless it is about something else.

        Entity variables (pattern or list) only take a matching value: asked once, a reply without
        one is routed as a new message.
        """
        moved_on = p.intent is not None and not p.ambiguous and p.intent != asked.name
        return not moved_on and variable not in self.extractor and bool(slot_reply(text))

    async def _knowledge(self, text: str, p: Prediction, convo: Conversation, why: str,
                         intent: Intent | None = None) -> Reply:
        answer = await self.search(text) if self.search is not None else None
        kb_threshold = getattr(answer, "threshold", None)
        if policy.article_beats_asking(answer):
            return self._article(answer, p, convo, f"{why}; the knowledge base is confident")
        kb_score = float(answer.score) if answer is not None else None
        if intent is not None and intent.answer:  # the intent's own answer covers what the articles do not
            reply = self._template(intent, p, convo, f"{why}; it is not confident, so the intent's answer")
            return dataclasses.replace(reply, decision=dataclasses.replace(
                reply.decision, kb_score=kb_score, thresholds=self._thresholds(p, kb_threshold)))
        return self._fallback(convo, p, f"{why}; the knowledge base is not confident either", kb_score,
                              self._suggestions(answer), kb_threshold=kb_threshold)

    def _article(self, answer: Any, p: Prediction, convo: Conversation, why: str) -> Reply:
        convo.failures = 0
        source = Source(answer.title, answer.url, round(float(answer.score), 4), getattr(answer, "doc_id", ""))
        return self._reply("knowledge", why, answer.text, p, sources=(source,), kb_score=answer.score,
                           kb_threshold=getattr(answer, "threshold", None))

    def _suggestions(self, answer: Any) -> tuple[Source, ...]:
        """Articles worth a look when none answers confidently: the best hits scoring knowledge.suggest_relevance."""
        if answer is None or not answer.title:
            return ()
        links: dict[tuple[str, str], Source] = {}  # one link per article, however many of its copies matched
        for h in [answer, *answer.alternatives]:
            if h.title and h.score >= self.suggest_relevance:
                links.setdefault((h.title, h.url), Source(h.title, h.url, round(float(h.score), 4), getattr(h, "doc_id", "")))
        return tuple(links.values())[:SUGGESTIONS]

    def _clarify(self, p: Prediction, choices: list[tuple[str, float]]) -> Reply:
        replies = tuple(QuickReply(self.intents[name].description, INTENT_VALUE + name) for name, _ in choices)
        why = "top two intents are within the model's margin and together clear its threshold"
        return self._reply("clarify", why, self.server.clarify_message, p, quick_replies=replies)

    def _fallback(self, convo: Conversation, p: Prediction, why: str, kb_score: float | None,
                  suggested: tuple[Source, ...] = (), message: str | None = None,
                  kb_threshold: float | None = None) -> Reply:
        convo.failures += 1
        limit = self.server.handoff_after_failures
        if limit and convo.failures >= limit:
            return self._handoff(convo, f"{convo.failures} failed turns in a row", p)
        message = message or (self.server.suggest_message if suggested else self.server.fallback_message)
        return self._reply("fallback", why, message, p, quick_replies=(QuickReply("Talk to a person", HANDOFF_VALUE),),
                           sources=suggested, kb_score=kb_score, kb_threshold=kb_threshold)

    def _handoff(self, convo: Conversation, why: str, p: Prediction | None, answer: str = "") -> Reply:
        convo.handoff, convo.failures, convo.pending = True, 0, None
        return self._reply("handoff", why, answer or self.server.handoff_message, p, flags=("handoff",))

    def _chosen_intent(self, text: str) -> str | None:
        name = text[len(INTENT_VALUE):] if text.startswith(INTENT_VALUE) else ""
        return name if name in self.intents else None

    def _reply(self, route: str, reason: str, answer: str, p: Prediction | None = None, *,
               intent: str | None = None, quick_replies: tuple[QuickReply, ...] = (),
               sources: tuple[Source, ...] = (), kb_score: float | None = None, slot: str | None = None,
               flags: tuple[str, ...] = (), kb_threshold: float | None = None) -> Reply:
        flags = flags + {"fallback": ("fallback",), "clarify": ("clarification",)}.get(route, ())
        if p is not None and p.unknown:
            flags = ("low_confidence",) + flags
        decision = Decision(
            route=route, reason=reason, intent=intent or (p.intent if p else None),
            confidence=round(float(p.confidence), 4) if p else 0.0,
            oos_score=None if p is None or p.oos_score is None else round(float(p.oos_score), 4),
            alternatives=tuple((name, round(float(c), 4)) for name, c in p.top) if p else (),
            sources=sources, model_version=self.model.version,
            kb_score=None if kb_score is None else round(float(kb_score), 4), slot=slot, flags=flags,
            thresholds=self._thresholds(p, kb_threshold),
        )
        return Reply(answer=answer, decision=decision, quick_replies=quick_replies)

    def _thresholds(self, p: Prediction | None, kb_threshold: float | None) -> dict[str, float]:
        """The thresholds this turn's signals were compared with (none for a turn the model did not classify)."""
        out = {}
        if p is not None:
            m = self.model
            out = {"oos_score": getattr(m, "score_threshold", m.threshold), "margin": m.margin, "pair_floor": m.threshold}
        if kb_threshold is not None:
            out["kb_relevance"] = kb_threshold
        return {name: round(float(value), 4) for name, value in out.items()}
