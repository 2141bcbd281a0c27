"""What each concept of a Rasa project becomes in a supportbot bot folder, or why it cannot.

`migration_plan(project)` decides; it writes nothing. Intents get their answers from the responses that
rules and stories run after them (one step: `intent: thank` -> `utter_welcome`), else from the
`utter_<intent>` naming convention. Response variants stay variants, buttons become quick replies and
`{slot}` becomes a template variable where an entity fills it. Retrieval intents (`faq/ask_price`) become
intents of their own or knowledge articles. Test stories become the bot's conversation test. Everything
without a supportbot equivalent is a `Dropped` item with its file and line.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from training.rasa.answers import (IGNORED_ACTIONS, MAX_VARIANTS, Slots, answers_for, first_text, intent_name,
                                   var_name)
from training.rasa.project import Flow, RasaProject, Where
from training.store import normalise

SMALLTALK = ("greet", "goodbye", "bye", "thank", "thanks", "thankyou", "thank_you", "affirm", "deny", "mood_great",
             "mood_unhappy", "bot_challenge", "chitchat", "check_human", "noworries", "stop")


@dataclass(frozen=True)
class Dropped:
    """A Rasa concept not carried over: where it is, why, and what a user can do instead."""

    concept: str  # story | rule | response | custom action | form | slot | entity | ...
    name: str
    where: Where | None
    why: str
    instead: str = ""


@dataclass(frozen=True)
class IntentDraft:
    """An intent of the migrated bot folder."""

    name: str
    examples: tuple[str, ...]
    answers: tuple[str, ...] = ()  # variants, one chosen at random per turn
    quick_replies: tuple[tuple[str, str], ...] = ()  # (label, value)
    route: str = "knowledge"
    prompts: tuple[tuple[str, str], ...] = ()  # (variable, question)
    note: str = ""  # a comment for the person reviewing the migrated intents.yaml
    rasa: str = ""  # the Rasa intent it comes from

    @property
    def answer(self) -> str:
        return self.answers[0] if self.answers else ""


@dataclass(frozen=True)
class EntityDraft:
    name: str
    values: tuple[str, ...] = ()
    synonyms: tuple[tuple[str, str], ...] = ()  # (alias, canonical value)
    pattern: str = ""


@dataclass(frozen=True)
class TurnDraft:
    user: str
    intent: str  # the migrated intent name the user turn is labelled with
    expect: tuple[str, ...] = ()  # Rasa's possible replies; `{slot}` matches any text
    skip: str = ""  # why the turn is not scored (a custom action, a form, no reply expected)
    where: Where | None = None


@dataclass(frozen=True)
class ConversationDraft:
    name: str
    where: Where
    turns: tuple[TurnDraft, ...]


@dataclass
class Plan:
    intents: list[IntentDraft] = field(default_factory=list)
    entities: list[EntityDraft] = field(default_factory=list)
    conversations: list[ConversationDraft] = field(default_factory=list)
    evaluation: list[tuple[str, str]] = field(default_factory=list)  # held-out (text, intent)
    articles: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # file stem -> (question, answer)
    dropped: list[Dropped] = field(default_factory=list)
    smalltalk: list[str] = field(default_factory=list)
    fallback_message: str = ""
    carried_forms: set[str] = field(default_factory=set)
    prompts: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # Rasa intent -> prompts
    answered_by: dict[str, str] = field(default_factory=dict)  # intent -> how its answer was found

    def drop(self, concept: str, name: str, where: Where | None, why: str, instead: str = "") -> None:
        self.dropped.append(Dropped(concept, name, where, why, instead))


# -- the plan --------------------------------------------------------------------------------------------
def migration_plan(project: RasaProject, retrieval_as: str = "intents", oos_label: str = "out_of_scope") -> Plan:
    if retrieval_as not in ("intents", "knowledge"):
        raise ValueError(f"retrieval_as must be 'intents' or 'knowledge', not {retrieval_as!r}")
    plan = Plan()
    entities = _entities(project, plan)
    plan.entities = list(entities.values())
    slots = Slots(project, {e.name for e in plan.entities})
    links = _links(project, plan)
    _intents(project, plan, links, slots, retrieval_as, oos_label)
    _conversations(project, plan, slots, retrieval_as)
    _report_rest(project, plan, links)
    return plan


def _entities(project: RasaProject, plan: Plan) -> dict[str, EntityDraft]:
    """Annotated values and synonyms become `values` (aliases as synonyms); lookups too; regexes `pattern`s."""
    seen: dict[str, dict[str, str]] = {}  # entity -> {alias: canonical}
    where: dict[str, Where] = {}
    for examples in project.examples.values():
        for ex in examples:
            for a in ex.annotations:
                seen.setdefault(a.entity, {})[a.text] = a.value
                where.setdefault(a.entity, ex.where)
                if a.role or a.group:
                    plan.drop("entity role/group", f"{a.entity} ({'role ' + a.role if a.role else 'group ' + a.group})",
                              ex.where, "supportbot entities have no roles or groups",
                              "use two entities with their own values")
    for canonical, (aliases, w) in project.synonyms.items():
        owners = [e for e, values in seen.items() if canonical in values.values() or canonical in values]
        if not owners:
            plan.drop("synonym", canonical, w, "no annotated entity has this value",
                      "add it to an entity's values in intents.yaml")
        for e in owners:
            for alias in aliases:
                seen[e][alias] = canonical
    drafts = {}
    for name, (values, w) in project.lookups.items():
        seen.setdefault(name, {}).update({v: v for v in values})
        where.setdefault(name, w)
    for name, (patterns, w) in project.regexes.items():
        drafts[var_name(name)] = EntityDraft(var_name(name), pattern="|".join(f"(?:{p})" for p in patterns))
        if name not in seen:
            continue
    domain_entities = [str(next(iter(e))) if isinstance(e, dict) else str(e) for e in project.domain.get("entities") or []]
    for name in dict.fromkeys([*seen, *domain_entities]):
        values = seen.get(name, {})
        draft = drafts.get(var_name(name))
        if not values and draft is None:
            plan.drop("entity", name, project.domain_where.get("entities"),
                      "no annotated values, synonyms, lookup table or regex: supportbot has no learned extractor",
                      "give it `values:` or a `pattern:` in intents.yaml")
            continue
        canon = tuple(dict.fromkeys(values.values()))
        synonyms = tuple((alias, c) for alias, c in values.items() if alias != c and alias.lower() != c.lower())
        drafts[var_name(name)] = EntityDraft(var_name(name), canon, synonyms, draft.pattern if draft else "")
    return drafts


# -- which responses answer which intent -----------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    actions: tuple[str, ...]
    flow: Flow
    context: str  # why this link depends on more than the intent ("" = it does not)


def _links(project: RasaProject, plan: Plan) -> dict[str, list[Link]]:
    """intent -> the action sequences rules and stories run right after it."""
    links: dict[str, list[Link]] = {}
    for flow in project.flows:
        if any(s.kind in ("or", "checkpoint") for s in flow.steps):
            plan.drop(flow.kind, flow.name, flow.where, "uses `or:` or checkpoints, which supportbot cannot express",
                      "its intents keep their one-step answers")
        steps = flow.steps
        for i, step in enumerate(steps):
            if step.kind != "intent":
                continue
            actions = _actions_after(steps, i)
            before = [s for s in steps[:i] if s.kind in ("intent", "action")]
            context = ""
            if flow.condition:
                context = "its condition (" + "; ".join(flow.condition) + ")"
            elif before:
                context = f"the step before it ({before[-1].kind} {before[-1].name})"
            links.setdefault(step.name, []).append(Link(tuple(actions), flow, context))
    return links


def _pick(intent: str, links: dict[str, list[Link]], plan: Plan, root=None) -> tuple[tuple[str, ...], str]:
    """The actions that answer `intent`, and how they were found; context-dependent alternatives reported."""
    candidates = [l for l in links.get(intent, []) if l.actions]
    if "/" in intent and not candidates:  # a rule on `faq` covers every `faq/...`
        base = intent.split("/")[0]
        candidates = [Link(tuple(f"{a}/{intent.split('/', 1)[1]}" if a == f"utter_{base}" else a for a in l.actions),
                           l.flow, l.context) for l in links.get(base, []) if l.actions]
    if not candidates:
        return (), ""
    free = [l for l in candidates if not l.context] or candidates
    counts: dict[tuple[str, ...], int] = {}
    for l in free:
        counts[l.actions] = counts.get(l.actions, 0) + 1
    chosen = max(counts, key=lambda a: counts[a])
    first = next(l for l in free if l.actions == chosen)
    for l in candidates:
        if l.actions != chosen:
            what = f"after {l.context}" if l.context else "in this path"
            plan.drop(l.flow.kind, l.flow.name, l.flow.where,
                      f"answers {intent} with {', '.join(l.actions)} {what}; supportbot answers an intent the same "
                      f"way whatever came before, and uses {', '.join(chosen)}",
                      "keep one answer per intent, or split the intent")
    how = f"{first.flow.kind} '{first.flow.name}' ({first.flow.where.relative_to(root)})"
    if first.context:
        how += f", without {first.context}"
    return chosen, how


def _intents(project: RasaProject, plan: Plan, links, slots: Slots, retrieval_as: str, oos_label: str) -> None:
    owner: dict[str, str] = {}
    for intent, examples in project.examples.items():
        texts, keys, elsewhere = [], set(), []
        for ex in examples:  # one copy per normalised text; a text in two intents stays in the first
            key = normalise(ex.text)
            if owner.setdefault(key, intent) != intent:
                elsewhere.append(f"{ex.text!r} (kept in {owner[key]})")
            elif key not in keys:
                keys.add(key)
                texts.append(ex.text)
        note = f"Left out, also an example of another intent: {', '.join(elsewhere)}." if elsewhere else ""
        name = oos_label if intent in ("out_of_scope", "nlu_fallback") else intent_name(intent)
        actions, how = _pick(intent, links, plan, project.path)
        if not actions:
            convention = f"utter_{intent}"
            if convention in project.responses:
                actions, how = (convention,), f"the utter_{intent} naming convention"
        answers, replies, why = answers_for(actions, intent, project, slots, plan)
        if "/" in intent and retrieval_as == "knowledge" and answers:
            stem = intent_name(intent.split("/")[0])
            plan.articles.setdefault(stem, []).extend((t, answers[0].replace("{{", "{").replace("}}", "}"))
                                                      for t in texts)
            plan.answered_by[intent] = f"knowledge/{stem}.csv ({len(texts)} questions), from {how}"
            # as Rasa's response selector: one intent (`chitchat`) recognises them all; retrieval picks the answer
            base = next((d for d in plan.intents if d.name == stem), None)
            merged = (*(base.examples if base else ()), *texts)
            draft = IntentDraft(stem, merged, route="knowledge", rasa=intent.split("/")[0], note=(
                f"Rasa retrieval intent {intent.split('/')[0]}/...: answered from knowledge/{stem}.csv, one article "
                "per response (--retrieval-as knowledge)."))
            plan.intents = [d for d in plan.intents if d.name != stem] + [draft]
            continue
        if name == oos_label:
            if answers and not plan.fallback_message:
                plan.fallback_message = answers[0].replace("{{", "{").replace("}}", "}")
                plan.answered_by[intent] = f"server.fallback_message, from {how}"
            plan.intents.append(IntentDraft(name, tuple(texts), route="knowledge", rasa=intent,
                                            note=("Rasa out-of-scope examples: supportbot's out-of-scope label, "
                                                  "used to calibrate when to fall back. " + note).strip()))
            continue
        if answers:
            plan.answered_by[intent] = how
            extra = f"Answer from {', '.join(actions)} ({how})."
            plan.intents.append(IntentDraft(name, tuple(texts), answers, replies, "template",
                                            prompts=plan.prompts.get(intent, ()),
                                            note=extra + (" " + note if note else ""), rasa=intent))
            if intent_name(intent.split("/")[0]) in SMALLTALK or intent in SMALLTALK:
                plan.smalltalk.append(name)
        elif "handoff" in name:
            plan.intents.append(IntentDraft(name, tuple(texts), route="handoff", rasa=intent,
                                            note=("Rasa hand-off intent: hands over to a person. " + note).strip()))
            plan.answered_by[intent] = "a hand-off to a person"
        else:
            why = why or f"no rule, story or utter_{intent} response answers it"
            plan.intents.append(IntentDraft(name, tuple(texts), rasa=intent, note=(
                f"TODO: {why}; answered from the knowledge base until you write an `answer:`. " + note).strip()))
    for intent in project.intents_in_domain:
        if intent not in project.examples and intent not in ("nlu_fallback", "session_start", "restart") \
                and not any(i.startswith(intent + "/") for i in project.examples):
            plan.drop("intent", intent, project.domain_where.get("intents"), "listed in the domain but has no NLU examples",
                      "add examples to intents.yaml")
    # nlu_fallback: Rasa's low-confidence answer
    fallback, how = _pick("nlu_fallback", links, plan, project.path)
    texts = [first_text(project.responses.get(a)) for a in fallback or ("utter_default",)]
    if all(texts) and texts:
        text = "\n\n".join(texts)
        if not plan.fallback_message:
            plan.fallback_message = text
            plan.answered_by["nlu_fallback"] = f"server.fallback_message, from {how or 'utter_default'}"
        elif text != plan.fallback_message:
            r = project.responses.get((fallback or ("utter_default",))[0])
            plan.drop("response", r.name if r else "utter_default", r.where if r else None,
                      "supportbot has one fallback message, taken from the out_of_scope intent's response",
                      "edit server.fallback_message in bot.toml")


# -- the held-out check ----------------------------------------------------------------------------------
def _conversations(project: RasaProject, plan: Plan, slots: Slots, retrieval_as: str) -> None:
    seen = set()
    for flow in project.tests:
        key = (flow.name, tuple((s.kind, s.name, s.text) for s in flow.steps))
        if key in seen:
            plan.drop("test story", flow.name, flow.where, "repeats a test story of another file", "")
            continue
        seen.add(key)
        turns = []
        steps = flow.steps
        for i, step in enumerate(steps):
            if step.kind != "intent" or not step.text:
                continue
            actions = _actions_after(steps, i)
            name = "out_of_scope" if step.name in ("out_of_scope", "nlu_fallback") else intent_name(step.name)
            if retrieval_as == "knowledge" and "/" in step.name:
                name = intent_name(step.name.split("/")[0])  # one intent; retrieval picks the response
            if step.name:
                plan.evaluation.append((step.text.strip(), name))
            turns.append(_turn(step, name, actions, project))
        if turns:
            plan.conversations.append(ConversationDraft(flow.name, flow.where, tuple(turns)))
    for intent, examples in project.test_examples.items():
        plan.evaluation += [(ex.text, intent_name(intent)) for ex in examples]


def _turn(step, name: str, actions: list[str], project: RasaProject) -> TurnDraft:
    if not actions:
        return TurnDraft(step.text.strip(), name, skip="Rasa gives no response", where=step.where)
    expected = []
    for action in actions:
        if action in (f"utter_{step.name.split('/')[0]}",) and "/" in step.name:
            action = f"utter_{step.name}"  # the response selector picks the sub-intent's response
        response = project.responses.get(action)
        if response is None:
            kind = "form" if action in (project.domain.get("forms") or {}) else "custom action"
            return TurnDraft(step.text.strip(), name, skip=f"needs the {kind} {action}", where=step.where)
        texts = [str(v.get("text", "")).strip() for v in response.variants if not v.get("condition")]
        expected.append([t for t in texts if t] or [""])
    expect = ["\n\n".join(p for p in combo if p) for combo in itertools.product(*expected)]
    return TurnDraft(step.text.strip(), name, tuple(dict.fromkeys(expect))[:MAX_VARIANTS], where=step.where)


# -- what else is left behind ----------------------------------------------------------------------------
def _report_rest(project: RasaProject, plan: Plan, links) -> None:
    for flow in project.flows:
        if flow.kind == "rule" and flow.condition and not any(s.kind == "intent" for s in flow.steps):
            plan.drop("rule", flow.name, flow.where, "continues a form or another action under a condition "
                      f"({'; '.join(flow.condition)}): supportbot has no conversation policy", "")
        elif flow.conversation_start:
            plan.drop("rule", flow.name, flow.where, "applies only at the start of a conversation; its intent is "
                      "answered the same way at any time", "")
        elif flow.kind == "story" and sum(s.kind == "intent" for s in flow.steps) > 1:
            plan.drop("story", flow.name, flow.where, "a multi-step story: each intent keeps the answer it gets "
                      "here, but the order of the steps is not enforced", "")
    for name, kept, dropped in project.response_conflicts:
        plan.drop("response", name, dropped, f"defined again, differently, at {kept}; the first one is kept", "")
    for name in project.domain.get("actions") or []:
        name = str(name)
        if not name.startswith("utter_") and not name.startswith("validate_"):
            plan.drop("custom action", name, project.domain_where.get("actions"),
                      "custom action code does not run in supportbot",
                      "write the answer as a template with variables, or route the intent to a person")
    for form, spec in (project.domain.get("forms") or {}).items():
        if form in plan.carried_forms:
            continue
        validate = f"validate_{form}"
        why = "forms are not carried: supportbot asks only for the variables an answer uses"
        if validate in [str(a) for a in project.domain.get("actions") or []]:
            why += f"; its slots are validated by the custom action {validate}"
        plan.drop("form", str(form), project.domain_where.get("forms"), why,
                  "give the intent an answer with {variables} and `prompts:` asking for each")
    variables = {e.name for e in plan.entities}
    for slot, spec in (project.domain.get("slots") or {}).items():
        if var_name(str(slot)) in variables or slot == "requested_slot":
            continue
        mappings = spec.get("mappings") if isinstance(spec, dict) else None
        from_entity = any(isinstance(m, dict) and m.get("type") == "from_entity"
                          and var_name(str(m.get("entity"))) in variables for m in mappings or [])
        if not from_entity:
            plan.drop("slot", str(slot), project.domain_where.get("slots"),
                      "not filled by an entity supportbot can find (custom action, form or intent mapping)",
                      "an entity with values, or a prompt on the intent that needs it")
    for intent, where in project.empty_examples:
        plan.drop("empty example", intent, where, "an empty NLU example (`- ` or `- \"\"`) is not trained on", "")
    for key in ("session_config", "e2e_actions"):
        if key in project.domain:
            plan.drop("domain", key, project.domain_where.get(key), "no supportbot equivalent",
                      "conversations stay open until the customer leaves" if key == "session_config" else "")


def _actions_after(steps, i: int) -> list[str]:
    """The actions a flow runs after its step `i` (an intent), up to the next intent."""
    actions = []
    for later in steps[i + 1:]:
        if later.kind == "intent":
            break
        if later.kind == "action" and later.name not in IGNORED_ACTIONS:
            actions.append(later.name)
    return actions
