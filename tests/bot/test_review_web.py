"""The review workspace over HTTP: login, sessions, CSRF, roles, security headers, escaping, actions that
edit the bot folder and reload the router, the JSON API."""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.review.accounts import AccountStore
from bot.folder.bot_folder import load_intents
from core.sqlite import connect

PASSWORD = "correct horse battery"
XSS = ("<script>alert(1)</script> I want a refund for my broken oak table that arrived last week",
       "<img src=x onerror=alert(1)> I want a refund for my broken oak lamp that arrived last week",
       "<img src=x onerror=alert(1)> I want a refund for my broken oak chair that arrived last week")


def users(tmp_path, *accounts):
    store = AccountStore(connect(tmp_path / "state" / "supportbot.db"))
    for name, role in accounts:
        store.add(name, role, PASSWORD)
    return store


def csrf_of(html: str) -> str:
    return re.search(r'name="_csrf" value="([^"]+)"', html).group(1)


async def login(client, name="alice", password=PASSWORD, next_="/review"):
    page = await client.get("/review/login")
    return await client.post("/review/login", data={"_csrf": csrf_of(await page.text()), "name": name,
                                                    "password": password, "next": next_}, allow_redirects=False)


async def page_csrf(client, path="/review") -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return re.search(r'data-csrf="([^"]+)"', await response.text()).group(1)


async def chat(client, message):
    response = await client.post("/api/chat", json={"message": message})
    assert response.status == 200
    return await response.json()


@pytest.fixture
async def client(make_client, tmp_path):
    users(tmp_path, ("alice", "reviewer"), ("root", "admin"))
    return await make_client("review.login_attempts=3", "review.address_attempts=5")


async def test_without_a_session_pages_redirect_to_login_and_the_api_answers_401(client):
    response = await client.get("/review?kind=fallback", allow_redirects=False)
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith("/review/login?next=") and "kind" in location and "fallback" in location
    api = await client.get("/api/review/queue")
    assert api.status == 401 and "items" not in await api.json()
    item = await client.get("/api/review/items/1")
    assert item.status == 401


async def test_review_pages_send_a_strict_csp_nosniff_and_same_origin_referrers(client):
    response = await client.get("/review/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "<script src=\"/review/static/review.js" in await response.text()
    assert "<script>" not in await response.text()


async def test_login_sets_an_httponly_strict_cookie_and_logout_ends_the_session(client):
    response = await login(client)
    assert response.status == 303 and response.headers["Location"] == "/review"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=43200" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is set
    assert PASSWORD not in cookie
    csrf = await page_csrf(client)
    out = await client.post("/review/logout", data={"_csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    assert (await client.get("/review", allow_redirects=False)).status == 303
    assert (await client.get("/api/review/queue")).status == 401


async def test_an_expired_session_is_refused(client, monkeypatch):
    await login(client)
    assert (await client.get("/review", allow_redirects=False)).status == 200
    from bot.web import login as login_module

    later = time.time() + 13 * 3600
    monkeypatch.setattr(login_module.time, "time", lambda: later)
    assert (await client.get("/review", allow_redirects=False)).status == 303
    assert (await client.get("/api/review/queue")).status == 401


async def test_a_new_password_ends_the_accounts_sessions(client, tmp_path):
    await login(client)
    AccountStore(connect(tmp_path / "state" / "supportbot.db")).set_password("alice", "another long password")
    assert (await client.get("/api/review/queue")).status == 401


async def test_wrong_passwords_are_limited_per_account_and_per_address(client):
    for _ in range(3):
        assert (await login(client, password="wrong password")).status == 401
    locked = await login(client)  # the right password, but the account is locked for the window
    assert locked.status == 429 and "Too many failed attempts" in await locked.text()
    assert int(locked.headers["Retry-After"]) > 0
    assert (await login(client, "root", "wrong password")).status == 401
    assert (await login(client, "nobody", "wrong password")).status == 401
    assert (await login(client, "root")).status == 429  # this address has used its 5 failures


async def test_wrong_passwords_sent_at_once_get_no_more_checks_than_the_limit(client, monkeypatch):
    """30 wrong guesses on one account at the same moment: each attempt is counted before its password is checked,
    so only login_attempts (3) are checked and the rest get 429; it used to be 30 checks, all 401."""
    import bot.web.login as login_module

    checked = []
    real_check = login_module.check_password
    monkeypatch.setattr(login_module, "check_password", lambda *args: checked.append(1) or real_check(*args))
    page = await client.get("/review/login")
    form = {"_csrf": csrf_of(await page.text()), "name": "alice", "password": "wrong password", "next": "/review"}
    statuses = await asyncio.gather(*(client.post("/review/login", data=form, allow_redirects=False)
                                      for _ in range(30)))
    assert len(checked) == 3
    assert sorted(r.status for r in statuses) == [401] * 3 + [429] * 27
    assert (await login(client)).status == 429  # the right password too, for the rest of the window


async def test_two_workers_count_failed_logins_together(make_client, tmp_path, monkeypatch):
    """Two workers of `serve --workers 2` (two apps on one state folder): guesses alternating between them, and
    then sent to both at once, get login_attempts (3) password checks in all, not 3 each."""
    import bot.web.login as login_module

    users(tmp_path, ("alice", "reviewer"))
    workers = [await make_client("review.login_attempts=3", "review.address_attempts=50", worker=n) for n in (0, 1)]
    checked = []
    real_check = login_module.check_password
    monkeypatch.setattr(login_module, "check_password", lambda *args: checked.append(1) or real_check(*args))
    statuses = [(await login(workers[n % 2], password="wrong password")).status for n in range(4)]
    assert statuses == [401, 401, 401, 429] and len(checked) == 3
    assert (await login(workers[1])).status == 429  # the right password too, on either worker
    pages = [await w.get("/review/login") for w in workers]
    forms = [{"_csrf": csrf_of(await p.text()), "name": "bob", "password": "wrong", "next": "/review"} for p in pages]
    at_once = await asyncio.gather(*(workers[n % 2].post("/review/login", data=forms[n % 2], allow_redirects=False)
                                     for n in range(20)))
    assert sorted(r.status for r in at_once) == [401] * 3 + [429] * 17 and len(checked) == 6


async def test_a_right_password_is_not_counted_against_the_address(make_client, tmp_path):
    users(tmp_path, ("alice", "reviewer"))
    client = await make_client("review.address_attempts=2")
    for _ in range(3):  # three right logins from one address: none of them is a failure
        assert (await login(client)).status == 303
    assert (await login(client, password="wrong password")).status == 401


async def test_behind_a_trusted_proxy_failed_logins_are_counted_per_forwarded_client(make_client, tmp_path):
    users(tmp_path, ("alice", "reviewer"), ("root", "admin"))
    client = await make_client("review.address_attempts=2", 'server.trusted_proxies=["127.0.0.1/32"]')

    async def attempt(address, name, password):
        page = await client.get("/review/login", headers={"X-Forwarded-For": address})
        form = {"_csrf": csrf_of(await page.text()), "name": name, "password": password, "next": "/review"}
        return await client.post("/review/login", data=form, headers={"X-Forwarded-For": address},
                                 allow_redirects=False)

    for name in ("nobody", "someone"):
        assert (await attempt("203.0.113.7", name, "wrong password")).status == 401
    assert (await attempt("203.0.113.7", "root", PASSWORD)).status == 429  # that client used its failures
    assert (await attempt("198.51.100.9", "root", PASSWORD)).status == 303  # another one behind the same proxy


async def test_a_login_form_without_its_csrf_token_is_refused(client):
    response = await client.post("/review/login", data={"name": "alice", "password": PASSWORD}, allow_redirects=False)
    assert response.status == 403


async def test_state_changing_requests_need_the_csrf_token(client):
    await chat(client, "blah blah unknown")
    await login(client)
    csrf = await page_csrf(client)
    gid = (await (await client.get("/api/review/queue")).json())["items"][0]["id"]
    for data in ({"action": "ignore"}, {"action": "ignore", "_csrf": "forged"}):
        refused = await client.post(f"/review/items/{gid}/act", data=data, allow_redirects=False)
        assert refused.status == 403
    api = await client.post(f"/api/review/items/{gid}/actions", json={"action": "ignore"})
    assert api.status == 403
    assert (await (await client.get(f"/api/review/items/{gid}")).json())["group"]["status"] == "new"
    ok = await client.post(f"/review/items/{gid}/act", data={"action": "ignore", "_csrf": csrf}, allow_redirects=False)
    assert ok.status == 303
    assert (await (await client.get(f"/api/review/items/{gid}")).json())["group"]["status"] == "ignored"


async def test_a_reviewer_is_refused_admin_actions_and_the_admin_token_works(client):
    await login(client)
    csrf = await page_csrf(client)
    assert (await client.post("/api/review/train", headers={"X-CSRF-Token": csrf})).status == 403
    assert (await client.get("/api/review/users")).status == 403
    queue = await client.get("/review")
    assert "Retrain (gated)" not in await queue.text()
    client.session.cookie_jar.clear()
    admin = {"Authorization": "Bearer test-admin-token"}
    users_ = await client.get("/api/review/users", headers=admin)
    assert users_.status == 200
    assert {u["name"]: u["role"] for u in (await users_.json())["users"]} == {"alice": "reviewer", "root": "admin"}
    assert "password" not in str(await users_.json())
    assert (await client.get("/api/review/users", headers={"Authorization": "Bearer wrong"})).status == 401
    added = await client.post("/api/review/users", headers=admin, json={"name": "bo", "role": "reviewer",
                                                                       "password": "bo's long password"})
    assert added.status == 200 and "password" not in await added.text()
    assert (await client.post("/api/review/users/bo/remove", headers=admin)).status == 200
    assert (await client.post("/api/review/users/bo/remove", headers=admin)).status == 404


async def test_a_reviewer_may_not_manage_accounts(client):
    await login(client)
    csrf = await page_csrf(client)
    refused = await client.post("/api/review/users", headers={"X-CSRF-Token": csrf},
                                json={"name": "mallory", "role": "admin", "password": "a long password"})
    assert refused.status == 403
    assert (await client.post("/api/review/users/root/remove", headers={"X-CSRF-Token": csrf})).status == 403


async def test_customer_markup_renders_as_text_in_the_queue_item_and_clusters(client):
    for message in XSS:
        await chat(client, message)
    await login(client)
    queue = await (await client.get("/review")).text()
    item_id = re.search(r'href="/review/items/(\d+)', queue).group(1)
    item = await (await client.get(f"/review/items/{item_id}")).text()
    clusters = await client.get("/review/clusters")
    assert clusters.status == 200
    clusters = await clusters.text()
    assert "refund" in clusters  # the three messages form a cluster
    for html in (queue, item, clusters):
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;img src=x onerror=alert(" in html or "&lt;script&gt;alert(1)" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in queue


async def test_correcting_to_a_new_intent_with_an_answer_edits_intents_yaml_and_the_router_uses_it_at_once(
        client, tmp_path):
    first = await chat(client, "do you sell gift cards")
    assert first["route"] == "fallback"
    await client.post("/api/feedback", json={"conversation_id": first["conversation_id"], "token": first["token"],
                                             "turn_id": first["turn_id"], "rating": "down", "comment": "useless"})
    await login(client)
    queue = await (await client.get("/review?kind=negative_feedback")).text()
    gid = re.search(r'href="/review/items/(\d+)', queue).group(1)
    item = await (await client.get(f"/review/items/{gid}")).text()
    assert "useless" in item and "fallback" in item
    csrf = await page_csrf(client)
    done = await client.post(f"/review/items/{gid}/act", allow_redirects=False, data={
        "_csrf": csrf, "action": "correct", "new_intent": "gift_cards", "intent": "greet",
        "answer": "Yes: gift cards from 10 to 200 euros."})
    assert done.status == 303 and "files=intents.yaml" in done.headers["Location"]
    page = await (await client.get(done.headers["Location"])).text()
    assert "intents.yaml" in page and "Undo" in page
    intents, _ = load_intents(tmp_path / "bot" / "intents.yaml")
    assert intents["gift_cards"].answer == "Yes: gift cards from 10 to 200 euros."
    picked = await chat(client, "/gift_cards")  # the quick-reply form of the intent: no model needed
    assert picked["answer"] == "Yes: gift cards from 10 to 200 euros."
    api = await (await client.get(f"/api/review/items/{gid}")).json()
    assert api["group"]["status"] == "done" and api["actions"][0]["actor"] == "alice"
    from training.store import ExampleStore

    stored = ExampleStore(connect(tmp_path / "state" / "supportbot.db")).find("do you sell gift cards")
    assert (stored.intent, stored.source, stored.provenance) == ("gift_cards", "review", f"turn:{first['turn_id']}")


async def test_bulk_over_the_api_acts_on_the_filtered_selection(client):
    for message in ("zzz one", "zzz two", "zzz three", "hello"):
        await chat(client, message)
    admin = {"Authorization": "Bearer test-admin-token"}
    queue = await (await client.get("/api/review/queue", headers=admin)).json()
    assert len(queue["items"]) == 3
    out = await client.post("/api/review/bulk", headers=admin,
                            json={"filters": {"q": "zzz"}, "action": "out_of_scope"})
    body = await out.json()
    assert out.status == 200 and body["groups"] == 3 and body["examples_added"] == 3
    assert (await (await client.get("/api/review/queue", headers=admin)).json())["items"] == []
    undo = await client.post(f"/api/review/actions/{body['action_ids'][0]}/undo", headers=admin)
    assert undo.status == 200
    assert len((await (await client.get("/api/review/queue", headers=admin)).json())["items"]) == 1


async def test_a_long_conversation_loads_its_earlier_turns_on_request(client):
    first = await chat(client, "hello")
    convo = {"conversation_id": first["conversation_id"], "token": first["token"]}
    for i in range(11):
        reply = await client.post("/api/chat", json={"message": "hello again", **convo})
        assert reply.status == 200
    last = await client.post("/api/chat", json={"message": "zzz something unknown", **convo})
    last = await last.json()
    admin = {"Authorization": "Bearer test-admin-token"}
    gid = (await (await client.get("/api/review/queue", headers=admin)).json())["items"][0]["id"]
    item = await (await client.get(f"/api/review/items/{gid}", headers=admin)).json()
    shown = item["context"]["turns"]
    assert len(shown) == 6 and shown[-1]["turn_id"] == last["turn_id"] and item["context"]["more_before"]
    earlier = await (await client.get(f"/api/review/turns/{shown[0]['turn_id']}/context?before={shown[0]['turn_id']}",
                                      headers=admin)).json()
    assert [t["turn_id"] for t in earlier["turns"]] == list(range(first["turn_id"], shown[0]["turn_id"]))
    assert earlier["more_before"] is False
    other = await chat(client, "hello there")  # small talk: never flagged, never shown
    assert (await client.get(f"/api/review/turns/{other['turn_id']}/context", headers=admin)).status == 404


async def test_an_import_proposal_is_accepted_from_the_clusters_page(client, tmp_path):
    from training.store import Example, ExampleStore, ProposalStore

    db = connect(tmp_path / "state" / "supportbot.db")
    store = ExampleStore(db)
    texts = ["<i>gift</i> wrap my order", "can you gift wrap it", "gift wrapping please"]
    store.add(Example(t, None, source="transcript") for t in texts)
    ids = list(store.ids_for(texts).values())
    [proposal_id] = ProposalStore(db).replace_open([("gift_wrap", ids, texts)])
    await login(client)
    page = await (await client.get("/review/clusters")).text()
    assert "gift_wrap" in page and "&lt;i&gt;gift&lt;/i&gt; wrap my order" in page and "<i>gift" not in page
    csrf = await page_csrf(client, "/review/clusters")
    done = await client.post(f"/review/proposals/{proposal_id}/accept", data={"_csrf": csrf, "name": "gift_wrapping"},
                             allow_redirects=False)
    assert done.status == 303 and "intents.yaml" in done.headers["Location"]
    assert {store.find(t).intent for t in texts} == {"gift_wrapping"}
    assert load_intents(tmp_path / "bot" / "intents.yaml")[0]["gift_wrapping"].examples[1] == "can you gift wrap it"
    again = await client.post(f"/review/proposals/{proposal_id}/accept", data={"_csrf": csrf, "name": "x_y"},
                              allow_redirects=False)
    assert again.status == 400
    undo = parse_qs(urlsplit(done.headers["Location"]).query)["undo"][0]  # the flash offers to undo it
    undone = await client.post(f"/review/actions/{undo}/undo", data={"_csrf": csrf}, allow_redirects=False)
    assert undone.status == 303 and "gift_wrapping" not in load_intents(tmp_path / "bot" / "intents.yaml")[0]
    assert {store.find(t).intent for t in texts} == {None} and ProposalStore(db).get(proposal_id).status == "open"


@pytest.mark.integration
async def test_a_retrain_the_run_log_shows_running_counts_here_too(client, tmp_path):
    """Another worker's retrain (or a `run_bot.py retrain`): this worker shows it running and will not start one."""
    import subprocess
    import sys

    from training.runs import RunLog

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        runs = RunLog(connect(tmp_path / "state" / "supportbot.db"))
        runs.db.execute("update retrain_runs set pid = ? where id = ?", [other.pid, runs.start("schedule")])
        admin = {"Authorization": "Bearer test-admin-token"}
        training = (await (await client.get("/api/review/status", headers=admin)).json())["training"]
        assert (training["running"], training["pid"]) == (True, other.pid)
        refused = await client.post("/api/review/train", headers=admin)
        assert refused.status == 409 and str(other.pid) in (await refused.json())["error"]
        assert (await client.post("/admin/retrain", headers=admin)).status == 409  # the same status, every path
        assert (await (await client.get("/admin/retrain", headers=admin)).json())["schedule"]["pid"] == other.pid
        other.kill()
        other.wait()
        training = (await (await client.get("/api/review/status", headers=admin)).json())["training"]
        assert training["running"] is False and training["last_run"]["outcome"] == "killed"
    finally:
        other.kill()
        other.wait()


async def test_a_held_candidate_is_shown_with_its_changed_answers_and_an_admin_approves_it(client, tmp_path):
    import json

    from training.registry import ModelRegistry
    from training.runs import RunLog

    models = tmp_path / "state" / "models"
    serving, candidate = "20260101T000000-aaaa0000", "20260102T000000-bbbb0000"
    for version in (serving, candidate):
        (models / version).mkdir(parents=True)
        (models / version / "VERSION").write_text(version)
    ModelRegistry(models).promote(serving)
    (models / candidate / "gate.json").write_text(json.dumps({
        "parent": serving, "compared": "compared on 4 in-scope and 1 out-of-scope examples",
        "reasons": ["held for approval: the gate had 4 in-scope examples, too few to tell"],
        "unconfirmed": [{"turn_id": 7, "text": "where is my order <b>now</b>", "serving": "order_status",
                         "candidate": "pre_order"}]}))
    runs = RunLog(connect(tmp_path / "state" / "supportbot.db"))
    run = runs.start("review")
    runs.finish(run, "held", candidate, "warm", {}, "compared on 4 in-scope and 1 out-of-scope examples; held")

    assert (await login(client, "alice")).status == 303
    page = await (await client.get("/review")).text()
    assert "A retrained model waits for approval" in page and "compared on 4 in-scope and 1 out-of-scope" in page
    assert "where is my order &lt;b&gt;now&lt;/b&gt;" in page and "pre_order" in page  # the change, escaped
    assert "An admin approves or rejects it." in page and "/approve" not in page  # a reviewer cannot approve
    csrf = await page_csrf(client)
    refused = await client.post(f"/api/review/retrain/{run}/approve", headers={"X-CSRF-Token": csrf})
    assert refused.status == 403 and ModelRegistry(models).current_version() == serving

    await client.post("/review/logout", data={"_csrf": csrf})
    assert (await login(client, "root")).status == 303
    page = await (await client.get("/review")).text()
    approve = re.search(rf'action="(/review/retrain/{run}/approve)"', page).group(1)
    done = await client.post(approve, data={"_csrf": csrf_of(page)}, allow_redirects=False)
    assert done.status == 303 and ModelRegistry(models).current_version() == candidate
    assert runs.run(run)["outcome"] == "approved" and "approved by root" in runs.run(run)["detail"]
    again = await client.post(f"/api/review/retrain/{run}/reject", headers={"X-CSRF-Token": await page_csrf(client)})
    assert again.status == 409 and "not waiting for approval (it was approved)" in (await again.json())["error"]


async def test_try_it_explains_a_decision_with_every_signal_and_its_threshold(client):
    assert (await login(client, "alice")).status == 303
    page = await (await client.get("/review/try", params={"q": "how long does shipping take <b>now</b>"})).text()
    assert "Decision: knowledge" in page and "Rule: no confident intent; the knowledge base is confident" in page
    assert "out-of-scope score (max_prob)" in page and "refused" in page  # the double's 0.2 below its 0.5
    assert "how long does shipping take &lt;b&gt;now&lt;/b&gt;" in page  # the message, escaped
    assert "Shipping" in page and "an answer needs relevance 0.500" in page and "cosine lead" in page
    explained = await (await client.get("/api/review/explain", params={"q": "Where is my order AB12345?"})).json()
    assert (explained["route"], explained["intent"]) == ("template", "track_order")
    assert explained["intent_model"]["score"] == {"name": "max_prob", "value": None, "threshold": 0.5, "answered": True}
    assert explained["reply"] == "Order AB12345 is on its way."
    assert (await client.get("/api/review/explain")).status == 400
    assert (await client.get("/api/review/explain", params={"q": "x" * 3000})).status == 413
    # a logged turn's page links to its explanation
    await chat(client, "blorp & quux?")
    queue = await (await client.get("/api/review/queue", params={"status": ""})).json()
    [item] = [g for g in queue["items"] if g["text"] == "blorp & quux?"]
    page = await (await client.get(f"/review/items/{item['id']}")).text()
    assert 'href="/review/try?q=blorp%20%26%20quux%3F"' in page
    # nothing was logged: the queue has no turn of the explained messages
    queue = await (await client.get("/api/review/queue", params={"status": ""})).json()
    assert not [g for g in queue["items"] if "shipping" in str(g).lower() or "AB12345" in str(g)]
