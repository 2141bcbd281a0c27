"""The review workspace's part of /openapi.json: its JSON API and its pages.

Every /api/review/ call needs a review session (cookie from /review/login, and the X-CSRF-Token header on
POST) or `Authorization: Bearer <admin token>`; without one it answers 401.
"""

from __future__ import annotations

from typing import Any

OBJ = {"type": "object"}
STR, INT = {"type": "string"}, {"type": "integer"}
ERR = {"description": "Refused: {\"error\": reason}.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
KINDS = ["low_confidence", "fallback", "clarification", "negative_feedback", "handoff", "audit"]
SECURITY = [{"admin": []}, {"review_session": []}]
FILTERS = [
    {"name": "kind", "in": "query", "schema": {"enum": KINDS}},
    {"name": "status", "in": "query", "schema": {"enum": ["new", "done", "ignored", ""]}, "description": "Default new; empty = any."},
    {"name": "since", "in": "query", "schema": STR, "description": "Last seen on or after (YYYY-MM-DD)."},
    {"name": "until", "in": "query", "schema": STR, "description": "Last seen on or before (YYYY-MM-DD)."},
    {"name": "intent", "in": "query", "schema": STR}, {"name": "route", "in": "query", "schema": STR},
    {"name": "model_version", "in": "query", "schema": STR},
    {"name": "q", "in": "query", "schema": STR, "description": "Text the message contains."},
    {"name": "sort", "in": "query", "schema": {"enum": ["suggested", "newest", "frequent"]}, "description": "Default suggested: what helps the bot most first (candidate new intents, then uncertain and varied messages; the newest 2000 groups ranked, the rest after them newest first)."},
    {"name": "cursor", "in": "query", "schema": STR, "description": "next_cursor of the previous page (of the same sort)."},
]
ACTION = {"type": "object", "required": ["action"], "properties": {
    "action": {"enum": ["confirm", "correct", "out_of_scope", "answer", "article", "ignore"]},
    "intent": {**STR, "description": "correct: the intent (an unknown name creates it in intents.yaml); answer: whose template."},
    "new_intent": {**STR, "description": "correct: create this intent."},
    "answer": {**STR, "description": "answer: the new template (correct with a new intent: its answer)."},
    "title": STR, "body": {**STR, "description": "article: Markdown written under the bot's knowledge/ and synced."},
}}
OUTCOME = {"type": "object", "properties": {
    "action_ids": {"type": "array", "items": INT}, "bulk_id": STR, "groups": INT, "examples_added": INT,
    "files": {"type": "array", "items": STR, "description": "Files of the bot folder that changed."},
    "reload_router": {"type": "boolean"}, "sync_knowledge": {"type": "boolean"},
    "notes": {"type": "array", "items": STR}}}


def _ok(description: str, schema: dict[str, Any] = OBJ, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {"application/json": {"schema": schema}}}}


def _op(summary: str, ok: dict[str, Any], *codes: int, params=None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": SECURITY,
                          "responses": {**ok, **{str(c): ERR for c in (401, *codes)}}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _page(summary: str, form: bool = False) -> dict[str, Any]:
    ok = {"303" if form else "200": {"description": "Redirect back to the page." if form else "An HTML page."}}
    return {"summary": summary + (" (HTML form; needs the _csrf field)" if form else " (HTML page)"),
            "security": [{"review_session": []}], "responses": {**ok, "303 ": {"description": "Not logged in: to /review/login."}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STR if name == "bulk_id" else INT}


def paths() -> dict[str, Any]:
    return {
        "/api/review/queue": {"get": _op("Queue items (groups of near-identical flagged messages), newest or most "
                                         "frequent first, with counts per kind.",
                                         _ok("items, next_cursor, counts"), 400, params=FILTERS)},
        "/api/review/items/{group_id}": {"get": _op(
            "One item: its group, members, the turn (answer, route, intent, calibrated confidence, alternatives, "
            "knowledge passages with scores, ratings and comments, model version), conversation context, actions.",
            _ok("The item."), 404, params=[_path("group_id"), {"name": "turn", "in": "query", "schema": INT}])},
        "/api/review/turns/{turn_id}/context": {"get": _op(
            "Earlier turns of the conversation (loaded lazily).", _ok("turns, more_before"), 404,
            params=[_path("turn_id"), {"name": "before", "in": "query", "schema": INT}])},
        "/api/review/items/{group_id}/actions": {"post": _op(
            "Act on an item: confirm, correct, out_of_scope, answer, article or ignore. Recorded (who, when, before, "
            "after) and undoable.", _ok("What changed.", OUTCOME), 400, 403, 404, params=[_path("group_id")], body=ACTION)},
        "/api/review/bulk": {"post": _op(
            "One action (confirm, correct to an existing intent, out_of_scope, ignore) on every item of a filtered "
            "selection, all pages.", _ok("What changed; bulk_id undoes it.", OUTCOME), 400, 403,
            body={"type": "object", "required": ["action"], "properties": {
                "filters": {"type": "object", "description": "The queue's filters (kind, status, since, until, intent, "
                            "route, model_version, q)."}, "action": STR, "intent": STR}})},
        "/api/review/actions/{action_id}/undo": {"post": _op("Undo one action.", _ok("What changed.", OUTCOME), 403, 404, 409,
                                                             params=[_path("action_id")])},
        "/api/review/clusters": {"get": _op(
            "What the bot could not answer: clusters of unanswered messages with size, trend, examples and verdict.",
            _ok("since, clusters"), 400, params=[{"name": "since", "in": "query", "schema": STR}])},
        "/api/review/train": {"post": _op("Admin: start training a new model version in its own process.",
                                          _ok("The run.", OBJ, "202"), 403, 409)},
        "/api/review/retrain/{run_id}/{decision}": {"post": _op(
            "Admin: approve (serve) or reject the candidate a retrain run held for approval (decision: approve or "
            "reject).", _ok("What happened."), 403, 409, params=[_path("run_id"), {"name": "decision", "in": "path",
                                                                                   "required": True, "schema": {"enum": ["approve", "reject"]}}])},
        "/api/review/explain": {"get": _op(
            "Why the bot answers a message as it does: the decision, the rule, every signal with its threshold, the "
            "knowledge candidates with their score parts (nothing is logged).", _ok("The explanation."), 400, 413, 503,
            params=[{"name": "q", "in": "query", "required": True, "schema": STR}])},
        "/api/review/status": {"get": _op("Serving model version, reviewed examples it has not seen, training run.",
                                          _ok("Status."))},
        "/api/review/users": {
            "get": _op("Admin: the accounts (name, role, created; never passwords).", _ok("users"), 403),
            "post": _op("Admin: create an account.", _ok("The account (no password)."), 400, 403,
                        body={"type": "object", "required": ["name", "password"], "properties": {
                            "name": STR, "role": {"enum": ["reviewer", "admin"]}, "password": STR}})},
        "/api/review/users/{name}/remove": {"post": _op("Admin: delete an account; its sessions end.",
                                                        _ok("removed"), 403, 404, params=[{"name": "name", "in": "path",
                                                                                           "required": True, "schema": STR}])},
        "/api/review/analytics": {"get": _op(
            "Analytics of the last `days` days: summary rates (each with count and denominator) and every table "
            "behind the analytics page's plots.", _ok("summary, tables"), 400,
            params=[{"name": "days", "in": "query", "schema": INT, "description": "1..3660; default analytics.days."}])},
        "/review": {"get": _page("The queue")},
        "/review/analytics": {"get": _page("Analytics: rates over time with model promotions, per version and week")},
        "/review/analytics/{table}.csv": {"get": _page("One table behind the analytics page, as CSV")},
        "/review/login": {"get": _page("The login form"), "post": _page("Log in", form=True)},
        "/review/logout": {"post": _page("Log out", form=True)},
        "/review/items/{group_id}": {"get": _page("One item")},
        "/review/items/{group_id}/act": {"post": _page("Act on an item", form=True)},
        "/review/actions/{action_id}/undo": {"post": _page("Undo an action", form=True)},
        "/review/bulk": {"post": _page("A bulk action on the filtered selection", form=True)},
        "/review/bulk/{bulk_id}/undo": {"post": _page("Undo a bulk action", form=True)},
        "/review/clusters": {"get": _page("What the bot could not answer")},
        "/review/try": {"get": _page("Try a message: why the bot answers it as it does")},
        "/review/clusters/accept": {"post": _page("Accept a cluster's verdict", form=True)},
        "/review/train": {"post": _page("Admin: start training", form=True)},
        "/review/retrain/{run_id}/{decision}": {"post": _page("Admin: approve or reject a held candidate", form=True)},
        "/review/proposals/{proposal_id}/accept": {"post": _page("Accept an intent proposed from imported transcripts",
                                                                 form=True)},
    }


SECURITY_SCHEMES = {"review_session": {"type": "apiKey", "in": "cookie", "name": "supportbot_review",
                                       "description": "From /review/login; POST also needs the X-CSRF-Token header."}}
