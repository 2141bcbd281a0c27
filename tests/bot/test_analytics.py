"""Analytics on generated logs with known answers, on both engines (SQLite and a real PostgreSQL server):
containment, returns, shares that add to 100 %, rollups that stay right when folded in pieces; the upgrade of
rollups made before versioned migrations."""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest

from bot.analytics.figures import DEFINITIONS, OUTCOMES, Analytics, day_of, parse_since, period
from bot.dialogue.conversations import ConversationLog
from bot.dialogue.router import ROUTES
from core.engine import open_database
from training.redact import RedactSettings, Redactor
from tests.support.postgres import ENGINES, new_database

DAY0 = 1_764_547_200.0  # 2025-12-01 00:00 UTC
HOUR = 3600.0
NOW = DAY0 + 10 * 86400  # every window has closed


class Log:
    """Writes turns and ratings straight into the conversation log's tables, at chosen times."""

    def __init__(self, location=None) -> None:
        self.db = open_database(location)
        ConversationLog(self.db, Redactor(RedactSettings()))
        self.ids = itertools.count(1)

    def conversation(self, *turns: tuple[float, str], version: str = "v1", intent: str = "track_order",
                     latency: float = 10.0, article: str = "", customer: str | None = None) -> str:
        cid = f"c{next(self.ids)}"
        self.db.execute("insert into conversations (id, token_hash, created, updated, customer_hash)"
                        " values (?, 'x', ?, ?, ?)", [cid, turns[0][0], turns[-1][0], customer])
        for at, route in turns:
            sources = json.dumps([{"title": article, "url": ""}] if article and route == "knowledge" else [])
            self.db.execute(
                "insert into turns (conversation_id, created, message, answer, route, intent, confidence, quick_replies,"
                " sources, decision, model_version, latency_ms) values (?, ?, 'm', 'a', ?, ?, 0.9, '[]', ?, '{}', ?, ?)",
                [cid, at, route, intent, sources, version, latency])
        return cid

    def rate(self, cid: str, rating: str) -> None:
        turn = self.db.execute("select max(id) from turns where conversation_id = ?", [cid]).fetchone()[0]
        self.db.execute("insert into feedback (turn_id, conversation_id, rating, created) values (?, ?, ?, 0)",
                        [turn, cid, rating])

    def analytics(self, **kw) -> Analytics:
        a = Analytics(self.db, **kw)
        a.refresh()
        return a


@pytest.fixture(params=ENGINES)
def make_log(request):
    """New logs on one engine: in memory on SQLite, or each a new database on the test PostgreSQL server."""
    logs = []

    def make() -> Log:
        location = None
        if request.param == "postgresql":
            location = new_database(request.getfixturevalue("postgres_server_url"), f"log_{uuid.uuid4().hex[:12]}")
        logs.append(Log(location))
        return logs[-1]

    yield make
    for log in logs:
        log.db.close()


def ten_conversations(log: Log, start: float = DAY0 + HOUR) -> list[str]:
    """7 contained (template answers), 3 handed off."""
    ids = []
    for i in range(10):
        t = start + i * 60
        ids.append(log.conversation((t, "template"), (t + 20, "handoff" if i >= 7 else "smalltalk")))
    return ids


def total(a: Analytics, now: float = NOW):
    return a.figures("2025-12-01", "2025-12-31", now=now)[""]


def test_seven_of_ten_contained_is_70_percent(make_log):
    log = make_log()
    ten_conversations(log)
    f = total(log.analytics())
    assert f.rate("containment").value == pytest.approx(0.7)
    assert (f.rate("containment").count, f.rate("containment").total) == (7, 10)
    assert f.rate("handoff").value == pytest.approx(0.3)
    assert str(f.rate("containment")) == "70.0 % (7 of 10 settled conversations)"


def test_a_return_inside_the_window_uncontains_one_and_one_after_it_does_not(make_log):
    log = make_log()
    ids = ten_conversations(log)
    start = DAY0 + HOUR
    log.db.execute("insert into turns (conversation_id, created, message, answer, route, quick_replies, sources,"
                   " decision, model_version, latency_ms) values (?, ?, 'again', 'a', 'template', '[]', '[]', '{}',"
                   " 'v1', 5)", [ids[0], start + 20 + 2 * HOUR])  # 2 hours later: a return
    log.db.execute("insert into turns (conversation_id, created, message, answer, route, quick_replies, sources,"
                   " decision, model_version, latency_ms) values (?, ?, 'later', 'a', 'template', '[]', '[]', '{}',"
                   " 'v1', 5)", [ids[1], start + 60 + 20 + 30 * HOUR])  # after the 24-hour window: not a return
    f = total(log.analytics(return_window_h=24))
    assert f.rate("containment").value == pytest.approx(0.6)
    assert f.outcomes == {"contained": 6, "handed_off": 3, "returned": 1, "abandoned": 0}


def test_a_verified_customers_new_conversation_inside_the_window_uncontains_their_last_one(make_log):
    log = make_log()
    start = DAY0 + HOUR
    first = log.conversation((start, "template"), (start + 20, "smalltalk"), customer="alice")
    log.conversation((start + 60, "template"), customer="bob")  # someone else: no return of alice's
    a = log.analytics(return_window_h=24)
    assert total(a).outcomes["contained"] == 2
    log.conversation((start + 20 + 23 * HOUR, "template"), customer="alice")  # folded in a later refresh
    log.conversation((start + 20 + 25 * HOUR, "template"), customer="bob")  # bob: outside the window
    a.refresh()
    f = total(a)
    assert (f.outcomes["returned"], f.outcomes["contained"], f.settled) == (1, 3, 4)
    returned = log.db.execute("select id from analytics_conversations where outcome = 'returned'").fetchall()
    assert returned == [(first,)]
    # the same log folded at once gives the same, and anonymous conversations are never linked
    assert total(log.analytics(return_window_h=24)).outcomes == f.outcomes
    anonymous = make_log()
    anonymous.conversation((start, "template"))
    anonymous.conversation((start + HOUR, "template"))
    assert total(anonymous.analytics()).outcomes["contained"] == 2


def test_a_return_logged_after_a_refresh_moves_the_conversation_between_outcomes(make_log):
    log = make_log()
    ids = ten_conversations(log)
    a = log.analytics()
    assert total(a).outcomes["contained"] == 7
    log.db.execute("insert into turns (conversation_id, created, message, answer, route, quick_replies, sources,"
                   " decision, model_version) values (?, ?, 'x', 'a', 'template', '[]', '[]', '{}', 'v1')",
                   [ids[0], DAY0 + HOUR + 20 + 3 * HOUR])
    a.refresh()
    f = total(a)
    assert (f.outcomes["contained"], f.outcomes["returned"], f.conversations) == (6, 1, 10)


def test_a_conversation_still_inside_its_window_is_pending_not_counted(make_log):
    log = make_log()
    ten_conversations(log)
    f = total(log.analytics(), now=DAY0 + HOUR + 600 + 23 * HOUR)  # the last ones went quiet < 24 h ago
    assert f.conversations == 10 and f.pending > 0 and f.settled == 10 - f.pending
    later = total(log.analytics(), now=DAY0 + 3 * 86400)
    assert later.pending == 0 and later.settled == 10


def test_replies_within_the_session_gap_are_not_returns(make_log):
    log = make_log()
    t = DAY0 + HOUR
    log.conversation((t, "template"), (t + 29 * 60, "template"), (t + 50 * 60, "template"))  # gaps 29 and 21 min
    assert total(log.analytics(session_gap_min=30)).outcomes["contained"] == 1
    log2 = make_log()
    log2.conversation((t, "template"), (t + 31 * 60, "template"))
    assert total(log2.analytics(session_gap_min=30)).outcomes["returned"] == 1


def test_leaving_right_after_a_fallback_is_abandonment(make_log):
    log = make_log()
    t = DAY0 + HOUR
    log.conversation((t, "template"), (t + 10, "fallback"))
    log.conversation((t, "fallback"), (t + 10, "template"))
    f = total(log.analytics())
    assert f.outcomes["abandoned"] == 1 and f.outcomes["contained"] == 1
    assert f.rate("fallback_conversations").value == 1.0
    assert f.rate("fallback_turns").value == 0.5


def test_route_and_outcome_shares_add_up_to_100_percent_every_day_and_week(make_log):
    log = make_log()
    routes = itertools.cycle(ROUTES)
    for day in range(9):
        for i in range(day + 3):
            t = DAY0 + day * 86400 + i * 600
            log.conversation(*[(t + k * 30, next(routes)) for k in range(1 + i % 4)])
    a = log.analytics()
    for by in ("day", "week", "model_version", ""):
        for key, f in a.figures("2025-12-01", "2025-12-31", now=NOW, by=by).items():
            assert sum(r.count for r in f.route_shares().values()) == f.turns > 0
            assert sum(r.value for r in f.route_shares().values()) == pytest.approx(1.0)
            assert sum(r.value for r in f.outcome_shares().values()) == pytest.approx(1.0)
            assert set(f.outcomes) == set(OUTCOMES)


def test_rollups_folded_in_pieces_equal_one_fold(make_log, monkeypatch):
    log = make_log()
    ten_conversations(log)
    whole = total(log.analytics())
    import bot.analytics.figures as analytics

    monkeypatch.setattr(analytics, "CHUNK", 3)
    piecewise = make_log()
    ten_conversations(piecewise)
    a = piecewise.analytics()
    assert total(a).as_row() == whole.as_row()
    ten_conversations(piecewise, start=DAY0 + 2 * 86400)  # more traffic later: folded incrementally
    a.refresh()
    assert total(a).conversations == 20 and total(a).rate("containment").value == pytest.approx(0.7)


def test_thumbs_by_intent_and_article_and_latency_percentiles(make_log):
    log = make_log()
    t = DAY0 + HOUR
    for i in range(20):
        cid = log.conversation((t + i, "knowledge"), intent="returns", article="Returns and refunds",
                               latency=10.0 if i < 19 else 500.0)
        log.rate(cid, "down" if i < 4 else "up")
    cid = log.conversation((t, "template"), intent="track_order")
    log.rate(cid, "down")
    a = log.analytics()
    f = total(a)
    assert f.rate("thumbs_down").count == 5 and f.rate("thumbs_down").total == 21
    assert a.top("2025-12-01", "2025-12-31", "article", "down") == [("Returns and refunds", 4, 20)]
    assert a.top("2025-12-01", "2025-12-31", "intent", "down")[0] == ("returns", 4, 20)
    assert f.percentile(0.5) == pytest.approx(10, rel=0.06)
    assert f.percentile(0.99) == pytest.approx(500, rel=0.06)


def test_a_rating_arriving_after_a_refresh_is_counted_once(make_log):
    log = make_log()
    cid = log.conversation((DAY0 + HOUR, "template"))
    a = log.analytics()
    log.rate(cid, "down")
    a.refresh()
    a.refresh()
    assert total(a).down == 1


def test_per_model_version_and_the_promotion_marked_at_its_first_turn(make_log):
    log = make_log()
    ten_conversations(log)  # v1 on day 0
    for i in range(10):
        t = DAY0 + 86400 + HOUR + i * 60
        log.conversation((t, "template"), version="v2")
    a = log.analytics()
    by_version = a.figures("2025-12-01", "2025-12-31", now=NOW, by="model_version")
    assert by_version["v1"].rate("containment").value == pytest.approx(0.7)
    assert by_version["v2"].rate("containment").value == 1.0
    promotions = a.promotions([{"id": 4, "outcome": "promoted", "candidate": "v2"}])
    assert [(p.version, day_of(p.at), p.run) for p in promotions] == [("v2", "2025-12-02", 4)]


def test_changing_the_window_rebuilds_the_rollups(make_log):
    log = make_log()
    ids = ten_conversations(log)
    log.db.execute("insert into turns (conversation_id, created, message, answer, route, quick_replies, sources,"
                   " decision, model_version) values (?, ?, 'x', 'a', 'template', '[]', '[]', '{}', 'v1')",
                   [ids[0], DAY0 + HOUR + 20 + 3 * HOUR])
    assert total(log.analytics(return_window_h=24)).outcomes["returned"] == 1
    assert total(log.analytics(return_window_h=2)).outcomes["returned"] == 0


def test_every_definition_names_its_denominator_and_the_readme_states_them():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, (counts, per) in DEFINITIONS.items():
        assert counts and per
        assert f"`{name}`" in readme, f"README's analytics section does not define {name}"


def test_periods_and_since():
    assert period(7, now=DAY0 + 5) == ("2025-11-25", "2025-12-01")
    assert parse_since("7d") == 7 and parse_since("2w") == 14 and parse_since("30") == 30
    with pytest.raises(ValueError):
        parse_since("yesterday")


def test_refresh_once_folds_one_chunk_at_a_time(make_log, monkeypatch):
    import bot.analytics.figures as analytics

    monkeypatch.setattr(analytics, "CHUNK", 8)
    log = make_log()
    ten_conversations(log)  # 20 turns
    a = Analytics(log.db)
    assert [a.refresh_once() for _ in range(4)] == [(8, False), (8, False), (4, True), (0, True)]
    assert total(a).rate("containment").value == pytest.approx(0.7)


def test_one_drift_retrain_claim_per_week_and_computed_results_round_trip(make_log):
    log = make_log()
    a, other = log.analytics(), Analytics(log.db)  # another process's view of the same tables
    assert a.claim_drift_retrain("2025-W49") and not other.claim_drift_retrain("2025-W49")
    assert other.last_drift_retrain() == "2025-W49"
    a.release_drift_retrain("2025-W49")
    assert other.claim_drift_retrain("2025-W49") and a.last_drift_retrain() == "2025-W49"
    a.store_computed("growing", [{"cluster": "refunds", "growth": 2.5}], computed=DAY0)
    a.store_computed("growing", [{"cluster": "parcels", "growth": 3.0}], computed=DAY0 + 1)
    assert other.computed("growing") == (DAY0 + 1, [{"cluster": "parcels", "growth": 3.0}])
    assert other.computed("nothing") is None


def test_rollups_made_before_migrations_upgrade_in_place_losing_nothing(tmp_path):
    path = tmp_path / "bot.db"
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "databases" / "bot_v0.db", path)
    tables = ("analytics_state", "analytics_daily", "analytics_articles", "analytics_latency",
              "analytics_conversations", "analytics_outcomes", "analytics_versions", "drift_retrains")

    def dump():
        with sqlite3.connect(path) as c:
            return {t: c.execute(f"select * from {t} order by rowid").fetchall() for t in tables}

    before = dump()
    assert [len(before[t]) for t in tables] == [3, 4, 1, 4, 3, 3, 1, 1]
    db = open_database(str(path))
    try:
        a = Analytics(db)
        assert a.refresh() == 0 and dump() == before  # nothing new to fold, nothing rebuilt
        assert a.last_drift_retrain() == "2026-W01" and not a.claim_drift_retrain("2026-W01")
        day = before["analytics_daily"][0][0]
        f = a.figures(day, day, now=4e9)[""]
        assert (f.turns, f.conversations, f.up, f.down) == (5, 3, 1, 1)
        assert f.outcomes["handed_off"] == 1 and a.top(day, day, "article") == [("Shipping", 1, 1)]
    finally:
        db.close()
