#!/usr/bin/env python3
"""Where the time of one chat turn goes: one client, each distinct message of a mix once (no cache hits).

    python benchmarks/profile_turn.py [--state DIR] [--set SECTION.FIELD=VALUE ...]

Serves the demo bot prepared by bench_server.py (`--state`, default var/bench_server; prepared if missing)
with `run_bot.py serve` and sends every distinct message of the realistic and the in-scope mix once, one at
a time. From the server's /metrics: the time inside the server per /api/chat request, of which the intent
model's calls and the knowledge base's searches; the rest of the server's time is routing, the answer, the
conversation log's SQLite write and aiohttp's JSON handling; the client's latency minus the server's time is
HTTP on loopback (and this client). Means per turn, in ms. Writes STATE/profile.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import time
from pathlib import Path

import aiohttp

from bench_server import ROOT, Server, messages, prepare


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{name}\{{?{re.escape(labels)}\}}? ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def profile(state: Path, sets: list[str], mix: str, token: str) -> dict:
    texts = list(dict.fromkeys(messages(mix)))
    server = Server(state, [arg for s in sets for arg in ("--set", s)], token)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession() as session:
            await server.ready(session)
            async with session.post(server.url + "/api/chat", json={"message": "warm up"}) as r:
                await r.read()
            async with session.get(server.url + "/metrics", headers=auth) as r:
                before = await r.text()
            client = 0.0
            for text in texts:
                start = time.perf_counter()
                async with session.post(server.url + "/api/chat", json={"message": text}) as r:
                    await r.read()
                    assert r.status == 200, r.status
                client += time.perf_counter() - start
            async with session.get(server.url + "/metrics", headers=auth) as r:
                after = await r.text()
    finally:
        server.stop()

    def spent(name: str, labels: str = "") -> float:
        return 1000 * (metric(after, name, labels) - metric(before, name, labels)) / len(texts)

    inside = spent("supportbot_http_request_duration_seconds_sum", 'route="/api/chat"')
    model, search = spent("supportbot_model_inference_seconds_sum"), spent("supportbot_knowledge_search_seconds_sum")
    return {"mix": mix, "turns": len(texts), "client_ms": round(1000 * client / len(texts), 2),
            "server_ms": round(inside, 2), "model_ms": round(model, 2), "search_ms": round(search, 2),
            "rest_of_server_ms": round(inside - model - search, 2), "http_ms": round(1000 * client / len(texts) - inside, 2),
            "searches_per_turn": round((metric(after, "supportbot_knowledge_search_seconds_count")
                                        - metric(before, "supportbot_knowledge_search_seconds_count")) / len(texts), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=ROOT / "var" / "bench_server")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = parser.parse_args()
    state = args.state.resolve()
    if not (state / "models" / "CURRENT").is_file():
        prepare(state, args.set)
    token = secrets.token_urlsafe(16)
    rows = [asyncio.run(profile(state, args.set, mix, token)) for mix in ("in-scope", "realistic")]
    (state / "profile.json").write_text(json.dumps({"settings": args.set, "rows": rows}, indent=2))
    print(f"settings: {', '.join(args.set) or 'defaults'}\n\n| mix | turns | client latency | inside the server | intent "
          "model | knowledge search | rest of the server | HTTP on loopback |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mix']} | {r['turns']} | {r['client_ms']} | {r['server_ms']} | {r['model_ms']} | "
              f"{r['search_ms']} ({r['searches_per_turn']} per turn) | {r['rest_of_server_ms']} | {r['http_ms']} |")


if __name__ == "__main__":
    main()
