"""The common dialog model every format reader produces, and how requests are found and cleaned in it.

A request is the customer's opening message, or a later one that starts something new (after the agent
asked "anything else?"). Greetings, sign-offs, signatures, quoted replies, URLs and @handles are
cleaned away; what remains must still say something (`min_words`).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from training.transcripts.settings import TranscriptSettings

CUSTOMER, AGENT, SYSTEM = "customer", "agent", "system"


@dataclass(frozen=True)
class Turn:
    role: str  # customer | agent | system
    text: str
    line: int = 0  # where it is in the source file (0 = unknown)
    label: str | None = None  # an explicit label on this turn (generic format)


@dataclass(frozen=True)
class Dialog:
    id: str
    turns: tuple[Turn, ...]
    line: int = 0
    label: str | None = None  # explicit label of the opening request (ABCD subflow, ticket tag)
    prepared: bool = False  # turns are already training texts (Rasa NLU examples): no request finding or cleaning


@dataclass(frozen=True)
class Request:
    """A customer's request, cleaned (not yet redacted), with the agent replies that followed it."""

    text: str
    turn: int  # index in the dialog's turns: part of the provenance
    line: int
    label: str | None
    replies: tuple[str, ...] = field(default=())
    opening: bool = True


# -- cleaning ------------------------------------------------------------------------------------
_QUOTE_HEADER = re.compile(
    r"^\s*(?:on .{0,200}\bwrote:|-{2,}\s*original message\s*-{2,}|from:\s.*|_{5,})\s*$", re.I | re.M)
_SIGNATURE = re.compile(r"^(?:--\s?|sent from my [\w ]+|get outlook for \w+)\s*$", re.I | re.M)
_SIGN_OFF = re.compile(
    r"^\s*(?:(?:best|kind|warm|many)\s+)?(?:regards|wishes|thanks|thank you|thx|cheers|sincerely|best)"
    r"(?:\s+(?:so much|a lot|in advance))?\s*[,.!]*\s*$", re.I)
_NAME = r"(?:[A-Z][\w.'&-]*|\[[A-Z_]+\]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
_INLINE_SIGN_OFF = re.compile(  # "... Could you advise? Regards, Martin Hughes" on one line
    r"(?<=[.!?])\s*(?i:(?:(?:kind|best|warm|many)\s+)?(?:regards|thanks|thank you|cheers|wishes))\s*,\s*"
    + _NAME + r"(?:[\s,]+" + _NAME + r"){0,6}\s*$")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.I)
_HANDLE = re.compile(r"(?<![\w.@])@\w+")
_HASHTAG = re.compile(r"(?<![\w&])#(\w+)")
_AGENT_INITIALS = re.compile(r"(?:^|\s)[\^*-]\s?[A-Z]{1,3}\s*$")  # Twitter agents sign "^RR"
_GREETING = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|howdy|heya|yo|greetings|dear|good (?:morning|afternoon|evening|day))"
    r"(?:\s+(?:there|team|all|guys|folks|everyone|support|friends?))?\b[\s,!.:;-]*)+", re.I)
_THANKS_END = re.compile(
    r"[\s,;:.!-]*\b(?:thanks|thank you|thx|ty|cheers|tia)(?:\s+(?:so much|a lot|in advance|very much))?[\s.!:)]*$", re.I)
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_CLOSING = re.compile(
    r"^(?:no|nope|nah|not really|that'?s (?:all|it|everything)|all good|nothing(?: else)?|i'?m good|"
    r"thanks?|thank you|thx|ty|bye|goodbye|ok(?:ay)?|great|perfect|cool)\b", re.I)
_YES = re.compile(r"^(?:yes|yeah|yep|yup|sure|ok(?:ay)?|actually)\b[\s,!.:;-]*", re.I)
_WORD = re.compile(r"[^\W\d_]{1,}", re.UNICODE)


def clean(text: str, max_chars: int = 400) -> str:
    """A message without what is not the request itself: quoted replies, signatures, greetings, URLs, handles."""
    text = html.unescape(text or "").replace("\r\n", "\n").replace("\r", "\n")
    m = _QUOTE_HEADER.search(text)
    if m:
        text = text[: m.start()]
    m = _SIGNATURE.search(text)
    if m:
        text = text[: m.start()]
    lines = [ln for ln in text.split("\n") if not ln.lstrip().startswith(">")]
    for i in range(max(0, len(lines) - 4), len(lines)):  # "Thanks,\nAnna" at the end of an e-mail
        if _SIGN_OFF.match(lines[i]) and all(len(ln.split()) <= 3 for ln in lines[i + 1:]):
            lines = lines[:i]
            break
    text = " ".join(lines)
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = _HASHTAG.sub(r"\1", text)
    text = _SPACE.sub(" ", text).strip()
    text = _INLINE_SIGN_OFF.sub("", text).strip()
    text = _AGENT_INITIALS.sub("", text).strip()
    text = _GREETING.sub("", text).strip()
    text = _THANKS_END.sub("", text).strip()
    text = text.strip(" ,;:-")
    if len(text) > max_chars:
        cut = [m.end() for m in _SENTENCE_END.finditer(text, 0, max_chars)]
        text = text[: cut[-1]].strip() if cut and cut[-1] > max_chars // 3 else text[:max_chars].rsplit(" ", 1)[0]
    return text


_BLOCK_END = re.compile(r"<\s*(?:br\s*/?|/p|/div|/li|/h\d|/tr|/blockquote)\s*>", re.I)
_TAG = re.compile(r"<[^>]+>")
_BLOCKQUOTE = re.compile(r"<blockquote\b.*?</blockquote>", re.I | re.S)


def html_text(body: str) -> str:
    """Plain text of an HTML message body (helpdesk exports): quoted blocks dropped, blocks on their own lines."""
    body = _BLOCKQUOTE.sub("\n", body or "")
    body = _BLOCK_END.sub("\n", body)
    return html.unescape(_TAG.sub("", body)).strip()


def tag_label(tags, prefix: str) -> str | None:
    """The label carried by a tag starting with `prefix` ("intent_refund" -> "refund"), if any."""
    if not prefix:
        return None
    for tag in tags or ():
        name = tag.get("name", "") if isinstance(tag, dict) else str(tag)
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return None


def label_name(label: str) -> str:
    """A label from the data as an intent name: runs of spaces and punctuation become '_' ("faq/ask name" -> "faq_ask_name")."""
    return re.sub(r"[^\w]+", "_", label.strip()).strip("_")


def words(text: str) -> int:
    return len(_WORD.findall(text))


# -- finding requests ----------------------------------------------------------------------------
def find_requests(dialog: Dialog, settings: TranscriptSettings) -> tuple[list[Request], str]:
    """The requests of a dialog, or ([], reason) when it has none."""
    if not dialog.turns:
        return [], "empty conversation"
    if not any(t.role == CUSTOMER and t.text.strip() for t in dialog.turns):
        if any(t.role == AGENT for t in dialog.turns):
            return [], "only agent turns"
        return [], "no customer turns"
    if dialog.prepared:
        return [Request(text=_SPACE.sub(" ", t.text).strip(), turn=i, line=t.line, label=t.label or dialog.label)
                for i, t in enumerate(dialog.turns) if t.role == CUSTOMER and t.text.strip()], ""
    invite = re.compile(settings.new_request_after, re.I)
    found: list[dict] = []
    expecting, current = True, None
    for index, turn in enumerate(dialog.turns):
        if turn.role == AGENT:
            if current is not None and len(current["replies"]) < settings.max_replies:
                reply = clean(turn.text, 1000)
                if reply:
                    current["replies"].append(reply)
            if invite.search(turn.text):
                expecting = True
        elif turn.role == CUSTOMER and not expecting:
            if current is not None and current["replies"] and (
                    not current["replies"][-1].endswith("?") or _CLOSING.match(clean(turn.text))):
                # the agent had answered (not asked for details) or the customer says "ok thanks": what the
                # agent says next answers that, not the request
                current = None
        elif turn.role == CUSTOMER:
            text = clean(turn.text, settings.max_request_chars)
            if found and _CLOSING.match(text):  # "no thanks, that's all"
                expecting = False
                continue
            if words(text) < settings.min_words:
                continue  # a greeting or a one-word message: the request is still to come
            opening = not found
            if not opening:
                text = _YES.sub("", text)  # "yes, how do I ..." after "anything else?"
            label = turn.label or (dialog.label if opening else None)
            current = {"text": text, "turn": index, "line": turn.line or dialog.line, "label": label,
                       "replies": [], "opening": opening}
            found.append(current)
            expecting = False
    if not found:
        return [], "no request after cleaning (greetings or too short)"
    return [Request(text=r["text"], turn=r["turn"], line=r["line"], label=r["label"] or None,
                    replies=tuple(r["replies"]), opening=r["opening"]) for r in found], ""
