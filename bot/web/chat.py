"""Chat API: a turn, feedback on a turn, a conversation's history."""

from __future__ import annotations

from aiohttp import web

from bot.dialogue.conversations import ConversationMoved, ForeignConversation, UnknownConversation
from bot.serving.identity import MAX_ID_CHARS, customer_key, identity_secret, verified
from bot.dialogue.router import Conversation
from bot.web.runtime import RUNTIME, Runtime
from knowledge.documents import safe_url
from bot.web.security import check_text, error, field as body_field, is_blank, read_json

MOVED_RETRIES = 5  # a conversation's message answered again from a newer state before the client is told to retry


def _runtime_ready(request: web.Request) -> Runtime:
    rt = request.app[RUNTIME]
    if not rt.ready:
        reason = (rt.models.error if rt.models else "") or rt.knowledge_error or "the bot is starting"
        raise error(web.HTTPServiceUnavailable, reason, {"Retry-After": "2"})
    return rt


async def _open(rt: Runtime, request: web.Request, conversation_id: str, token: str | None,
                limited: bool = True) -> Conversation:
    """The conversation, its token verified; then its own rate limit applies (unless `limited` is off: the same
    request reading it again). A failed check counts against the client's address, so guessing ids or tokens is
    limited like any anonymous request."""
    try:
        convo = await rt.chat_db(rt.log.open, conversation_id, token)
    except UnknownConversation as e:
        await rt.limiter.check(request)
        raise error(web.HTTPNotFound, str(e)) from None
    except ForeignConversation as e:
        await rt.limiter.check(request)
        raise error(web.HTTPForbidden, str(e)) from None
    if limited:
        await rt.limiter.check(request, convo.id, convo.customer)
    return convo


async def _customer(rt: Runtime, request: web.Request, body: dict) -> str | None:
    """The keyed hash of the verified customer starting a conversation (`customer_id` and `customer_hash`, the
    HMAC-SHA256 of the id with server.identity_secret), None without them; a 4xx when they do not verify.
    A refusal counts against the client's address, like any anonymous request."""
    customer_id = body_field(body, "customer_id", str, required=False)
    given = body_field(body, "customer_hash", str, required=False)
    if customer_id is None and given is None:
        return None
    secret = identity_secret(rt.settings)
    status, reason = web.HTTPBadRequest, ""
    if not secret:
        reason = "customer identity is off on this server (set server.identity_secret)"
    elif customer_id is None or given is None:
        reason = "customer_id and customer_hash go together"
    elif not customer_id or len(customer_id) > MAX_ID_CHARS:
        reason = f"customer_id must be 1 to {MAX_ID_CHARS} characters"
    elif not verified(secret, customer_id, given):
        status, reason = web.HTTPForbidden, ("customer_hash does not match customer_id (expected the hex "
                                             "HMAC-SHA256 of the id with the shared identity secret)")
    if reason:
        await rt.limiter.check(request)
        raise error(status, reason)
    return customer_key(secret, customer_id)


async def chat(request: web.Request) -> web.Response:
    rt = _runtime_ready(request)
    s = rt.settings.server
    body = await read_json(request, s.max_body_bytes)
    action = body_field(body, "action", str, required=False)
    if action not in (None, "handoff"):
        raise error(web.HTTPBadRequest, "field action must be \"handoff\" when given")
    if "message" not in body and action is None:
        raise error(web.HTTPBadRequest, "missing field: message")
    message = "" if body.get("message") is None else body["message"]
    if not isinstance(message, str):
        raise error(web.HTTPUnsupportedMediaType, "only text messages are supported: message must be a string")
    if len(message) > s.max_message_chars:
        raise error(web.HTTPRequestEntityTooLarge, f"message over {s.max_message_chars} characters")
    if is_blank(message) and action is None:
        raise error(web.HTTPBadRequest, "message is empty")
    conversation_id = body_field(body, "conversation_id", str, required=False)
    token = body_field(body, "token", str, required=False)
    router = rt.models.current  # this request's model, whatever a reload does meanwhile

    new_token = None
    if conversation_id is None:  # a new conversation, of a verified customer or anonymous (the address's budget)
        customer = await _customer(rt, request, body)
        await rt.limiter.check(request, customer=customer)
        await rt.new_conversations.check(request)
        convo, new_token = rt.log.new(customer)
        conversation_id = convo.id
    async with rt.lock(conversation_id):  # one turn at a time in this process; across processes, see below
        handoff_checked = False
        for attempt in range(MOVED_RETRIES + 1):
            if new_token is None:
                convo = await _open(rt, request, conversation_id, token, limited=attempt == 0)
            reply = await router.respond(message, convo, action)
            if "handoff" in reply.decision.flags and not handoff_checked:  # each wakes a person: per address
                await rt.handoffs.check(request)
                handoff_checked = True
            try:
                turn_id = await rt.chat_db(rt.log.record_turn, convo, message, reply, new_token)
                break
            except ConversationMoved:  # another worker answered this conversation meanwhile: answer from its state
                if attempt == MOVED_RETRIES:
                    raise error(web.HTTPConflict, "the conversation changed while this message was answered; "
                                "send it again", {"Retry-After": "1"}) from None
    request["conversation_id"], request["bot_route"], request["turn_id"] = convo.id, reply.decision.route, turn_id
    if rt.metrics is not None:
        rt.metrics.turn(reply.decision.route, reply.decision.flags)
    if "handoff" in reply.decision.flags:
        rt.notifier.notify({
            "event": "handoff", "bot": rt.settings.name, "conversation_id": convo.id, "turn_id": turn_id,
            "reason": reply.decision.reason,
        })
    return web.json_response({
        "conversation_id": convo.id, "token": new_token or token, "turn_id": turn_id, "answer": reply.answer,
        "quick_replies": [{"label": q.label, "value": q.value} for q in reply.quick_replies],
        # Links ingested before ingest filtered them may still be stored: never hand a javascript: one out.
        "sources": [{"title": src.title, "url": src.url if safe_url(src.url) else "", "doc_id": src.doc_id}
                    for src in reply.decision.sources],
        "route": reply.decision.route, "rateable": reply.decision.rateable, "handoff": convo.handoff,
    })


async def feedback(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    body = await read_json(request, rt.settings.server.max_body_bytes)
    conversation_id = body_field(body, "conversation_id", str)
    token = body_field(body, "token", str)
    turn_id = body_field(body, "turn_id", int)
    rating = body_field(body, "rating", str)
    comment = body_field(body, "comment", str, required=False) or ""
    if rating not in ("up", "down"):
        raise error(web.HTTPBadRequest, "field rating must be \"up\" or \"down\"")
    if len(comment) > rt.settings.server.max_message_chars:
        raise error(web.HTTPRequestEntityTooLarge, f"comment over {rt.settings.server.max_message_chars} characters")
    await _open(rt, request, conversation_id, token)
    request["conversation_id"] = conversation_id
    try:
        await rt.chat_db(rt.log.feedback, conversation_id, turn_id, rating, comment)
    except UnknownConversation as e:
        raise error(web.HTTPNotFound, str(e)) from None
    if rating == "down" and rt.metrics is not None:
        rt.metrics.flags.labels("negative_feedback").inc()
    return web.json_response({"ok": True})


async def conversation(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    token = request.headers.get("X-Conversation-Token")
    if token is not None:
        check_text(token, "header X-Conversation-Token")
    conversation_id = check_text(request.match_info["conversation_id"], "the conversation id")
    convo = await _open(rt, request, conversation_id, token)
    turns = await rt.chat_db(rt.log.history, conversation_id)
    return web.json_response({"conversation_id": conversation_id, "handoff": convo.handoff, "turns": turns})
