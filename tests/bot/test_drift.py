"""Drift with known answers: Jensen–Shannon of equal and disjoint mixes, shares below threshold and out of scope,
the alert in /readyz, /metrics and the page, and an early retrain when the schedule is on."""

from __future__ import annotations

import json
import math

import pytest

from bot.analytics.drift import DriftStatus, jensen_shannon, measure, weekly
from test_analytics import DAY0, HOUR, make_log  # noqa: F401 (a fixture)


def test_jensen_shannon_known_values():
    assert jensen_shannon({"a": 1, "b": 1}, {"a": 5, "b": 5}) == pytest.approx(0.0)
    assert jensen_shannon({"a": 3}, {"b": 7}) == pytest.approx(1.0)
    # {1/2, 1/2} vs {1, 0}: divergence = 1 - (3/4) log2(4/3) ... computed by hand
    expected = math.sqrt(0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * math.log2(1 / 0.75))
    assert jensen_shannon({"a": 1, "b": 1}, {"a": 1}) == pytest.approx(expected)
    with pytest.raises(ValueError):
        jensen_shannon({}, {"a": 1})


def test_weekly_shares_and_distance_on_a_generated_log(make_log):  # noqa: F811 (the fixture)
    log = make_log()
    t = DAY0 + HOUR  # a Monday
    for i in range(10):  # week 1: the training mix exactly
        log.conversation((t + i, "template"), intent="track_order" if i < 5 else "cancel_order")
    for i in range(10):  # week 2: all one intent, 2 called out of scope
        log.conversation((t + 7 * 86400 + i, "template" if i < 8 else "knowledge"),
                         intent="track_order" if i < 8 else "out_of_scope")
    log.db.execute("update turns set decision = ? where id in (1, 2, 3)", [json.dumps({"flags": ["low_confidence"]})])
    a = log.analytics()
    mix = {"track_order": 50, "cancel_order": 50}
    weeks = weekly(a, "2025-12-01", "2025-12-31", mix, "out_of_scope")
    assert [w.period for w in weeks] == ["2025-W49", "2025-W50"]
    assert weeks[0].distance == pytest.approx(0.0) and weeks[0].below_threshold_share == pytest.approx(0.3)
    assert weeks[1].out_of_scope_share == pytest.approx(0.2) and weeks[1].recognised == 8
    assert weeks[1].distance == pytest.approx(jensen_shannon({"track_order": 1}, mix), abs=1e-4)
    assert weeks[1].moved[0][0] in ("track_order", "cancel_order") and weeks[1].moved[0][1] in (1.0, 0.0)


def test_alert_needs_the_level_and_enough_turns():
    drift = measure("w", [("2025-12-01", "a", 300, 0)], {"b": 10}, "oos")
    assert DriftStatus(0.5, min_turns=200, latest=drift).alert
    assert not DriftStatus(0.0, latest=drift).alert  # 0 = off
    assert not DriftStatus(0.5, min_turns=301, latest=drift).alert
    assert not DriftStatus(0.5, latest=measure("w", [("2025-12-01", "b", 300, 0)], {"b": 10}, "oos")).alert


async def test_drift_alert_shows_in_readyz_metrics_and_the_page_and_starts_a_retrain(make_client, monkeypatch):
    from bot.analytics import jobs

    started = []
    client = await make_client("analytics.drift_alert=0.3", "analytics.drift_min_turns=3", "retrain.interval=24")
    app = client.server.app
    from bot.web.runtime import RUNTIME

    rt = app[RUNTIME]
    monkeypatch.setattr(jobs, "serving_mix", lambda rt, version: {"cancel_order": 10})  # trained on another intent

    async def start(trigger):
        started.append(trigger)
        return 1

    monkeypatch.setattr(rt.retraining, "trigger", start)
    for _ in range(4):
        assert (await client.post("/api/chat", json={"message": "where is my parcel"})).status == 200
    await jobs.check_drift(rt)
    await jobs.check_drift(rt)
    assert started == ["drift"]  # once per week
    ready = await (await client.get("/readyz")).json()
    assert ready["drift"]["alert"] is True and ready["drift"]["last_7_days"]["jensen_shannon"] == 1.0
    metrics = await (await client.get("/metrics", headers={"Authorization": "Bearer test-admin-token"})).text()
    assert "supportbot_drift_alert 1.0" in metrics and "supportbot_drift_jensen_shannon 1.0" in metrics
    page = await client.get("/api/review/analytics", headers={"Authorization": "Bearer test-admin-token"})
    drift_rows = (await page.json())["tables"]["drift"]
    assert drift_rows[-1]["jensen_shannon"] == 1.0
    html = await (await client.get("/review/analytics", headers={"Authorization": "Bearer test-admin-token"})).text()
    assert 'class="flash drift-alert"' in html and "1.000 from the serving model" in html


async def test_no_alert_level_no_drift_in_readyz(make_client):
    client = await make_client()
    assert "drift" not in await (await client.get("/readyz")).json()


async def test_a_restarted_server_does_not_start_a_second_drift_retrain_in_the_same_week(make_client, monkeypatch):
    from bot.analytics import jobs
    from bot.web.runtime import RUNTIME

    monkeypatch.setattr(jobs, "serving_mix", lambda rt, version: {"cancel_order": 10})
    started = []

    async def serve():
        """A server on the same bot folder and database, its retrain start recorded instead of run."""
        client = await make_client("analytics.drift_alert=0.3", "analytics.drift_min_turns=3", "retrain.interval=24")
        rt = client.server.app[RUNTIME]

        async def start(trigger):
            started.append((id(rt), trigger))
            return 1

        monkeypatch.setattr(rt.retraining, "trigger", start)
        return client, rt

    client, first = await serve()
    for _ in range(4):
        assert (await client.post("/api/chat", json={"message": "where is my parcel"})).status == 200
    await jobs.check_drift(first)
    assert [t for _, t in started] == ["drift"]
    await client.close()

    client, second = await serve()  # the restart: a new process's memory, the same database
    await jobs.check_drift(second)
    assert second.drift.alert and len(started) == 1
    ready = await (await client.get("/readyz")).json()
    assert ready["drift"]["retrain_started_for"] == first.drift.retrain_started_for != ""


async def test_a_drift_retrain_that_fails_to_start_can_be_started_again(make_client, monkeypatch):
    from bot.analytics import jobs
    from bot.web.runtime import RUNTIME

    monkeypatch.setattr(jobs, "serving_mix", lambda rt, version: {"cancel_order": 10})
    client = await make_client("analytics.drift_alert=0.3", "analytics.drift_min_turns=3", "retrain.interval=24")
    rt = client.server.app[RUNTIME]
    for _ in range(4):
        assert (await client.post("/api/chat", json={"message": "where is my parcel"})).status == 200
    calls = []

    async def start(trigger):
        calls.append(trigger)
        if len(calls) == 1:
            raise OSError("no such command")
        return 1

    monkeypatch.setattr(rt.retraining, "trigger", start)
    with pytest.raises(OSError):
        await jobs.check_drift(rt)
    await jobs.check_drift(rt)
    await jobs.check_drift(rt)
    assert calls == ["drift", "drift"]


def test_the_unanswered_clusters_growing_fastest_per_week_known_answer():
    from types import SimpleNamespace

    from bot.review.unanswered import HashingEmbedder, growing_clusters

    now = DAY0 + 9 * 86400 + 12 * HOUR  # Wednesday 2025-12-10: week 2025-W50; the week before is W49
    this_week, week_before = now - HOUR, now - 7 * 86400
    topics = {  # texts of a topic, and (when last sent, how many times) of each
        "gift": (["gift card balance check", "check my gift card balance", "gift card balance please",
                  "what is my gift card balance"], [(this_week, 2), (this_week, 2), (this_week, 1), (week_before, 1)]),
        "blender": (["refund broken blender", "my blender arrived broken refund", "blender broken want refund"],
                    [(this_week, 1), (week_before, 3), (week_before, 1)]),
        "crypto": (["pay with bitcoin crypto", "crypto bitcoin payment accepted", "bitcoin crypto pay"],
                   [(this_week, 1), (this_week, 1), (this_week, 1)]),
    }
    messages, n = [], 0
    for texts, sent in topics.values():
        for text, (at, size) in zip(texts, sent):
            n += 1
            messages.append({"group_id": n, "turn_id": n, "text": text, "size": size, "decision": "fallback",
                             "last_seen": at})
    # a cut for the hashing stand-in's word counts ("pay with bitcoin crypto" and "crypto bitcoin payment accepted"
    # are 0.5 apart): this is about counting growth per week, not how tight clusters are
    settings = SimpleNamespace(cluster_min_size=3, intent_similarity=0.9, cluster_distance=0.55)
    rows = growing_clusters(messages, HashingEmbedder().encode, {}, settings, now)
    got = [(r["week"], r["this_week"], r["week_before"], r["growth"]) for r in rows]
    # W50: gift 5 against 1 (+4), crypto 3 against 0 (+3, a new cluster); blender shrank (1 against 4): not shown.
    # W49: blender 4 against 0 (+4), gift 1 against 0 (+1); crypto had none.
    assert got == [("2025-W50", 5, 1, 4), ("2025-W50", 3, 0, 3), ("2025-W49", 4, 0, 4), ("2025-W49", 1, 0, 1)]
    groups = {r["week"] + str(r["this_week"]): r["group_id"] for r in rows}
    assert groups["2025-W505"] in (1, 2, 3, 4) and groups["2025-W503"] in (8, 9, 10)  # links to a member's review item
