"""Rasa responses as supportbot answer templates: variants, quick replies from buttons, `{slot}` as a variable
(or the slot's initial value written in), and forms whose slots are all entities as prompts. What cannot be
expressed is recorded on the plan with the reason."""

from __future__ import annotations

import itertools
import re

from training.rasa.project import RasaProject, Response

IGNORED_ACTIONS = ("action_listen",)
MAX_VARIANTS = 24  # several responses in a row, each with variants: their combinations, at most
_SLOT = re.compile(r"{([^{}]+)}")


def var_name(name: str) -> str:
    """A Rasa slot or entity name as a supportbot variable ('amount-of-money' -> 'amount_of_money')."""
    from training.transcripts.dialogs import label_name

    return label_name(name) or "value"


def intent_name(name: str) -> str:
    """Rasa retrieval intents ('faq/ask_name') and odd characters become plain snake_case names."""
    from training.transcripts.dialogs import label_name

    return label_name(name) or "intent"


class Slots:
    """How a Rasa `{slot}` in a response becomes supportbot text: a variable an entity fills, its initial value
    written in, or nothing (a custom action fills it)."""

    def __init__(self, project: RasaProject, entities: set[str]):
        self.specs = project.domain.get("slots") or {}
        self.entities, self.responses = entities, project.responses

    def variable(self, slot: str) -> tuple[str | None, str]:
        """(supportbot text for `{slot}`, why not) -- the text is `{var}` or a literal initial value."""
        if var_name(slot) in self.entities:
            return "{" + var_name(slot) + "}", ""
        spec = self.specs.get(slot)
        if not isinstance(spec, dict):
            return None, f"{{{slot}}} is no slot of the domain"
        for mapping in spec.get("mappings") or []:
            if isinstance(mapping, dict) and mapping.get("type") == "from_entity" \
                    and var_name(str(mapping.get("entity"))) in self.entities:
                return "{" + var_name(str(mapping["entity"])) + "}", ""
        if spec.get("initial_value") not in (None, ""):
            return str(spec["initial_value"]), ""
        return None, f"slot {slot} is filled by a custom action or a form, not by an entity"

    def convert(self, text: str) -> tuple[str | None, str]:
        """A Rasa response text as a supportbot template (literal braces doubled), or (None, why not)."""
        out, last = [], 0
        for m in _SLOT.finditer(text):
            value, why = self.variable(m.group(1))
            if value is None:
                return None, why
            out.append(_escape(text[last:m.start()]) + (value if value.startswith("{") else _escape(value)))
            last = m.end()
        return "".join(out) + _escape(text[last:]), ""


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def first_text(response: Response | None) -> str:
    return str(response.variants[0].get("text", "")).strip() if response and response.variants else ""


def answers_for(actions, intent, project: RasaProject, slots: Slots, plan):
    """(answer variants, quick replies, why none) for an intent answered by these actions."""
    if not actions:
        return (), (), ""
    responses, prompts = [], ()
    forms = project.domain.get("forms") or {}
    if actions and actions[0] in forms:  # a form: its completion responses, asking for each slot first
        form = Form(project, actions[0], slots)
        if form.why:
            plan.drop("form", form.name, project.domain_where.get("forms"), f"answers {intent} in Rasa; {form.why}",
                      "give the intent an answer with {variables} and `prompts:` asking for each")
            return (), (), f"Rasa answers it with the form {form.name} ({form.why})"
        plan.carried_forms.add(form.name)
        if form.validation:
            plan.drop("form validation", form.validation, project.domain_where.get("actions"),
                      f"the custom action that validates {form.name}'s slots does not run in supportbot",
                      "a `pattern:` or `values:` on the entity keeps out values it would refuse")
        actions, prompts = tuple(form.completion) + tuple(actions[1:]), tuple(form.prompts)
    for action in actions:
        response = project.responses.get(action)
        if response is None:
            kind = "form" if action in forms else "custom action"
            plan.drop(kind, action, None, f"answers {intent} in Rasa; supportbot cannot run it",
                      f"write {intent_name(intent)}'s answer in intents.yaml, or answer it from knowledge/")
            return (), (), f"Rasa answers it with the {kind} {action}"
        responses.append(response)
    per_response, replies = [], []
    for response in responses:
        variants = []
        for v in response.variants:
            for key in v:
                if key not in ("text", "buttons", "condition", "channel"):
                    plan.drop("response " + key, response.name, response.where,
                              f"supportbot answers are text (with quick replies); the {key} is left out",
                              "link it in the answer text")
            if v.get("condition") or v.get("channel"):
                plan.drop("response condition" if v.get("condition") else "response channel", response.name,
                          response.where, "supportbot has no conditional or per-channel variants: this variant is left out")
                continue
            text = str(v.get("text", "")).strip()
            converted, why = slots.convert(text) if text else ("", "")
            if converted is None:
                plan.drop("response", response.name, response.where, why,
                          "rewrite the answer with variables from entities or prompts")
                return (), (), f"{response.name}: {why}"
            if converted:
                variants.append(converted)
            for b in v.get("buttons") or []:
                if isinstance(b, dict) and b.get("title"):
                    payload = str(b.get("payload", b.get("title")))
                    if re.fullmatch(r"/[\w/]+", payload):
                        payload = "/" + intent_name(payload[1:])
                    elif payload.startswith("/"):
                        plan.drop("button payload", f"{response.name}: {payload}", response.where,
                                  "a payload that sets entities cannot be a quick reply; its intent is kept",
                                  "the customer's click is classified as the intent")
                        payload = "/" + intent_name(payload[1:].split("{")[0])
                    if (str(b["title"]), payload) not in replies:
                        replies.append((str(b["title"]), payload))
        per_response.append(list(dict.fromkeys(variants)) or [""])
    answers = ["\n\n".join(p for p in combo if p) for combo in itertools.product(*per_response)]
    answers = [a for a in dict.fromkeys(answers) if a][:MAX_VARIANTS]
    if not answers:
        return (), tuple(replies), f"{', '.join(actions)} has no text"
    if prompts:
        used = {v for a in answers for v in re.findall(r"(?<!{){(\w+)}", a)}
        for var, _ in prompts:
            if var not in used:
                plan.drop("form slot", var, project.domain_where.get("forms"),
                          f"{intent}'s answer does not use it, so supportbot does not ask for it", "")
        plan.prompts[intent] = tuple(p for p in prompts if p[0] in used)
    return tuple(answers), tuple(replies), ""


class Form:
    """A Rasa form as prompts: expressible when every required slot is filled from an entity supportbot finds
    (`why` says otherwise) and a rule or story says which responses follow its completion."""

    def __init__(self, project: RasaProject, name: str, slots: Slots):
        self.name, self.why, self.prompts, self.completion = name, "", [], []
        spec = (project.domain.get("forms") or {}).get(name) or {}
        actions = [str(a) for a in project.domain.get("actions") or []]
        self.validation = f"validate_{name}" if f"validate_{name}" in actions else ""
        if isinstance(spec, dict) and "required_slots" in spec:  # 3.x: mappings live on the slots
            required = spec.get("required_slots") or []
            if isinstance(required, dict):
                required = list(required)
            mappings = {s: ((slots.specs.get(s) or {}).get("mappings") or []) for s in required}
        else:  # 2.x: mappings inside the form
            mappings = {s: m or [] for s, m in (spec or {}).items() if s not in ("ignored_intents",)}
        for slot, ms in mappings.items():
            entities = [var_name(str(m.get("entity"))) for m in ms if isinstance(m, dict) and m.get("type") == "from_entity"]
            if not ms or len(entities) != len(ms) or not all(e in slots.entities for e in entities):
                self.why = (f"slot {slot} is not filled from an entity supportbot finds "
                            f"({', '.join(sorted({str(m.get('type')) for m in ms if isinstance(m, dict)})) or 'no mapping'})")
                return
            ask = project.responses.get(f"utter_ask_{name}_{slot}") or project.responses.get(f"utter_ask_{slot}")
            question = str(ask.variants[0].get("text", "")).strip() if ask and ask.variants else ""
            self.prompts.append((entities[0], question or f"What is your {slot.replace('_', ' ')}?"))
        for flow in project.flows:  # `action: form`, `active_loop: null`, then the completion responses
            steps = list(flow.steps)
            for i, step in enumerate(steps):
                if step.kind == "action" and step.name == name and i + 1 < len(steps) \
                        and steps[i + 1].kind == "active_loop" and steps[i + 1].name in ("None", "null", ""):
                    self.completion = [s.name for s in steps[i + 2:] if s.kind == "action"
                                       and s.name not in IGNORED_ACTIONS]
                    break
            if self.completion:
                break
        if not self.completion:
            self.why = "no rule or story says what follows its completion"
