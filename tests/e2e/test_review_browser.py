"""The review loop in a real headless Chromium, against a real demo bot (the packaged MiniLM):

a customer rates an answer down with a comment in the widget; it reaches the queue; a reviewer logs in,
corrects the intent and writes a better answer; the example is stored and intents.yaml changed; after
training (started through the review API, in its own process) and the reload, the same message gets the
new answer. Screenshots of the queue, the item and the clusters view (unanswered-clusters.png) go to $SUPPORTBOT_ARTIFACTS, else
test-artifacts/.

The bot runs from a copy of the demo bot folder (the test edits its intents.yaml) and starts from a copy of
the `sqlite_demo_bot` fixture's trained state, so it trains once more per engine, not twice. It runs on that
SQLite file with one worker, then on PostgreSQL with `serve --workers 2` (the state moved there by `db copy`): the
browser's connections and each API call of the test (a new connection each) go to whichever worker the kernel
picks, the retrain's outcome is read from the shared run log, and the promoted version must reach both workers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.bots import ROOT, copy_state, query
from tests.support.browser import HostSite, launch
from tests.support.ports import free_port
from tests.support.servers import serving
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

TIMEOUT_MS = 20_000
TRAIN_TIMEOUT_S = 1800
MESSAGE = "i got charged twice"  # the demo model answers it with payment_failed's declined-payment answer
WRONG_INTENT = "payment_failed"
RIGHT_INTENT = "double_charge"  # a new intent the reviewer creates
NEW_ANSWER = "Sorry! A second charge is usually a card hold that drops off within 5 working days; if not, we refund it."
COMMENT = "I was <b>charged twice</b>, my payment did not fail"
PASSWORD = "a reviewer's password"
REVIEWER = "e2e-reviewer"
UNANSWERED = ("what is the weather like tomorrow", "will it rain tomorrow", "what's the weather forecast",
              "is it sunny tomorrow", "do you sell concert tickets", "can I buy theatre tickets here",
              "do you have tickets for the football")


class ReviewBot:
    def __init__(self, url: str, folder: Path, state: Path, token: str, origin: str, database: str, workers: int):
        self.url, self.folder, self.state, self.token, self.origin = url, folder, state, token, origin
        self.database, self.workers = database, workers  # the SQLite file's path or the PostgreSQL URL

    def api(self, method: str, path: str, body: dict | None = None, admin: bool = False) -> dict:
        headers = {"Content-Type": "application/json"}
        if admin:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(urllib.request.Request(self.url + path, data, headers, method=method),
                                    timeout=30) as r:
            return json.load(r)

    def serving_everywhere(self, version: str) -> bool:
        """Whether every worker serves a version other than `version` (each probe on a new connection, which
        the kernel gives to any worker)."""
        seen = {}
        for _ in range(20 * self.workers):
            ready = self.api("GET", "/readyz")
            seen[ready.get("worker")] = ready["model_version"]
            if len(seen) == self.workers:
                break
        return len(seen) == self.workers and version not in seen.values()


@pytest.fixture(scope="module", params=["sqlite", "postgres-2workers"])
def review_bot(request, sqlite_demo_bot, tmp_path_factory):
    base = tmp_path_factory.mktemp("review-bot")
    folder, state = base / "bot", base / "state"
    shutil.copytree(ROOT / "examples" / "demo_store", folder)
    state.mkdir()
    copy_state(sqlite_demo_bot.state_dir, state)
    # the loop is under test, not the runtime (test_onnx_runtime.py): the retrain skips the ONNX export and, like
    # the sqlite_demo_bot fixture's training, the small-data refit (a new intent's one example is never held out)
    common = ["--bot", str(folder), "--set", f"state_dir={json.dumps(str(state))}", "--set", "train.onnx=false",
              "--set", "train.refit_below=0"]
    database, workers = str(state / "supportbot.db"), 1
    if request.param == "postgres-2workers":
        from tests.support.postgres import new_database

        database, workers = new_database(request.getfixturevalue("postgres_server_url"), "review_e2e"), 2
        subprocess.run([sys.executable, str(ROOT / "run_bot.py"), "db", "copy", "--to", database, *common],
                       check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        (state / "supportbot.db").rename(state / "copied-to-postgres.db")
        common += ["--set", f"database.url={json.dumps(database)}"]
    subprocess.run([sys.executable, str(ROOT / "run_bot.py"), "users", "add", REVIEWER, "--role", "reviewer",
                    "--password-stdin", *common], input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    port, origin = free_port(), f"http://127.0.0.1:{free_port()}"
    token = "review-e2e-token"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SUPPORTBOT_ADMIN_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(ROOT / "run_bot.py"), "serve", "--port", str(port), "--workers", str(workers),
               *common, "--set", f'server.allowed_origins=["{origin}"]', "--set", "server.rate_limit=200",
               "--set", "server.rate_burst=400", "--set", "server.watch_interval=1"]
    with serving(command, url, base / "server.log", 600, workers, cwd=base, env=env):
        yield ReviewBot(url, folder, state, token, origin, database, workers)


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("SUPPORTBOT_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_thumbs_down_to_review_to_training_to_a_better_answer(review_bot, artifacts):
    bot = review_bot
    for message in UNANSWERED:  # something for the 'could not answer' view
        bot.api("POST", "/api/chat", {"message": message})
    original = (ROOT / "examples" / "demo_store" / "intents.yaml").read_text()
    port = int(bot.origin.rsplit(":", 1)[1])
    with sync_playwright() as p, HostSite(port, bot.url) as site:
        browser = launch(p)
        errors: list[str] = []
        try:
            # 1. The customer rates the answer down, with a comment, in the widget on the shop's site.
            customer = browser.new_context(viewport={"width": 1280, "height": 800})
            customer.set_default_timeout(TIMEOUT_MS)
            page = customer.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(site.url)
            page.locator("supportbot-widget .launcher").click()
            answers = page.locator("supportbot-widget .msg.bot:not(.typing)")
            expect(answers).to_have_count(1)
            page.locator("supportbot-widget .composer textarea").fill(MESSAGE)
            page.locator("supportbot-widget .composer textarea").press("Enter")
            expect(answers).to_have_count(2)
            answer = answers.nth(1)
            assert answer.get_attribute("data-route") == "template"
            wrong_answer = answer.inner_text()
            assert NEW_ANSWER not in wrong_answer
            turn_id = int(answer.get_attribute("data-turn"))
            answer.get_by_role("button", name="Not helpful").click()
            answer.locator(".comment textarea").fill(COMMENT)
            answer.get_by_role("button", name="Send feedback").click()
            expect(answer.locator(".note")).to_have_text("Thanks for your feedback!")

            # 2. The reviewer logs in and finds it in the queue.
            reviewer = browser.new_context(viewport={"width": 1280, "height": 900})
            reviewer.set_default_timeout(TIMEOUT_MS)
            rp = reviewer.new_page()
            rp.on("pageerror", lambda e: errors.append(str(e)))
            rp.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            rp.goto(bot.url + "/review")
            expect(rp).to_have_url(re.compile(r"/review/login\?next="))
            rp.fill("input[name=name]", REVIEWER)
            rp.fill("input[name=password]", PASSWORD)
            rp.get_by_role("button", name="Log in").click()
            expect(rp).to_have_url(f"{bot.url}/review")
            rp.locator("a.count[data-kind=negative_feedback]").click()
            row = rp.locator("td.msg a", has_text=MESSAGE)
            expect(row).to_have_count(1)
            rp.wait_for_load_state("load")  # review.js is deferred: its shortcuts exist once the page has loaded
            rp.keyboard.press("?")
            expect(rp.locator("#help")).to_be_visible()
            rp.keyboard.press("Escape")
            rp.screenshot(path=str(artifacts / "review-queue.png"), full_page=True)

            # 3. The item: the answer, intent, confidence, alternatives and the customer's comment (as text).
            row.click()
            expect(rp.locator("h1.message")).to_have_text(MESSAGE)
            expect(rp.locator(".feedback")).to_contain_text(COMMENT)
            expect(rp.locator("dd.intent")).to_have_text(WRONG_INTENT)
            expect(rp.locator("ol.alternatives li")).not_to_have_count(0)
            rp.screenshot(path=str(artifacts / "review-item.png"), full_page=True)

            # 4. Correct the intent, then write a better answer for it.
            rp.fill("input[name=new_intent]", RIGHT_INTENT)
            rp.get_by_role("button", name="Correct", exact=True).click()
            expect(rp.locator(".flash")).to_contain_text("correct")
            expect(rp.locator(".flash .changed-file")).to_have_text("intents.yaml")
            rp.select_option("select[data-answers]", RIGHT_INTENT)
            rp.fill("#answer-text", NEW_ANSWER)
            rp.get_by_role("button", name="Save the answer").click()
            expect(rp.locator(".flash")).to_contain_text("intents.yaml")
            expect(rp.locator(".history")).to_contain_text(REVIEWER)

            # 5. The 'could not answer' view.
            rp.goto(bot.url + "/review/clusters", timeout=300_000)  # embeds the messages and the intents' examples
            expect(rp.locator("h1")).to_have_text("What the bot could not answer")
            expect(rp.locator("article.cluster").first).to_be_visible(timeout=120_000)
            rp.screenshot(path=str(artifacts / "unanswered-clusters.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()

    # The example is stored, with the turn as provenance; intents.yaml changed, its comments kept.
    assert query(bot.database, "select intent, source, label_method, provenance from examples where text = ?",
                 [MESSAGE]) == [
        (RIGHT_INTENT, "review", "review-corrected", f"turn:{turn_id}")]
    edited = (bot.folder / "intents.yaml").read_text()
    assert NEW_ANSWER in edited and f"  {RIGHT_INTENT}:" in edited and MESSAGE in edited
    assert edited.splitlines()[0] == original.splitlines()[0]  # the header comment
    assert "# ---------------------------------------------------------------- orders" in edited
    # Before training the memory of reviewed answers answers it already, while the model still takes the message
    # for payment_failed: on every worker once it has read the reviewed examples (within a second) and intents.yaml
    # with the new intent's answer (its watch).
    def explained() -> dict:
        return bot.api("GET", "/api/review/explain?" + urllib.parse.urlencode({"q": MESSAGE}), admin=True)

    def everywhere() -> bool:  # each request on a new connection, which the kernel gives to any worker
        return all(explained()["reply"] == NEW_ANSWER for _ in range(4 * bot.workers))

    wait_until(everywhere, 60, "the reviewed answer on every worker", interval_s=0.5)
    before = explained()
    assert before["rule"].startswith("matched reviewed turn") and before["intent_model"]["top"][0][0] == WRONG_INTENT
    assert bot.api("POST", "/api/chat", {"message": MESSAGE})["answer"] == NEW_ANSWER

    # 6. Retrain (its own process, through the gate), and the server serves the promoted version.
    status = bot.api("GET", "/api/review/status", admin=True)
    assert status["unseen_examples"] >= 1
    old_version = status["model_version"]
    previous = (status["training"]["last_run"] or {}).get("id", 0)
    assert bot.api("POST", "/api/review/train", admin=True)["started"] is True

    def finished_run():  # from the shared run log: whichever worker answers, not only the one that started it
        run = bot.api("GET", "/api/review/status", admin=True)["training"]["last_run"]
        return run if run and run["id"] > previous and run["outcome"] != "running" else None

    run = wait_until(finished_run, TRAIN_TIMEOUT_S, "the retrain to finish", interval_s=1)
    assert run["outcome"] in ("promoted", "held"), (bot.state / "retrain.log").read_text()[-3000:]
    if run["outcome"] == "held":  # one reviewed example is too little evidence: its changed answers wait for an admin
        assert "held for approval" in run["detail"] and "compared on" in run["detail"]
        assert "approved by" in bot.api("POST", f"/api/review/retrain/{run['id']}/approve", admin=True)["done"]
    wait_until(lambda: bot.serving_everywhere(old_version), 120, "the new model version on every worker", interval_s=1)

    # 7. The same customer message still gets the new answer, and the model has now learned it by itself.
    after = bot.api("POST", "/api/chat", {"message": MESSAGE})
    assert after["answer"] == NEW_ANSWER, after
    assert explained()["intent_model"]["top"][0][0] == RIGHT_INTENT
    assert bot.api("GET", "/api/review/status", admin=True)["unseen_examples"] == 0


def test_a_held_candidate_shows_what_the_gate_compared_and_the_answers_it_would_change(review_bot, artifacts):
    """A candidate the gate held for approval (training.gate.hold_unconfirmed), as the run log and its gate.json
    record it: the queue's header says so, with what was compared and every answer it would change."""
    from core.engine import open_database
    from training.runs import RunLog

    bot = review_bot
    models = bot.state / "models"
    candidate = "29991231T000000-e2eheld0"
    (models / candidate).mkdir()
    (models / candidate / "VERSION").write_text(candidate)
    changes = [{"turn_id": 1, "text": "where is my order <b>NW-482913</b>", "serving": "order_status",
                "candidate": "pre_order"}]
    (models / candidate / "gate.json").write_text(json.dumps({
        "parent": (models / "CURRENT").read_text().strip(), "compared": "compared on 1 in-scope and 3 out-of-scope examples",
        "reasons": ["held for approval: the gate had 1 in-scope example, too few to tell (retrain.min_gate_examples "
                    "30), and the candidate changes 1 answer the serving model gave confidently to logged customer "
                    "messages, which no reviewer confirmed"], "unconfirmed": changes}))
    db = open_database(bot.database)
    try:
        runs = RunLog(db)
        run = runs.start("review")
        runs.finish(run, "held", candidate, "warm", {}, "compared on 1 in-scope and 3 out-of-scope examples; held")
    finally:
        db.close()
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.goto(bot.url + "/review")
            page.fill("input[name=name]", REVIEWER)
            page.fill("input[name=password]", PASSWORD)
            page.get_by_role("button", name="Log in").click()
            held = page.locator("section.held")
            expect(held.locator("h2")).to_have_text("A retrained model waits for approval")
            expect(held).to_contain_text("compared on 1 in-scope and 3 out-of-scope examples")
            expect(held.locator("table.changes td").first).to_have_text("where is my order <b>NW-482913</b>")  # as text
            expect(held).to_contain_text("An admin approves or rejects it.")
            held.screenshot(path=str(artifacts / "review-held-candidate.png"))
            page.screenshot(path=str(artifacts / "review-held-queue.png"))

            # "Try it": why the demo bot answers a message as it does, with its knowledge candidates
            page.get_by_role("link", name="Try it").click()
            page.fill("input[name=q]", "do you deliver to Norway")
            page.get_by_role("button", name="Explain").click()
            expect(page.locator("section.explained h2")).to_contain_text("Decision: ")
            expect(page.locator("table.signals")).to_contain_text("out-of-scope score (mahalanobis+max_prob)")
            expect(page.locator("table.candidates tbody tr").first).to_be_visible()
            page.screenshot(path=str(artifacts / "review-try-it.png"), full_page=True)
        finally:
            browser.close()
    done = bot.api("POST", f"/api/review/retrain/{run}/reject", admin=True)["done"]
    assert "rejected by admin-token: the serving model stays" in done
