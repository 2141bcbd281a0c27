"""Review workspace benchmark: queue and item page latency on a large log, and clustering time.

Generates a conversation log of --turns turns (200,000) with --flags flags (40,000) spread over a few thousand
distinct message texts (so near-identical messages group), files them into the queue (ReviewDesk.sync), then
serves the real app (aiohttp, Jinja2 pages, the admin token for identity) in this process and requests queue
pages (default view, a kind filter, most frequent first, a text search, deep pages through the keyset cursor)
and item pages, one at a time, reporting p50/p99. Then clusters --unanswered (5,000) unanswered messages with
the real packaged MiniLM embedder, timing the embedding and the clustering separately.

    python benchmarks/bench_review.py                         # a few minutes on 2 cores
    python benchmarks/bench_review.py --turns 20000 --flags 4000 --unanswered 500 --requests 50   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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

WORDS = {
    "verb": "track cancel change return refund exchange find send update reset deliver replace repair pay".split(),
    "thing": ("order parcel lamp table chair sofa rug mirror voucher invoice receipt account password address "
              "payment card refund delivery basket wardrobe").split(),
    "when": "today tomorrow yesterday last week this morning on monday asap soon now again".split(),
    "lead": "hi hello please help can you could you i need to i want to how do i where can i".split(" "),
}
KINDS = ("low_confidence", "fallback", "clarification", "negative_feedback", "handoff")
ROUTES = ("template", "knowledge", "fallback", "clarify", "handoff")
INTENTS = ("track_order", "cancel_order", "refund_status", "start_return", "change_order", None)


DISTINCT = 6000  # distinct message texts before the order number: a long tail of rare ones, a few frequent ones


def message(rng: random.Random) -> str:
    return (f"{rng.choice(WORDS['lead'])} {rng.choice(WORDS['verb'])} my {rng.choice(WORDS['thing'])} "
            f"{rng.choice(WORDS['when'])} {rng.choice(WORDS['thing'])}")


def pool(rng: random.Random) -> tuple[list[str], list[float]]:
    texts = list(dict.fromkeys(message(rng) for _ in range(DISTINCT * 2)))[:DISTINCT]
    return texts, [1.0 / (rank + 1) ** 0.8 for rank in range(len(texts))]  # Zipf-like frequencies


def generate(db_path: Path, turns: int, flags: int, seed: int = 0) -> None:
    """A synthetic log, written in bulk (the conversation log's own schema; one row per turn)."""
    from bot.dialogue.conversations import ConversationLog
    from core.sqlite import connect
    from training.redact import Redactor

    log = ConversationLog(connect(db_path), Redactor())
    db = log.db
    rng = random.Random(seed)
    now = time.time()
    per_conversation = 5
    flagged = set(rng.sample(range(1, turns + 1), flags))
    texts, weights = pool(rng)
    cumulative = list(itertools.accumulate(weights))
    with db.transaction():
        for c in range(turns // per_conversation):
            db.execute("insert into conversations (id, token_hash, created, updated, turns) values (?, '', ?, ?, ?)",
                       [f"c{c}", now, now, per_conversation])
        rows, flag_rows = [], []
        for t in range(1, turns + 1):
            created = now - (turns - t) * 30.0  # one turn every 30 s: ~70 days
            route = rng.choice(ROUTES) if t in flagged else rng.choice(("template", "knowledge"))
            intent = rng.choice(INTENTS)
            conf = rng.random()
            decision = {"route": route, "reason": "generated", "intent": intent, "confidence": conf,
                        "alternatives": [["track_order", conf], ["refund_status", conf / 2]],
                        "sources": [{"title": "Returns", "url": "https://help.example/returns", "score": 0.61}],
                        "model_version": f"v{1 + t * 3 // turns}", "latency_ms": 5.0, "kb_score": 0.4, "slot": None,
                        "flags": []}
            text = f"{rng.choices(texts, cum_weights=cumulative)[0]} NW-{rng.randrange(10 ** 6):06d}"
            rows.append((t, f"c{(t - 1) // per_conversation}", created, text, "an answer", route, intent, conf,
                         "[]", json.dumps(decision["sources"]), json.dumps(decision), decision["model_version"], 5.0))
            if t in flagged:
                flag_rows.append((t, f"c{(t - 1) // per_conversation}", rng.choice(KINDS), "generated", created))
        db.conn.executemany("insert into turns (id, conversation_id, created, message, answer, route, intent, confidence,"
                            " quick_replies, sources, decision, model_version, latency_ms)"
                            " values (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.conn.executemany("insert into flags (turn_id, conversation_id, kind, detail, created) values (?,?,?,?,?)",
                            flag_rows)
    db.close()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def serve_and_measure(folder, requests: int, seed: int) -> dict[str, dict[str, float]]:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.web.app import create_app
    from runtime_doubles import FakeSource, ScriptedKnowledge

    app = create_app(folder.settings, folder, models=FakeSource(), open_knowledge=lambda: ScriptedKnowledge())
    headers = {"Authorization": "Bearer bench-token"}
    rng = random.Random(seed)
    results: dict[str, list[float]] = {}
    async with TestClient(TestServer(app)) as client:
        for _ in range(200):
            if (await client.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.05)

        async def timed(name: str, path: str) -> str:
            start = time.perf_counter()
            response = await client.get(path, headers=headers)
            body = await response.text()
            results.setdefault(name, []).append((time.perf_counter() - start) * 1000)
            assert response.status == 200, (path, response.status, body[:300])
            return body

        first = await (await client.get("/api/review/queue?status=", headers=headers)).json()
        assert first["items"], "the queue is empty"
        await timed("warm-up", "/review")
        ids = []
        cursor = None
        for _ in range(20):  # collect item ids and cursors for deep pages
            page = await (await client.get("/api/review/queue" + (f"?cursor={cursor}" if cursor else ""),
                                           headers=headers)).json()
            ids += [g["id"] for g in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        deep = cursor
        views = {
            "queue: newest (default)": "/review",
            "queue: kind = negative_feedback": "/review?kind=negative_feedback",
            "queue: most frequent first": "/review?sort=frequent",
            "queue: text search 'wardrobe'": "/review?q=wardrobe",
            "queue: intent + model version": "/review?intent=refund_status&model_version=v2",
            "queue: page 20 (keyset cursor)": f"/review?cursor={deep}" if deep else "/review",
        }
        for _ in range(requests):
            for name, path in views.items():
                await timed(name, path)
            await timed("item page", f"/review/items/{rng.choice(ids)}")
    results.pop("warm-up", None)
    return {name: {"n": len(v), "p50_ms": round(statistics.median(v), 1), "p99_ms": round(pct(v, 0.99), 1)}
            for name, v in results.items()}


def clustering(n: int, seed: int) -> dict[str, float]:
    from bot.review.unanswered import find
    from bot.settings import ReviewSettings
    from knowledge.embedder import SentenceEmbedder

    rng = random.Random(seed)
    texts = list(dict.fromkeys(message(rng) for _ in range(n * 3)))[:n]
    messages = [{"group_id": i, "turn_id": i, "text": t, "size": 1, "decision": None, "last_seen": time.time()}
                for i, t in enumerate(texts)]
    embedder = SentenceEmbedder()
    embedder.encode(["warm up"])
    start = time.perf_counter()
    vectors = embedder.encode(texts)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    findings = find(messages, lambda batch: vectors if len(batch) == len(texts) else embedder.encode(batch),
                    {"track_order": ["where is my order", "track my parcel"]}, min_size=3, similarity=0.6,
                    distance=ReviewSettings().cluster_distance)
    cluster_s = time.perf_counter() - start
    return {"messages": len(texts), "embed_s": round(embed_s, 1), "cluster_s": round(cluster_s, 1),
            "clusters": len(findings)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=200_000)
    parser.add_argument("--flags", type=int, default=40_000)
    parser.add_argument("--unanswered", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200, help="requests per page view")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "review.json")
    args = parser.parse_args()

    from bot.folder.bot_folder import BotFolder
    from bot.review.desk import ReviewDesk
    from core.sqlite import connect
    from runtime_doubles import write_bot

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = BotFolder.load(write_bot(tmp / "bot"), [f'state_dir="{tmp / "state"}"', 'server.admin_token="bench-token"',
                                                         "server.watch_interval=0", "server.rate_limit=0"])
        start = time.perf_counter()
        generate(folder.settings.db_path, args.turns, args.flags, args.seed)
        generate_s = time.perf_counter() - start
        start = time.perf_counter()
        desk = ReviewDesk(connect(folder.settings.db_path), folder)
        filed = desk.sync()
        groups = desk.reviews.counts("")["all"]
        desk.db.close()
        sync_s = time.perf_counter() - start
        print(f"log: {args.turns} turns, {args.flags} flags, generated in {generate_s:.0f} s; filed {filed} into "
              f"{groups} groups in {sync_s:.1f} s", flush=True)
        pages = asyncio.run(serve_and_measure(folder, args.requests, args.seed))
    for name, r in pages.items():
        print(f"{name:<36} p50 {r['p50_ms']:>7.1f} ms   p99 {r['p99_ms']:>7.1f} ms   (n={r['n']})", flush=True)
    cl = clustering(args.unanswered, args.seed)
    print(f"clustering {cl['messages']} unanswered messages: embedding {cl['embed_s']} s, clustering {cl['cluster_s']} s, "
          f"{cl['clusters']} clusters", flush=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "load_1min": os.getloadavg()[0], "turns": args.turns, "flags": args.flags, "groups": groups,
              "sync_s": round(sync_s, 1), "pages": pages, "clustering": cl}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
