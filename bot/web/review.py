"""The review workspace: queue, item and 'could not answer' pages under /review/, the same data as JSON
under /api/review/, and training started from the page (its own process, never the web worker).

`bot.web.login` has already checked who is asking (a session or the admin token) and the CSRF token of
every state-changing request. Pages are Jinja2 templates (bot/pages/templates, autoescaped); their little
JavaScript is a static file (bot/pages/static), so the Content-Security-Policy allows no inline script.
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.folder.bot_folder import load_intents
from bot.review.desk import ACTIONS, BULK_ACTIONS, ReviewDesk
from bot.review.outcome import Outcome
from bot.review.store import KINDS, SORTS, STATUSES, Filters, confirmed_answers
from bot.retraining import AlreadyRunning, settle_held
from bot.settings import Settings
from bot.web import login
from bot.web.runtime import RUNTIME, Runtime
from bot.web.security import error, read_json

log = logging.getLogger("supportbot.review")
PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
KIND_LABELS = {"low_confidence": "low confidence", "fallback": "fallback", "clarification": "clarification",
               "negative_feedback": "thumbs down", "handoff": "handoff", "audit": "audit sample",
               "shadow": "a retrained model would change it"}


def add_routes(app: web.Application, settings: Settings) -> None:
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(PAGES_DIR / "templates")), autoescape=True,
                               filters={"when": _when, "pct": _pct})
    env.globals["static"] = lambda name: f"/review/static/{name}"
    login.setup(app, settings)
    app.router.add_static("/review/static/", PAGES_DIR / "static", append_version=True)
    r = app.router
    r.add_get("/review", queue_page)
    r.add_get("/review/items/{group_id:\\d+}", item_page)
    r.add_post("/review/items/{group_id:\\d+}/act", act_form)
    r.add_post("/review/actions/{action_id:\\d+}/undo", undo_form)
    r.add_post("/review/bulk", bulk_form)
    r.add_post("/review/bulk/{bulk_id:[0-9a-f]+}/undo", undo_bulk_form)
    r.add_get("/review/clusters", clusters_page)
    r.add_get("/review/try", try_page)
    r.add_post("/review/clusters/accept", accept_form)
    r.add_post("/review/train", train_form)
    r.add_post("/review/retrain/{run_id:\\d+}/{decision:approve|reject}", settle_form)
    r.add_post("/review/proposals/{proposal_id:\\d+}/accept", accept_proposal_form)
    r.add_get("/api/review/queue", queue_api)
    r.add_get("/api/review/items/{group_id:\\d+}", item_api)
    r.add_get("/api/review/turns/{turn_id:\\d+}/context", context_api)
    r.add_post("/api/review/items/{group_id:\\d+}/actions", act_api)
    r.add_post("/api/review/bulk", bulk_api)
    r.add_post("/api/review/actions/{action_id:\\d+}/undo", undo_api)
    r.add_get("/api/review/clusters", clusters_api)
    r.add_get("/api/review/explain", explain_api)
    r.add_post("/api/review/train", train_api)
    r.add_post("/api/review/retrain/{run_id:\\d+}/{decision:approve|reject}", settle_api)
    r.add_get("/api/review/status", status_api)
    r.add_get("/api/review/users", users_api)
    r.add_post("/api/review/users", add_user_api)
    r.add_post("/api/review/users/{name}/remove", remove_user_api)


# shared pieces
def desk(request: web.Request) -> ReviewDesk:
    """The review desk, opened at start on the database thread: call its methods through `Runtime.db`."""
    return request.app[RUNTIME].desk


def filters_from(query) -> Filters:
    try:
        return Filters.from_query(query)
    except ValueError as e:
        raise error(web.HTTPBadRequest, str(e)) from None


async def apply_outcome(rt: Runtime, out: Outcome) -> None:
    """After a decision: the memory of reviewed answers read again on this worker's next turn (the others within
    a second); after an edit of the bot folder, a router that reads intents.yaml again; the knowledge base synced."""
    rt.memory_changed()
    if out.sync_knowledge and rt.knowledge is not None and hasattr(rt.knowledge, "sync"):
        confirmed = await rt.db(confirmed_answers, rt.log.db)
        await asyncio.get_running_loop().run_in_executor(
            rt.pool, functools.partial(rt.knowledge.sync, [rt.folder.knowledge_dir], confirmed=confirmed))
    if out.reload_router and rt.models is not None and rt.models.current is not None:
        model = rt.models.current.model
        rt.models.current = await asyncio.to_thread(rt.build_router, model)


def _trained_at(rt: Runtime) -> float | None:
    """When the serving model version was trained (its metrics.json), or None."""
    from training.registry import ModelRegistry

    registry = ModelRegistry(rt.settings.models_path)
    try:
        version = (rt.models.version if rt.models else None) or registry.current_version()
        metrics = registry.record(version, "metrics") if version else None
    except Exception:  # a damaged registry: the page shows no date
        return None
    if metrics is None:
        return None
    stamp = metrics.get("trained_at", "")
    try:
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


async def status(request: web.Request) -> dict[str, Any]:
    rt = request.app[RUNTIME]
    d = desk(request)
    return {
        "model_version": rt.models.version if rt.models else None,
        "unseen_examples": await rt.db(d.unseen, _trained_at(rt)),
        "training": await rt.retraining.status(),
    }


async def _context(request: web.Request, **extra: Any) -> dict[str, Any]:
    who = request["reviewer"]
    return {"who": who, "csrf": who.csrf, "kinds": KINDS, "kind_labels": KIND_LABELS, "statuses": STATUSES,
            "sorts": SORTS, **extra}


def _outcome_json(out: Outcome) -> dict[str, Any]:
    return asdict(out)


async def _run_action(request: web.Request, group_id: int, body: dict[str, Any]) -> Outcome:
    rt = request.app[RUNTIME]
    who = request["reviewer"]
    action = str(body.get("action", ""))
    if action not in ACTIONS:
        raise error(web.HTTPBadRequest, f"action must be one of {ACTIONS}")
    kwargs = {k: str(body.get(k, "") or "") for k in ("intent", "answer", "title", "body")}
    if action == "correct" and body.get("new_intent"):
        kwargs["intent"] = str(body["new_intent"]).strip()
    try:
        out = await rt.db(lambda: desk(request).act(group_id, action, who.name, **kwargs))
    except LookupError as e:
        raise error(web.HTTPNotFound, str(e)) from None
    except ValueError as e:
        raise error(web.HTTPBadRequest, str(e)) from None
    await apply_outcome(rt, out)
    log.info("review: %s %s item %d", who.name, action, group_id)
    return out


async def _run_undo(request: web.Request, action_id: int) -> Outcome:
    rt = request.app[RUNTIME]
    try:
        out = await rt.db(desk(request).undo, action_id, request["reviewer"].name)
    except LookupError as e:
        raise error(web.HTTPNotFound, str(e)) from None
    except ValueError as e:
        raise error(web.HTTPConflict, str(e)) from None
    await apply_outcome(rt, out)
    return out


async def _run_bulk(request: web.Request, filters: Filters, action: str, intent: str) -> Outcome:
    rt = request.app[RUNTIME]
    if action not in BULK_ACTIONS:
        raise error(web.HTTPBadRequest, f"bulk action must be one of {BULK_ACTIONS}")
    try:
        out = await rt.db(desk(request).bulk, filters, action, request["reviewer"].name, intent)
    except ValueError as e:
        raise error(web.HTTPBadRequest, str(e)) from None
    await apply_outcome(rt, out)
    return out


async def _item(request: web.Request, group_id: int) -> dict[str, Any]:
    rt = request.app[RUNTIME]
    d = desk(request)

    def read() -> dict[str, Any] | None:
        group = d.reviews.group(group_id)
        if group is None:
            return None
        members = d.reviews.members(group_id)
        turn_id = int(request.query.get("turn", group["last_turn_id"]))
        if turn_id not in {m["turn_id"] for m in members} and turn_id != group["last_turn_id"]:
            turn_id = group["last_turn_id"]
        turn = d.reviews.turn(turn_id)
        context = d.reviews.context(turn["conversation_id"], turn_id) if turn else {"turns": [], "more_before": False}
        actions = list(d.reviews.actions(group_id=group_id, limit=50))
        return {"group": group, "members": members, "turn": turn, "context": context, "actions": actions}

    item = await rt.db(read)
    if item is None:
        raise error(web.HTTPNotFound, f"no review item {group_id}")
    return item


_INTENTS_CACHE: dict[str, tuple[tuple[int, int], dict[str, dict[str, str]]]] = {}


def _intents_info(rt: Runtime) -> dict[str, dict[str, str]]:
    """Each intent's answer, route and description, read again whenever intents.yaml changes."""
    file = rt.folder.path / "intents.yaml"
    stat = file.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _INTENTS_CACHE.get(str(file))
    if cached is None or cached[0] != key:
        intents, _ = load_intents(file)
        cached = _INTENTS_CACHE[str(file)] = (key, {n: {"answer": i.answer, "route": i.route,
                                                        "description": i.description}
                                                    for n, i in sorted(intents.items())})
    return cached[1]


def _back(request: web.Request, fallback: str) -> str:
    ref = request.headers.get("Referer", "")
    host = f"{request.scheme}://{request.host}"
    if ref.startswith(host + "/review"):
        return ref[len(host):]
    return fallback


def _with(url: str, **params: Any) -> str:
    base, _, query = url.partition("?")
    from urllib.parse import parse_qsl

    kept = [(k, v) for k, v in parse_qsl(query) if k not in params and k not in ("done", "started", "files", "undo", "bulk",
                                                                                    "bulk_id", "notes")]
    extra = [(k, v) for k, v in params.items() if v not in (None, "")]
    return f"{base}?{urlencode(kept + extra)}"


# pages
async def queue_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    filters = filters_from(request.query)
    page = await _page(request, filters)
    query = filters.query()
    context = await _context(
        request, page=page, filters=filters, query=query, qs=urlencode(query),
        next_url=f"/review?{urlencode({**query, 'cursor': page.next_cursor})}" if page.next_cursor else "",
        intents=_intents_info(rt), bulk_actions=BULK_ACTIONS, status=await status(request),
        flash=_flash(request), routes=("template", "smalltalk", "clarify", "knowledge", "fallback", "handoff"))
    return aiohttp_jinja2.render_template("queue.html", request, context)


async def _page(request: web.Request, filters: Filters) -> Any:
    """A page of the queue, brought up to date first; the suggested order made for the selection."""
    rt = request.app[RUNTIME]
    d = await rt.sync_review()
    suggestion = await rt.suggested_order(filters) if filters.sort == "suggested" else None
    try:
        page = await rt.db(d.reviews.page, filters, request.query.get("cursor") or None, rt.settings.review.page_size,
                           suggestion and suggestion.order)
    except ValueError as e:
        raise error(web.HTTPBadRequest, f"cursor: {e}") from None
    for g in page.groups:  # picked first as a tight cluster far from every intent: perhaps a new one
        g["new_intent_candidate"] = suggestion is not None and g["id"] in suggestion.unseen
    return page


def _flash(request: web.Request) -> dict[str, Any]:
    q = request.query
    return {"done": q.get("done", ""), "started": q.get("started", ""),
            "files": [f for f in q.get("files", "").split(",") if f],
            "undo": q.get("undo", ""), "bulk": q.get("bulk", ""), "bulk_id": q.get("bulk_id", ""),
            "notes": q.get("notes", "")}


async def item_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    group_id = int(request.match_info["group_id"])
    item = await _item(request, group_id)
    filters = filters_from(request.query)
    query = filters.query()
    suggestion = await rt.suggested_order(filters) if filters.sort == "suggested" else None
    order = suggestion and suggestion.order
    following = await rt.db(lambda: [g for g in desk(request).reviews.page(filters, None, 2, order).groups
                                     if g["id"] != group_id][:1])
    context = await _context(
        request, **item, intents=_intents_info(rt), qs=urlencode(query), flash=_flash(request),
        next_item=f"/review/items/{following[0]['id']}?{urlencode(query)}" if following else "",
        oos_label=rt.settings.train.oos_label)
    return aiohttp_jinja2.render_template("item.html", request, context)


async def act_form(request: web.Request) -> web.Response:
    group_id = int(request.match_info["group_id"])
    form = await request.post()
    out = await _run_action(request, group_id, dict(form))
    target = str(form.get("return", "")) or f"/review/items/{group_id}"
    if not target.startswith("/review"):
        target = f"/review/items/{group_id}"
    raise web.HTTPSeeOther(_with(target, done=str(form.get("action")), files=",".join(out.files),
                                 undo=out.action_ids[0] if out.action_ids else "", notes="; ".join(out.notes)[:300]))


async def undo_form(request: web.Request) -> web.Response:
    out = await _run_undo(request, int(request.match_info["action_id"]))
    raise web.HTTPSeeOther(_with(_back(request, "/review"), done="undo", files=",".join(out.files)))


async def bulk_form(request: web.Request) -> web.Response:
    form = await request.post()
    filters = filters_from(form)
    out = await _run_bulk(request, filters, str(form.get("action", "")), str(form.get("intent", "")))
    raise web.HTTPSeeOther(f"/review?{urlencode({**filters.query(), 'bulk': out.groups, 'bulk_id': out.bulk_id, 'done': form.get('action', '')})}")


async def undo_bulk_form(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    out = await rt.db(desk(request).undo_bulk, request.match_info["bulk_id"], request["reviewer"].name)
    await apply_outcome(rt, out)
    raise web.HTTPSeeOther(_with(_back(request, "/review"), done="undo", bulk=out.groups))


async def clusters_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    since, findings = await _findings(request)
    context = await _context(request, findings=findings, since=time.strftime("%Y-%m-%d", time.gmtime(since)),
                             intents=_intents_info(rt), flash=_flash(request), proposals=await _proposals(rt))
    return aiohttp_jinja2.render_template("clusters.html", request, context)


async def try_page(request: web.Request) -> web.Response:
    """Type a message and see why the bot answers it as it does (nothing is logged)."""
    message = request.query.get("q", "").strip()
    explained = await _explain(request, message) if message else None
    return aiohttp_jinja2.render_template("try.html", request, await _context(request, message=message,
                                                                               explained=explained))


async def _explain(request: web.Request, message: str) -> dict[str, Any]:
    from bot.dialogue.explain import explain

    rt = request.app[RUNTIME]
    if len(message) > rt.settings.server.max_message_chars:
        raise error(web.HTTPRequestEntityTooLarge, f"message longer than {rt.settings.server.max_message_chars} characters")
    router = rt.models.current
    if router is None:
        raise error(web.HTTPServiceUnavailable, "no model is serving yet")
    kb = rt.knowledge

    async def candidates(text: str):
        return await asyncio.get_running_loop().run_in_executor(rt.pool, kb.search, text, 5) if kb else []

    return await explain(router, message, candidates, kb.threshold if kb else None)


async def _proposals(rt: Runtime) -> list[Any]:
    from training.store import ProposalStore

    return await rt.db(lambda: ProposalStore(rt.log.db).proposals("open"))


async def _findings(request: web.Request):
    from bot.review import unanswered

    rt = request.app[RUNTIME]
    r = rt.settings.review
    value = request.query.get("since", "")
    try:
        since = calendar.timegm(time.strptime(value, "%Y-%m-%d")) if value else time.time() - 30 * 86400
    except ValueError:
        raise error(web.HTTPBadRequest, "since: expected a date like 2026-12-01") from None
    d = desk(request)
    await rt.sync_review()
    messages = await rt.db(d.reviews.unanswered, since, r.cluster_max)
    examples = unanswered.cluster_examples(rt.folder, rt.settings.server.smalltalk_intents)
    findings = await asyncio.to_thread(unanswered.find, messages, unanswered.encoder(rt.knowledge), examples,
                                       min_size=r.cluster_min_size, similarity=r.intent_similarity,
                                       distance=r.cluster_distance)
    return since, findings


async def accept_form(request: web.Request) -> web.Response:
    form = await request.post()
    out = await _accept(request, dict(form), form.getall("member", []))
    raise web.HTTPSeeOther(_with("/review/clusters", since=str(form.get("since", "")), done="accept",
                                 files=",".join(out.files), notes=f"{out.examples_added} examples added"))


async def _accept(request: web.Request, body: dict[str, Any], members: list[str]) -> Outcome:
    """A verdict accepted: the messages become examples of an existing or a new intent, or out-of-scope
    examples; 'the knowledge base lacks an article' writes the article from the page's form."""
    rt = request.app[RUNTIME]
    d = desk(request)
    verdict = str(body.get("verdict", ""))
    who = request["reviewer"].name
    turns = []
    for m in members:
        group_id, _, turn_id = str(m).partition(":")
        if group_id.isdigit() and turn_id.isdigit():
            turns.append((int(group_id), int(turn_id)))
    if not turns:
        raise error(web.HTTPBadRequest, "no messages chosen")

    def texts() -> list[tuple[str, int]]:
        out = []
        for group_id, turn_id in turns:
            g = d.reviews.group(group_id)
            if g is not None:
                out.append((g["text"], turn_id))
        return out

    name = str(body.get("new_name" if verdict == "new_intent" else "intent", "")).strip()
    try:
        if verdict in ("existing_intent", "new_intent"):
            known = d.intents()
            new = name not in known
            if verdict == "existing_intent" and new:
                raise ValueError(f"no intent {name!r}")
            out = await rt.db(lambda: d.label_texts(texts(), name, "review-cluster", who, new_intent=new))
            await rt.db(lambda: [d.reviews.set_status(g, "done", "cluster", who) for g, _ in turns])
        elif verdict == "out_of_scope":
            out = await rt.db(lambda: d.label_texts(texts(), rt.settings.train.oos_label, "review-cluster", who))
            await rt.db(lambda: [d.reviews.set_status(g, "done", "out_of_scope", who) for g, _ in turns])
        elif verdict == "kb_missing":
            out = await rt.db(lambda: d.act(turns[0][0], "article", who, title=str(body.get("title", "")),
                                            body=str(body.get("body", ""))))
        else:
            raise ValueError("verdict must be one of existing_intent, new_intent, kb_missing, out_of_scope")
    except ValueError as e:
        raise error(web.HTTPBadRequest, str(e)) from None
    await apply_outcome(rt, out)
    return out


async def accept_proposal_form(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    form = await request.post()
    try:
        out = await rt.db(desk(request).proposals.accept, int(request.match_info["proposal_id"]),
                          str(form.get("name", "")), request["reviewer"].name)
    except ValueError as e:
        raise error(web.HTTPBadRequest, str(e)) from None
    await apply_outcome(rt, out)
    raise web.HTTPSeeOther(_with("/review/clusters", done="accept", files=",".join(out.files),
                                 notes=f"{out.examples_added} examples labelled", undo=out.action_ids[0]))


async def train_form(request: web.Request) -> web.Response:
    pid = await _start_training(request)  # started, not done: the queue's header shows it running, then its verdict
    raise web.HTTPSeeOther(_with(_back(request, "/review"), started=f"a gated retrain (pid {pid})"))


async def _start_training(request: web.Request) -> int:
    """A gated retrain in its own process (bot.retraining, as the schedule's, so one never overlaps another); the
    model watch serves the version if the gate promotes it."""
    who = login.require_admin(request)
    try:
        pid = await request.app[RUNTIME].retraining.trigger("review")
    except AlreadyRunning as e:
        raise error(web.HTTPConflict, str(e)) from None
    log.info("review: retrain started by %s", who.name)
    return pid


async def settle_form(request: web.Request) -> web.Response:
    said = await _settle(request)
    raise web.HTTPSeeOther(_with("/review", done=f"{request.match_info['decision']} the held candidate", notes=said))


async def _settle(request: web.Request) -> str:
    """An admin's approval or rejection of a candidate the gate held (bot.retraining.settle_held)."""
    who = login.require_admin(request)
    try:
        said = await asyncio.to_thread(settle_held, request.app[RUNTIME].folder, int(request.match_info["run_id"]),
                                       request.match_info["decision"] == "approve", who.name)
    except ValueError as e:
        raise error(web.HTTPConflict, str(e)) from None
    log.info("review: held retrain candidate %sd by %s", request.match_info["decision"], who.name)
    return said


# JSON API
async def queue_api(request: web.Request) -> web.Response:
    page = await _page(request, filters_from(request.query))
    return web.json_response({"items": page.groups, "next_cursor": page.next_cursor, "counts": page.counts})


async def item_api(request: web.Request) -> web.Response:
    return web.json_response(await _item(request, int(request.match_info["group_id"])))


async def context_api(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    d = desk(request)
    turn_id = int(request.match_info["turn_id"])
    turn = await rt.db(d.reviews.turn, turn_id)
    # a turn is visible only through the queue: it must belong to a review group
    if turn is None or not await rt.db(d.reviews.in_queue, turn["conversation_id"]):
        raise error(web.HTTPNotFound, f"no reviewable turn {turn_id}")
    before = int(request.query.get("before", turn_id))
    ctx = await rt.db(d.reviews.context, turn["conversation_id"], before, 10, 0)
    ctx["turns"] = [t for t in ctx["turns"] if t["turn_id"] < before]
    return web.json_response(ctx)


async def act_api(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[RUNTIME].settings.server.max_body_bytes)
    return web.json_response(_outcome_json(await _run_action(request, int(request.match_info["group_id"]), body)))


async def bulk_api(request: web.Request) -> web.Response:
    body = await read_json(request, request.app[RUNTIME].settings.server.max_body_bytes)
    filters = filters_from({k: str(v) for k, v in (body.get("filters") or {}).items()})
    out = await _run_bulk(request, filters, str(body.get("action", "")), str(body.get("intent", "") or ""))
    return web.json_response(_outcome_json(out))


async def undo_api(request: web.Request) -> web.Response:
    return web.json_response(_outcome_json(await _run_undo(request, int(request.match_info["action_id"]))))


async def clusters_api(request: web.Request) -> web.Response:
    since, findings = await _findings(request)
    return web.json_response({"since": since, "clusters": [asdict(f) | {"verdict_text": f.verdict_text} for f in findings]})


async def train_api(request: web.Request) -> web.Response:
    pid = await _start_training(request)
    return web.json_response({"started": True, "pid": pid}, status=202)


async def settle_api(request: web.Request) -> web.Response:
    return web.json_response({"done": await _settle(request)})


async def explain_api(request: web.Request) -> web.Response:
    message = request.query.get("q", "").strip()
    if not message:
        raise error(web.HTTPBadRequest, "q: the message to explain")
    return web.json_response(await _explain(request, message))


async def status_api(request: web.Request) -> web.Response:
    return web.json_response(await status(request))


async def users_api(request: web.Request) -> web.Response:
    login.require_admin(request)
    rt = request.app[RUNTIME]
    accounts = await rt.db(login.accounts(request).list)
    return web.json_response({"users": [{"name": a.name, "role": a.role, "created": a.created} for a in accounts]})


async def add_user_api(request: web.Request) -> web.Response:
    """Admin: create an account ({name, role, password}); the password is hashed, never logged or returned."""
    who = login.require_admin(request)
    rt = request.app[RUNTIME]
    body = await read_json(request, rt.settings.server.max_body_bytes)
    try:
        account = await rt.db(login.accounts(request).add, str(body.get("name", "")), str(body.get("role", "reviewer")),
                              str(body.get("password", "")))
    except ValueError as e:
        raise error(web.HTTPBadRequest, str(e)) from None
    log.info("review: %s added account %s (%s)", who.name, account.name, account.role)
    return web.json_response({"name": account.name, "role": account.role, "created": account.created})


async def remove_user_api(request: web.Request) -> web.Response:
    """Admin: delete an account; its sessions end at once."""
    who = login.require_admin(request)
    rt = request.app[RUNTIME]
    name = request.match_info["name"]
    try:
        await rt.db(login.accounts(request).remove, name)
    except ValueError as e:
        raise error(web.HTTPNotFound, str(e)) from None
    log.info("review: %s removed account %s", who.name, name)
    return web.json_response({"removed": name})


def _when(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(value)) if value else ""


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * float(value):.0f} %"
