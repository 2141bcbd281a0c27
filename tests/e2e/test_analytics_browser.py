"""The analytics page in a real headless Chromium against a real server process: two weeks of simulated traffic
with one promotion (written into the log before the server starts), a few live chats on top, a reviewer logs in
and sees containment and fallback over time with the promotion marked. A screenshot goes to
$SUPPORTBOT_ARTIFACTS, else test-artifacts/ (docs/analytics.png is one, reduced to 128 colours).

The server is the tiny test bot with its doubles (tests/bot/runtime_doubles.py as a script): no model to train.
It runs on the simulated log in SQLite, and again with the log moved to PostgreSQL (one process: the doubles'
server has no `--workers`; the analytics fold and rollups on two workers are tests/bot's).
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.bots import ROOT
from tests.support.browser import launch
from tests.support.ports import free_port
from tests.support.servers import serving

pytestmark = [pytest.mark.browser, pytest.mark.integration]

sys.path.insert(0, str(ROOT))
TIMEOUT_MS = 20_000
PASSWORD = "an analyst's password"
OLD, NEW = "20261118T093000-3f2a9c1d", "20261125T101500-8be04a77"
DAYS = 14


def simulate(db_path: Path, now: float, seed: int = 7) -> None:
    """DAYS days of traffic; NEW is promoted (by retrain run 1) halfway and falls back less often."""
    from bot.review.accounts import AccountStore
    from bot.dialogue.conversations import ConversationLog
    from core.sqlite import connect
    from training.redact import RedactSettings, Redactor
    from training.runs import RunLog

    rng = random.Random(seed)
    db = connect(db_path)
    ConversationLog(db, Redactor(RedactSettings()))
    AccountStore(db).add("analyst", "reviewer", PASSWORD)
    end = (now // 86400 - 1) * 86400  # whole UTC days, the last one over a day ago: all settled
    promoted_at = end - DAYS / 2 * 86400
    intents = ["track_order", "cancel_order", "send_receipt", "store_hours", "product_question", "greet"]
    with db.transaction():
        for n in range(DAYS * 60):
            t = end - DAYS * 86400 + n * 1440 + rng.random() * 600
            version = OLD if t < promoted_at else NEW
            fallback_p = 0.22 if version == OLD else 0.09
            cid = f"sim{n:05d}"
            db.execute("insert into conversations (id, token_hash, created, updated) values (?, 'x', ?, ?)", [cid, t, t])
            for k in range(rng.choice((1, 2, 3))):
                roll = rng.random()
                route = ("fallback" if roll < fallback_p else "handoff" if roll < fallback_p + 0.06 else
                         "clarify" if roll < fallback_p + 0.1 else "knowledge" if roll < fallback_p + 0.3 else "template")
                intent = rng.choice(intents) if route != "fallback" else None
                sources = json.dumps([{"title": rng.choice(["Returns", "Delivery", "Warranty"]), "url": ""}]) \
                    if route == "knowledge" else "[]"
                turn = db.execute(
                    "insert into turns (conversation_id, created, message, answer, route, intent, confidence,"
                    " quick_replies, sources, decision, model_version, latency_ms)"
                    " values (?, ?, 'a simulated message', 'an answer', ?, ?, 0.8, '[]', ?, '{}', ?, ?)",
                    [cid, t + 40 * k, route, intent, sources, version, rng.lognormvariate(2.2, 0.5)]).lastrowid
                if k == 0 and route != "handoff" and rng.random() < 0.04:  # the customer comes back hours later
                    db.execute("insert into turns (conversation_id, created, message, answer, route, intent,"
                               " quick_replies, sources, decision, model_version, latency_ms) values (?, ?, 'again',"
                               " 'an answer', 'template', ?, '[]', '[]', '{}', ?, 9.0)",
                               [cid, t + 3 * 3600, rng.choice(intents), version])
                if route in ("template", "knowledge") and rng.random() < 0.15:
                    db.execute("insert into feedback (turn_id, conversation_id, rating, created) values (?, ?, ?, ?)",
                               [turn, cid, "down" if rng.random() < 0.3 else "up", t + 60])
    runs = RunLog(db)
    run = runs.start("schedule")
    runs.finish(run, "promoted", NEW, OLD)
    db.close()


def moved_to_postgres(db_path: Path, server_url: str) -> str:
    """The simulated log copied into a new database on the PostgreSQL server (what `db copy` does); its URL."""
    from bot.db_copy import copy_state
    from core.sqlite import connect
    from core.engine import open_database
    from tests.support.postgres import new_database

    url = new_database(server_url, f"analytics_{uuid.uuid4().hex[:12]}")
    source, target = connect(db_path), open_database(url)
    try:
        copy_state(source, target)
    finally:
        source.close()
        target.close()
    db_path.rename(db_path.with_name("copied-to-postgres.db"))  # the server can only be using PostgreSQL
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def analytics_server(request, tmp_path_factory):
    """The doubles' server (one process) on the simulated log: in its SQLite file, or moved to PostgreSQL."""
    state = tmp_path_factory.mktemp("analytics-bot")
    simulate(state / "supportbot.db", time.time())
    database_url = ""
    if request.param == "postgres":
        database_url = moved_to_postgres(state / "supportbot.db", request.getfixturevalue("postgres_server_url"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(ROOT / "tests" / "bot" / "runtime_doubles.py"), str(state), str(port), database_url]
    with serving(command, url, state / "server.log", 120, cwd=state, env={**os.environ, "HF_HUB_OFFLINE": "1"}):
        yield url


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("SUPPORTBOT_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chat(url: str, message: str) -> dict:
    request = urllib.request.Request(url + "/api/chat", json.dumps({"message": message}).encode(),
                                     {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_analytics_page_shows_the_period_with_the_promotion_marked(analytics_server, artifacts):
    url = analytics_server
    for message in ("where is my parcel", "hello", "something odd", "human please"):
        chat(url, message)
    with sync_playwright() as p:
        browser = launch(p)
        errors: list[str] = []
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url + "/review/analytics?days=21")
            expect(page).to_have_url(re.compile(r"/review/login\?next=/review/analytics"))
            page.fill("input[name=name]", "analyst")
            page.fill("input[name=password]", PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(f"{url}/review/analytics?days=21")
            expect(page.locator("h1")).to_have_text("Analytics")
            for _ in range(120):  # the server clusters the unanswered messages in the background once started
                if page.get_by_text("Being computed").count() == 0:
                    break
                page.wait_for_timeout(500)
                page.reload()
            expect(page.get_by_text("Being computed")).to_have_count(0)
            expect(page.locator("svg.chart")).to_have_count(3)
            # NEW's promotion, marked once (the chats above add today's version of the double as another)
            expect(page.locator("#chart-outcomes .promotion", has_text=NEW[:15])).to_have_count(1)
            expect(page.locator("#chart-outcomes .promotion text").first).to_contain_text(NEW[:15])
            expect(page.locator("#chart-outcomes .series")).to_have_count(3)
            expect(page.locator("#chart-routes .bar").first).to_be_visible()
            expect(page.locator("table.figures").first).to_contain_text(NEW)
            box = page.locator("#chart-outcomes").bounding_box()
            assert box and box["width"] > 600 and box["height"] > 150  # review.css applied (no inline style)
            page.screenshot(path=str(artifacts / "analytics.png"), full_page=True)
            download = page.locator("a.csv").first
            with page.expect_download() as info:
                download.click()
            first_line = Path(info.value.path()).read_text().splitlines()[0]
            assert first_line.startswith("day,turns,conversations,settled,pending,containment")
            assert errors == []
        finally:
            browser.close()
