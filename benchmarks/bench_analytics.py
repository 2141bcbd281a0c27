"""Analytics benchmark: the rollups and the analytics page on a log of 1,000,000 turns.

Generates a conversation log of --turns turns (1,000,000) in about a quarter as many conversations over --days
days (30), with a model promotion two thirds of the way through, ratings on 5 % of answers, returns to some
conversations and half the conversations of verified customers (about 4 each). Then times, in this process:
  1. the first refresh (folding the whole log into the rollups: a deployment that upgrades with a full log),
  2. an incremental refresh after --new (1,000) more turns and their ratings (what each page view pays),
  3. the figures of the page (Analytics calls only),
  4. the analytics page and its JSON API over HTTP (the real app, aiohttp + Jinja2 + SVG, the admin token),
     --requests (20) times each: the first apart (the server's first review-queue sync over the whole log, an
     audit sample of it, happens there: the review workspace's cost, not analytics'), then p50/p95 of the rest
     (each request refreshes first; here no new turns arrive between requests). Meanwhile the server clusters
     the last four weeks' unanswered messages (--distinct, 8,000 distinct texts; at most review.cluster_max of
     them) in the background for "clusters growing fastest": the time until that table is there is measured;
  5. the same after a restart of the server (the first view after a start, the review queue already synced).

    python benchmarks/bench_analytics.py                    # ~5 minutes on 2 cores
    python benchmarks/bench_analytics.py --turns 100000     # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "bot"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROUTES = (("template", 0.48), ("smalltalk", 0.10), ("knowledge", 0.20), ("clarify", 0.06), ("fallback", 0.11),
          ("handoff", 0.05))
INTENTS = [f"intent_{i:02d}" for i in range(60)]
WORDS = "order parcel refund account card payment delivery password invoice address".split()
VOCAB = ("why how when still again today late wrong missing broken new old second first urgent cannot never "
         "really please help").split()  # 20 words: three of them make 8,000 different messages
ARTICLES = [f"Article {i}" for i in range(40)]


def generate(db_path: Path, turns: int, days: int, now: float, seed: int = 0, distinct: int = 8000) -> None:
    """A synthetic log in the conversation log's own schema, written in bulk."""
    from bot.dialogue.conversations import ConversationLog
    from core.sqlite import connect
    from training.redact import RedactSettings, Redactor

    rng = random.Random(seed)
    db = connect(db_path)
    ConversationLog(db, Redactor(RedactSettings()))
    start = now - days * 86400
    promotion = start + days * 86400 * 2 / 3
    routes, weights = zip(*ROUTES)
    turn_rows, convo_rows, feedback_rows, flag_rows = [], [], [], []
    written, turn_id, n = 0, 0, 0
    customers = max(1, turns // 16)  # half the conversations are of verified customers, ~4 each over the period

    def flush() -> None:
        with db.transaction():
            db.conn.executemany("insert into conversations (id, token_hash, created, updated, turns, customer_hash)"
                                " values (?, 'x', ?, ?, ?, ?)", convo_rows)
            db.conn.executemany(
                "insert into turns (id, conversation_id, created, message, answer, route, intent, confidence,"
                " quick_replies, sources, decision, model_version, latency_ms)"
                " values (?, ?, ?, ?, 'an answer', ?, ?, 0.8, '[]', ?, '{}', ?, ?)", turn_rows)
            db.conn.executemany("insert into feedback (turn_id, conversation_id, rating, created) values (?, ?, ?, ?)",
                                feedback_rows)
            db.conn.executemany("insert into flags (turn_id, conversation_id, kind, created) values (?, ?, 'fallback', ?)",
                                flag_rows)
        turn_rows.clear(), convo_rows.clear(), feedback_rows.clear(), flag_rows.clear()

    while written < turns:
        n += 1
        cid = f"c{n:08d}"
        t = start + (written / turns) * days * 86400 + rng.random() * 60
        k = min(turns - written, rng.choice((1, 2, 2, 3, 3, 4, 5, 6, 8)))
        version = "20261101T000000-aaaaaaaa" if t < promotion else "20261120T000000-bbbbbbbb"
        first, customer = t, customer_hash(rng.randrange(customers)) if rng.random() < 0.5 else None
        for i in range(k):
            turn_id += 1
            route = rng.choices(routes, weights)[0]
            if version.endswith("b") and route == "fallback" and rng.random() < 0.3:
                route = "template"  # the promoted model answers more
            intent = rng.choice(INTENTS) if route in ("template", "knowledge", "clarify") else None
            sources = json.dumps([{"title": rng.choice(ARTICLES), "url": ""}]) if route == "knowledge" else "[]"
            message = "a message"
            if route == "fallback":  # many different unanswered messages; more and more of them about refunds
                word = "refund" if rng.random() < 0.4 * (t - start) / (days * 86400) else rng.choice(WORDS)
                pick = rng.randrange(distinct)
                message = f"{' '.join(VOCAB[pick // 20 ** j % 20] for j in range(3))} about my {word}"
                flag_rows.append((turn_id, cid, t))
            turn_rows.append((turn_id, cid, t, message, route, intent, sources, version, rng.lognormvariate(2.5, 0.6)))
            if route in ("template", "knowledge") and rng.random() < 0.05:
                feedback_rows.append((turn_id, cid, "down" if rng.random() < 0.3 else "up", t + 5))
            t += rng.choice((15, 30, 60, 120)) if rng.random() > 0.03 else 3 * 3600  # sometimes a return
        convo_rows.append((cid, first, t, k, customer))
        written += k
        if len(turn_rows) >= 100_000:
            flush()
    flush()
    db.close()


def customer_hash(i: int) -> str:
    return f"{i:064x}"  # stands for a keyed hash (bot/serving/identity.py): 64 hex digits


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def serve_and_time(folder, requests: int) -> dict:
    """One server start: the page and the API timed, then how long the server takes to compute the clusters
    growing fastest in the background (None: not within 10 minutes)."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.web.app import create_app
    from runtime_doubles import FakeSource, ScriptedKnowledge

    started, wall = time.perf_counter(), time.time()
    app = create_app(folder.settings, folder, models=FakeSource("20261120T000000-bbbbbbbb"),
                     open_knowledge=ScriptedKnowledge)
    client = TestClient(TestServer(app))
    await client.start_server()
    headers = {"Authorization": "Bearer bench-token"}
    out = {}
    try:
        for _ in range(500):
            if (await client.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.02)
        for path in ("/review/analytics", "/api/review/analytics"):
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                response = await client.get(path, headers=headers)
                body = await response.read()
                times.append(time.perf_counter() - t0)
                assert response.status == 200, body[:300]
            first, rest = times[0], times[1:] or times
            out[path] = {"first_ms": round(1000 * first, 1), "p50_ms": round(1000 * statistics.median(rest), 1),
                         "p95_ms": round(1000 * percentile(rest, 0.95), 1), "bytes": len(body)}
        out["growing_ready_s"] = out["growing_rows"] = None
        while time.perf_counter() - started < 600:  # until a table computed since this start is there
            data = await (await client.get("/api/review/analytics", headers=headers)).json()
            if (data["growing_computed"] or 0) >= wall:
                out["growing_ready_s"] = round(time.perf_counter() - started, 1)
                out["growing_rows"] = len(data["tables"]["growing_clusters"])
                break
            await asyncio.sleep(0.5)
    finally:
        await client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "analytics.json"))
    args = parser.parse_args()

    from bot.analytics.figures import Analytics, period
    from bot.folder.bot_folder import BotFolder
    from core.sqlite import connect
    from runtime_doubles import write_bot

    now = time.time()
    result = {"turns": args.turns, "days": args.days, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
              f"{platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}"}
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        db_path = state / "supportbot.db"
        t0 = time.perf_counter()
        generate(db_path, args.turns, args.days, now - 3600 * 25)  # the newest conversations settled too
        result["generate_s"] = round(time.perf_counter() - t0, 1)
        result["db_mb"] = round(db_path.stat().st_size / 1e6)
        conversations = connect(db_path).execute("select count(*) from conversations").fetchone()[0]
        result["conversations"] = conversations
        print(f"generated {args.turns} turns in {conversations} conversations ({result['generate_s']} s)", flush=True)

        db = connect(db_path)
        a = Analytics(db)
        t0 = time.perf_counter()
        a.refresh()
        result["first_refresh_s"] = round(time.perf_counter() - t0, 2)
        print(f"first refresh: {result['first_refresh_s']} s", flush=True)

        generate_more(db, args.new, now)
        t0 = time.perf_counter()
        folded = a.refresh()
        result["incremental_refresh_ms"] = round(1000 * (time.perf_counter() - t0), 1)
        print(f"incremental refresh of {folded} turns: {result['incremental_refresh_ms']} ms", flush=True)

        since, until = period(args.days, now)
        t0 = time.perf_counter()
        total = a.breakdown(since, until, now=now)[""][""]
        a.top(since, until, "intent"), a.top(since, until, "intent", "down"), a.top(since, until, "article", "down")
        result["figures_ms"] = round(1000 * (time.perf_counter() - t0), 1)
        result["containment"] = str(total.rate("containment"))
        print(f"figures: {result['figures_ms']} ms; containment {result['containment']}", flush=True)
        db.close()

        bot = write_bot(Path(tmp) / "bot")
        folder = BotFolder.load(bot, [f'state_dir="{state}"', 'server.admin_token="bench-token"',
                                      "server.watch_interval=0", "server.access_log=false"])
        result["http"] = asyncio.run(serve_and_time(folder, args.requests))
        print(json.dumps(result["http"]), flush=True)
        result["http_after_restart"] = asyncio.run(serve_and_time(folder, args.requests))
        print(json.dumps(result["http_after_restart"]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def generate_more(db, turns: int, now: float) -> None:
    """New traffic after the first refresh: new conversations, of customers seen before, and a return to an old one."""

    with db.transaction():
        top = db.execute("select max(id) from turns").fetchone()[0]
        for i in range(turns):
            cid = f"new{i // 4:06d}"
            if i % 4 == 0:
                db.execute("insert into conversations (id, token_hash, created, updated, customer_hash)"
                           " values (?, 'x', ?, ?, ?)", [cid, now - 60, now, customer_hash(i)])  # returning customers
            db.execute("insert into turns (id, conversation_id, created, message, answer, route, intent, quick_replies,"
                       " sources, decision, model_version, latency_ms) values (?, ?, ?, 'm', 'a', 'template',"
                       " 'intent_01', '[]', '[]', '{}', '20261120T000000-bbbbbbbb', 12.0)", [top + i + 1, cid, now - 60 + i * 0.01])
        db.execute("insert into feedback (turn_id, conversation_id, rating, created) values (?, ?, 'down', ?)",
                   [top + 1, "new000000", now])


if __name__ == "__main__":
    main()
