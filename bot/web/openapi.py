"""The machine-readable description of the HTTP API (OpenAPI 3.1), served at GET /openapi.json.

A test checks that every route the app registers is described here.
"""

from __future__ import annotations

from typing import Any

from bot.web import review_spec

ROUTES = ["template", "smalltalk", "clarify", "knowledge", "fallback", "handoff"]


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


STR, INT, BOOL, NUM = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "number"}
LINKS = {"type": "array", "items": _obj(["title", "url"], title=STR, url=STR, doc_id={
    **STR, "description": "The knowledge base's document id (`kb stats`, `kb evaluate`); empty for an intent's link."})}
QUICK = {"type": "array", "items": _obj(["label", "value"], label=STR, value=STR)}
ERROR = _obj(["error"], error=STR, code={
    **STR, "description": "On some refusals, what the widget acts on: `origin_not_allowed` (the page's origin is "
    "not in server.allowed_origins; this one, on POST /api/chat, a browser lets the page read)."})
RATEABLE = {**BOOL, "description": "An answer to the question (template or knowledge, not a question back): "
            "the widget offers thumbs up/down under it."}

SCHEMAS = {
    "ChatRequest": _obj(
        [], message={**STR, "description": "The user's text; a quick reply's value is sent as the message."},
        conversation_id={**STR, "description": "Omit to start a conversation."},
        token={**STR, "description": "The conversation's secret, required with conversation_id."},
        customer_id={**STR, "description": "A verified customer (server.identity_secret), read when a conversation "
                     "starts: the host site's customer id."},
        customer_hash={**STR, "description": "Hex HMAC-SHA256 of customer_id with server.identity_secret."},
        action={"enum": ["handoff"], "description": "Hand the conversation to a person now."},
    ),
    "ChatReply": _obj(
        ["conversation_id", "token", "turn_id", "answer", "quick_replies", "sources", "route", "rateable", "handoff"],
        conversation_id=STR, token=STR, turn_id=INT, answer=STR, quick_replies=QUICK, sources=LINKS,
        route={"enum": ROUTES}, rateable=RATEABLE, handoff={**BOOL, "description": "True while the conversation waits for a person."},
    ),
    "Feedback": _obj(
        ["conversation_id", "token", "turn_id", "rating"], conversation_id=STR, token=STR, turn_id=INT,
        rating={"enum": ["up", "down"]}, comment=STR,
    ),
    "Conversation": _obj(
        ["conversation_id", "handoff", "turns"], conversation_id=STR, handoff=BOOL,
        turns={"type": "array", "items": _obj(
            ["turn_id", "message", "answer", "quick_replies", "sources", "route", "rateable", "created"],
            turn_id=INT, message={**STR, "description": "As stored: personal data redacted."}, answer=STR,
            quick_replies=QUICK, sources=LINKS, route={"enum": ROUTES}, rateable=RATEABLE, created={**NUM, "description": "Unix time."},
        )},
    ),
    "Error": ERROR,
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Invalid JSON, JSON nested over 32 levels, an integer beyond 64 bits, text with a lone surrogate or a "
             "control character, or a missing/mistyped field.", 401: "Missing or wrong admin bearer token.",
        403: "Foreign origin (code `origin_not_allowed`), wrong conversation token or customer_hash, or admin endpoints disabled (no token "
             "configured).",
        404: "Unknown conversation or turn.", 409: "A retrain started by this server is still running; on /api/chat: "
             "the conversation kept changing (other server processes answering it) while the message was answered, "
             "nothing stored, send it again; on /admin/reload: the model registry or the bot folder cannot be "
             "loaded (damaged, half-written), the old model still serves.",
        413: "Body or message too large.",
        415: "Not JSON, not UTF-8 text, or a non-text message.", 429: "Rate limit exceeded (see Retry-After).",
        503: "The model or knowledge base is still loading, or the database cannot be written (full disk, "
             "read-only); see Retry-After and /readyz. Nothing was stored.",
    }
    return {str(c): _json(_ref("Error"), reasons[c]) for c in codes}


def _op(summary: str, ok: dict[str, Any], *codes: int, body: str | None = None, admin: bool = False,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **_errors(*codes)}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if admin:
        op["security"] = [{"admin": []}]
    if params:
        op["parameters"] = params
    return op


CONVERSATION_ID = {"name": "conversation_id", "in": "path", "required": True, "schema": STR}
ANY_OBJECT = {"type": "object"}


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "supportbot", "version": "1",
                 "description": "Chat with a customer-service bot; admin endpoints need a bearer token."},
        "paths": {
            "/api/chat": {"post": _op("Send a message, get the bot's answer.", _json(_ref("ChatReply"), "The answer."),
                                      400, 403, 404, 409, 413, 415, 429, 503, body="ChatRequest")},
            "/api/feedback": {"post": _op("Rate an answer (down flags the turn for review).",
                                          _json(_obj(["ok"], ok=BOOL), "Stored."), 400, 403, 404, 413, 415, 429,
                                          503, body="Feedback")},
            "/api/conversations/{conversation_id}": {"get": _op(
                "A conversation's turns; needs header X-Conversation-Token.", _json(_ref("Conversation"), "Turns."),
                400, 403, 404, 429, 503,
                params=[CONVERSATION_ID, {"name": "X-Conversation-Token", "in": "header", "required": True,
                                          "schema": STR}])},
            "/healthz": {"get": _op("The process is up.", _json(_obj(["ok"], ok=BOOL), "Up."))},
            "/readyz": {"get": _op("Model and knowledge base are loaded.", _json(_obj(
                ["ready"], ready=BOOL, model_version=STR, knowledge=BOOL, storage=BOOL,
                worker={**INT, "description": "With serve --workers N: the number of the worker that answered."},
                pid={**INT, "description": "With serve --workers N: that worker's process id."},
                catching_up={**BOOL, "description": "Only while true: the first worker is still bringing the "
                             "analytics rollups, the review queue and the clusters growing fastest up to date after "
                             "its start (it answers meanwhile)."},
                drift={**ANY_OBJECT, "description": "With analytics.drift_alert set: the last drift check "
                       "(alert, Jensen–Shannon distance of the last 7 days, shares below threshold and out of scope)."}),
                "Ready."), 503)},
            "/openapi.json": {"get": _op("This description.", _json(ANY_OBJECT, "OpenAPI 3.1."))},
            "/metrics": {"get": {"summary": "Prometheus metrics (text format); the admin token, or a scraper address in "
                                 "server.metrics_allow.", "security": [{"admin": []}, {}],
                                 "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {
                                     "schema": STR}}}, **_errors(401)}}},
            "/admin/stats": {"get": _op("Counts of conversations, turns, routes, flags; model and batching.",
                                        _json(ANY_OBJECT, "Statistics."), 401, 403, admin=True)},
            "/admin/handoffs": {"get": _op("Conversations waiting for a person.", _json(_obj(
                ["handoffs"], handoffs={"type": "array", "items": ANY_OBJECT}), "Open handoffs."), 401, 403,
                admin=True)},
            "/admin/handoffs/{conversation_id}/release": {"post": _op(
                "Give a handed-off conversation back to the bot.", _json(_obj(["ok"], ok=BOOL), "Released."),
                401, 403, 404, admin=True, params=[CONVERSATION_ID])},
            "/admin/reload": {"post": _op(
                "Serve the registry's current model version (body optional: {\"force\": true} reloads anyway).",
                _json(_obj(["version", "changed"], previous=STR, version=STR, changed=BOOL), "Serving."),
                400, 401, 403, 409, admin=True)},
            "/admin/retrain": {
                "get": _op("The retrain schedule and the log of retrain runs (start, end, counts, outcome).",
                           _json(_obj(["schedule", "runs"], schedule=ANY_OBJECT, serving=STR,
                                      runs={"type": "array", "items": ANY_OBJECT}), "Schedule and runs."),
                           401, 403, admin=True),
                "post": _op("Start a gated retrain in its own process now (202); the gate decides whether it serves.",
                            _json(_obj(["started", "pid"], started=BOOL, pid=INT), "Started."), 401, 403, 409,
                            admin=True),
            },
            **review_spec.paths(),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}, **review_spec.SECURITY_SCHEMES},
        },
    }
