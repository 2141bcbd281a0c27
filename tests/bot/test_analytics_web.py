"""The analytics page over HTTP: behind the review login, a strict CSP, SVG plots with the promotion marked,
every label escaped, CSV downloads of the tables behind the plots, the JSON API, bad input as 4xx."""

from __future__ import annotations

import csv
import io
import re

import pytest
from test_review_web import login, users

from runtime_doubles import FakeSource

XSS_INTENT = "<script>alert(1)</script>"


async def chat(client, message, convo=None):
    body = {"message": message, **({"conversation_id": convo["conversation_id"], "token": convo["token"]} if convo else {})}
    response = await client.post("/api/chat", json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def traffic(client):
    for message in ("where is my parcel", "hello", "something odd", "human please", "where is it"):
        await chat(client, message)


async def test_the_page_needs_a_login_and_the_api_a_session_or_the_token(make_client, tmp_path):
    users(tmp_path, ("alice", "reviewer"))
    client = await make_client()
    response = await client.get("/review/analytics", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/review/login")
    assert (await client.get("/api/review/analytics")).status == 401
    assert (await client.get("/review/analytics/daily.csv", allow_redirects=False)).status == 303
    ok = await client.get("/api/review/analytics", headers={"Authorization": "Bearer test-admin-token"})
    assert ok.status == 200


async def test_page_plots_the_period_as_svg_under_a_strict_csp(make_client, tmp_path):
    users(tmp_path, ("alice", "reviewer"))
    client = await make_client()
    await traffic(client)
    assert (await login(client, next_="/review/analytics")).status == 303
    response = await client.get("/review/analytics?days=7")
    html = await response.text()
    assert response.status == 200, html
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "script-src 'self'" in csp
    assert "<script>" not in html and " style=" not in html
    assert html.count("<svg class=\"chart\"") == 3
    assert "5 turns" in html and "Fallback answers" in html
    # 5 turns; one fallback ("something odd" is unknown to the double and the scripted knowledge base)
    assert re.search(r"Fallback answers</h3>\s*<p class=\"figure\">20.0 %</p>\s*<p class=\"per\">1 of 5 turns", html)


async def test_a_promotion_is_marked_in_the_plots(make_client, tmp_path):
    users(tmp_path, ("alice", "reviewer"))
    source = FakeSource("v1")
    client = await make_client(source=source)
    await chat(client, "where is my parcel")
    source.version = "v2-promoted"
    assert (await client.post("/admin/reload", headers={"Authorization": "Bearer test-admin-token"})).status == 200
    await chat(client, "where is my parcel")
    await login(client)
    html = await (await client.get("/review/analytics")).text()
    assert "model v2-promoted promoted" in html and 'class="promotion"' in html
    data = await (await client.get("/api/review/analytics", headers={"Authorization": "Bearer test-admin-token"})).json()
    assert [p["model_version"] for p in data["tables"]["promotions"]] == ["v2-promoted"]
    assert {v["model_version"] for v in data["tables"]["versions"]} == {"v1", "v2-promoted"}


async def test_labels_are_escaped_and_csv_cells_cannot_be_formulas(make_client, tmp_path):
    users(tmp_path, ("alice", "reviewer"))
    client = await make_client()
    await traffic(client)
    from core.sqlite import connect

    db = connect(tmp_path / "state" / "supportbot.db")
    db.execute("update turns set intent = ? where intent = 'track_order'", [XSS_INTENT])
    db.execute("update turns set intent = '=HYPERLINK(1)' where intent = 'greet'")
    await login(client)
    html = await (await client.get("/review/analytics")).text()
    assert XSS_INTENT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    response = await client.get("/review/analytics/intents.csv")
    assert response.status == 200 and response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == ["intent", "turns", "share_of_turns"]
    assert ["'=HYPERLINK(1)", "1", "0.2"] in rows


async def test_every_table_behind_a_plot_downloads_and_bad_input_is_a_4xx(make_client, tmp_path, monkeypatch):
    """Each table downloads as a CSV with its header and at least one row of this traffic (a thumbs-down on a
    template and on a knowledge answer; the growing clusters computed once, by a stand-in clustering)."""
    from bot.analytics.jobs import compute_growing
    from bot.web.app import RUNTIME

    growing = {"week": "2026-W50", "cluster": "something odd", "verdict": "new intent?", "this_week": 1,
               "week_before": 0, "growth": 1, "group_id": 1}
    monkeypatch.setattr("bot.review.unanswered.growing_clusters", lambda *args: [growing])
    users(tmp_path, ("alice", "reviewer"))
    client = await make_client()
    await traffic(client)
    for message in ("where is my parcel", "what does shipping cost"):
        turn = await chat(client, message)
        ids = {key: turn[key] for key in ("conversation_id", "token", "turn_id")}
        rated = await client.post("/api/feedback", json={**ids, "rating": "down"})
        assert rated.status == 200, await rated.text()
    await compute_growing(client.app[RUNTIME])
    await login(client)
    tables = {}
    for name in ("daily", "routes", "latency", "versions", "weekly", "thumbs_down_intents", "thumbs_down_articles",
                 "unanswered", "outcomes", "growing_clusters", "drift"):
        response = await client.get(f"/review/analytics/{name}.csv?days=3")
        assert response.status == 200, name
        header, *rows = csv.reader(io.StringIO(await response.text()))
        assert rows and all(len(row) == len(header) for row in rows), (name, header, rows)
        tables[name] = rows
    assert tables["thumbs_down_intents"] == [["track_order", "1", "3"]]
    assert tables["thumbs_down_articles"] == [["Shipping", "1", "1"]]
    assert tables["unanswered"] == [["1", "1", "something odd"]]
    assert tables["growing_clusters"] == [["2026-W50", "something odd", "new intent?", "1", "0", "1", "1"]]
    routes = list(csv.DictReader(io.StringIO(await (await client.get("/review/analytics/routes.csv?days=1")).text())))
    today = routes[-1]
    assert sum(float(today[r]) for r in ("template", "smalltalk", "clarify", "knowledge", "fallback", "handoff")) \
        == pytest.approx(1.0)
    missing = await client.get("/review/analytics/nope.csv")
    assert missing.status == 404
    for bad in ("0", "abc", "99999"):
        response = await client.get(f"/api/review/analytics?days={bad}", headers={"Authorization": "Bearer test-admin-token"})
        assert response.status == 400 and "days" in (await response.json())["error"]


async def test_the_growing_clusters_are_computed_by_the_server_never_by_a_page_view(make_client, tmp_path,
                                                                                  monkeypatch):
    """Clustering thousands of unanswered messages takes tens of seconds: the server does it in the background
    once loaded (and every 15 minutes); until then the page says so at once, then shows the stored result, and
    /readyz says the first worker is catching up."""
    import asyncio
    import threading

    started, release = threading.Event(), threading.Event()

    def slow_clustering(messages, encode, examples, settings):
        started.set()
        release.wait(30)
        return [{"week": "2026-W48", "cluster": "<b>refund</b> late", "verdict": "new intent?", "this_week": 4,
                 "week_before": 1, "growth": 3, "group_id": 1}]

    monkeypatch.setattr("bot.review.unanswered.growing_clusters", slow_clustering)
    users(tmp_path, ("alice", "reviewer"))
    client = await make_client()
    await traffic(client)
    await login(client)
    assert await asyncio.to_thread(started.wait, 30)  # the server's own job is clustering, the page does not wait
    html = await (await client.get("/review/analytics")).text()
    assert "Being computed" in html and "refund" not in html
    api = await (await client.get("/api/review/analytics", headers={"Authorization": "Bearer test-admin-token"})).json()
    assert api["growing_computed"] is None and api["tables"]["growing_clusters"] == []
    ready = await client.get("/readyz")  # ready, and saying that its start-up jobs still run
    assert ready.status == 200 and (await ready.json())["catching_up"] is True
    release.set()
    for _ in range(300):
        html = await (await client.get("/review/analytics")).text()
        if "Being computed" not in html and "catching_up" not in await (await client.get("/readyz")).json():
            break
        await asyncio.sleep(0.1)
    assert "catching_up" not in await (await client.get("/readyz")).json()
    assert "&lt;b&gt;refund&lt;/b&gt; late" in html and "+3" in html and "Computed 20" in html
    rows = list(csv.reader(io.StringIO(await (await client.get("/review/analytics/growing_clusters.csv")).text())))
    assert rows[1][:6] == ["2026-W48", "<b>refund</b> late", "new intent?", "4", "1", "3"]


async def test_day_one_says_why_cards_are_empty_and_plots_from_the_first_data(make_client, tmp_path):
    """A bot's first day: the settled-conversation cards say when their first figure appears instead of a bare
    "–", and the plots' axis starts at the first day with turns, not 30 days before it."""
    from bot.analytics.charts import for_report
    from bot.web.analytics import report
    from bot.web.app import RUNTIME

    users(tmp_path, ("alice", "reviewer"))
    client = await make_client()
    await traffic(client)
    assert (await login(client, next_="/review/analytics")).status == 303
    html = await (await client.get("/review/analytics?days=30")).text()
    assert re.search(r"Contained</h3>\s*<p class=\"figure\">–</p>\s*<p class=\"per empty\">None settled yet: a "
                     r"conversation counts once it has been quiet for \d+ hours \(5 waiting\)\.", html), html
    assert "Fallback answers</h3>" in html and "1 of 5 turns" in html  # a turn figure needs no waiting

    class Request:  # what `report` reads of a request
        app, query = client.app, {"days": "30"}

    days, period = await report(Request())
    assert days == 30 and len(period.days) >= 30
    charts = for_report(period)
    [today] = [d for d in period.days if period.day(d).turns]
    assert [label for _, label in charts.outcomes.x_ticks] == [today[5:]]  # one day, from the first data
