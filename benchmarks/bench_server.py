"""Chat server benchmark: the demo bot under 1, 16 and 64 concurrent clients, from a separate process.

Prepares the demo store bot (train + ingest, reused across runs), starts `run_bot.py serve` as its own
process on 127.0.0.1, and drives POST /api/chat with closed-loop clients that each hold a
conversation (a new one every few turns, or after a handoff), then with the most clients in open loop
at a fixed offered rate (--offered, latency counted from when each message was due). The message mix
is the demo bot's held-out intent test set (about a quarter out of scope) plus its knowledge-base questions.
Reports requests/s, p50/p99 latency, errors and the server's RSS, for micro-batching on and (the
baseline, same run) batch size 1, on the realistic mix and on an in-scope mix that never searches;
then 16 clients alone and beside one hostile client that sends only unencodable, oversized or deeply nested
requests as fast as it is answered (the normal clients' errors should be 0); then RSS across repeated hot reloads. The 1-minute load average is recorded per level:
on a shared machine other work competes for the cores.

    python benchmarks/bench_server.py                      # full run, a few minutes on 2 cores
    python benchmarks/bench_server.py --levels 1 16 --seconds 10 --no-baseline
    python benchmarks/bench_server.py --set train.quantize=true   # serve the int8 model
    python benchmarks/bench_server.py --before --no-baseline     # ONNX Runtime against the PyTorch default before it
    python benchmarks/bench_server.py --levels 16 --seconds 15 --no-baseline --offered 0 --reloads 0   # hostile row
    python benchmarks/bench_server.py --workers 1 2 --levels 64 --offered 0 --reloads 0 --hostile 0   # scale-out
    python benchmarks/bench_server.py --workers 1 2 --postgres --levels 64 --offered 0 --reloads 0 --hostile 0
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "benchmarks" / "data"
TURNS_PER_CONVERSATION = 6


def messages(mix: str) -> list[str]:
    """`realistic`: the held-out intent set (out-of-scope included) and the KB questions;
    `in-scope`: only held-out messages of the bot's own intents (the classifier path, no searches)."""
    with open(ROOT / "examples" / "demo_store" / "evaluation.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = [r["text"] for r in rows if mix == "realistic" or r["intent"] not in ("out_of_scope", "product_question")]
    if mix == "realistic":
        with open(DATA / "demo_kb_questions.csv", newline="") as f:
            texts += [row["question"] for row in csv.DictReader(f)]
    random.Random(0).shuffle(texts)
    return texts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The server's memory: its process and, with --workers, its worker processes (summed)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except FileNotFoundError:
            continue
        total += next((int(line.split()[1]) / 1024 for line in lines if line.startswith(field + ":")), 0.0)
    return total or float("nan")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return found


class Server:
    """`run_bot.py serve` of the prepared demo bot in its own process."""

    def __init__(self, state: Path, extra: list[str], token: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(state / f"server-{self.port}.log", "wb")
        command = [sys.executable, str(ROOT / "run_bot.py"), "serve", "--port", str(self.port),
                   "--set", f'state_dir="{state}"', "--set", "server.rate_limit=100000",
                   "--set", "server.rate_burst=100000", "--set", "server.new_conversation_rate=0",
                   "--set", "server.handoff_rate=0", "--set", "server.watch_interval=0", *extra]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "SUPPORTBOT_ADMIN_TOKEN": token}
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=state)
        self.workers = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1

    async def ready(self, session: aiohttp.ClientSession, timeout: float = 900) -> None:
        """Until every worker answers /readyz (each probe on a new connection, which the kernel may give any) and
        the first one has caught up on what earlier runs logged (`catching_up`: the analytics fold, the review
        queue and the growing clusters, work a long-running server has behind it), so that the load meets a
        server in its steady state. Prints how long the catch-up took."""
        started = deadline = time.monotonic()
        deadline += timeout
        seen, settled = set(), False
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log.name}")
            try:
                async with session.get(self.url + "/readyz", headers={"Connection": "close"}) as r:
                    if r.status == 200:
                        body = await r.json()
                        seen.add(body.get("worker"))
                        settled |= body.get("worker") in (None, 0) and not body.get("catching_up")
                        if len(seen) == self.workers and settled:
                            print(f"  ready and caught up {time.monotonic() - started:.0f} s after start", flush=True)
                            return
                        await asyncio.sleep(0.2)
                        continue
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
        raise TimeoutError("server not ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def client(session: aiohttp.ClientSession, url: str, texts: list[str], offset: int, stop: float,
                 budget: list[int], latencies: list[float], errors: list[str], interval: float = 0.0) -> None:
    """One user: send, wait for the answer, send the next; a new conversation every few turns.

    Closed loop when `interval` is 0. Otherwise messages are due on a Poisson schedule with that mean
    interval (open loop): a message due while the previous answer is still coming is sent on arrival,
    and latency counts from when it was due, so a slow server cannot hide its queue.
    """
    rng = random.Random(offset)
    convo: dict = {}
    turn = 0
    due = time.monotonic() + (rng.expovariate(1 / interval) if interval else 0.0)
    while budget[0] > 0 and time.monotonic() < stop:
        budget[0] -= 1
        body = {"message": texts[(offset + turn) % len(texts)]}
        if convo and turn % TURNS_PER_CONVERSATION:
            body.update(conversation_id=convo["conversation_id"], token=convo["token"])
        if interval:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            start = time.perf_counter() - max(0.0, time.monotonic() - due)
            due += rng.expovariate(1 / interval)
        else:
            start = time.perf_counter()
        try:
            async with session.post(url + "/api/chat", json=body) as r:
                reply = await r.json()
                if r.status != 200:
                    errors.append(f"{r.status}: {reply.get('error')}")
                    continue
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            errors.append(type(e).__name__)
            continue
        latencies.append((time.perf_counter() - start) * 1000)
        convo = {} if reply["handoff"] else reply
        turn = turn + 1 if convo else 0


# What the hostile client sends, in turn: text no tokenizer can encode (valid JSON), bodies over the size limit,
# JSON nested thousands deep, messages of NUL and control characters, an integer beyond 64 bits.
HOSTILE = [
    b'{"message": "where is my order \\ud800 AB12345"}',
    b'{"message": "' + b"a" * 20000 + b'"}',
    b"[" * 5000 + b"]" * 5000,
    b'{"message": "\\u0000\\u0000\\u0001\\u001b"}',
    b'{"message": "\\udfff"}',
    b'{"message": "hi", "conversation_id": 18446744073709551616}',
]


async def hostile(session: aiohttp.ClientSession, url: str, stop: float, statuses: dict, budget: list[int]) -> None:
    """One client sending only bad requests, as fast as the server answers (and its rate limit allows), for as
    long as the normal clients run."""
    i = 0
    while budget[0] > 0 and time.monotonic() < stop:
        body = HOSTILE[i % len(HOSTILE)]
        i += 1
        try:
            async with session.post(url + "/api/chat", data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1
                if r.status == 429:
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1


async def level(server: Server, session: aiohttp.ClientSession, texts: list[str], clients: int,
                requests: int, seconds: float, offered: float = 0.0, with_hostile: bool = False) -> dict:
    """`clients` closed-loop users, or with `offered` (requests/s in all) open-loop ones; `with_hostile` adds
    one client sending only bad requests beside them (their errors count apart)."""
    latencies: list[float] = []
    errors: list[str] = []
    budget = [requests]
    start = time.perf_counter()
    stop = time.monotonic() + seconds
    interval = clients / offered if offered else 0.0
    hostile_statuses: dict = {}
    extra = [hostile(session, server.url, stop, hostile_statuses, budget)] if with_hostile else []
    await asyncio.gather(*(client(session, server.url, texts, i * 37, stop, budget, latencies, errors, interval)
                           for i in range(clients)), *extra)
    elapsed = time.perf_counter() - start
    latencies.sort()
    if not latencies:
        raise RuntimeError(f"no request answered: {len(errors)} errors, {sorted(set(errors))[:5]}; see {server.log.name}")
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    label = f"{clients}, open loop at {offered:g}/s" if offered else clients
    return {
        "clients": f"{clients} + 1 hostile" if with_hostile else label,
        **({"hostile": {str(k): v for k, v in sorted(hostile_statuses.items(), key=str)}} if with_hostile else {}),
        "requests": len(latencies) + len(errors), "seconds": round(elapsed, 1),
        "rps": round(len(latencies) / elapsed, 1), "p50_ms": round(q[49], 1), "p99_ms": round(q[98], 1),
        "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
        "rss_mb": round(rss_mb(server.process.pid), 1), "load_avg_1m": round(os.getloadavg()[0], 1),
    }


async def stats(server: Server, session: aiohttp.ClientSession, token: str) -> dict:
    async with session.get(server.url + "/admin/stats", headers={"Authorization": f"Bearer {token}"}) as r:
        return await r.json()


async def reload_memory(server: Server, session: aiohttp.ClientSession, texts: list[str], token: str,
                        swaps: int) -> dict:
    """RSS before and after `swaps` forced model reloads, each followed by some chat traffic."""
    auth = {"Authorization": f"Bearer {token}"}
    await level(server, session, texts, 4, 40, 30)
    before = rss_mb(server.process.pid)
    after_each, seconds = [], []
    for _ in range(swaps):
        start = time.perf_counter()
        async with session.post(server.url + "/admin/reload", json={"force": True}, headers=auth) as r:
            assert r.status == 200, await r.text()
        seconds.append(time.perf_counter() - start)
        await level(server, session, texts, 4, 40, 30)
        after_each.append(round(rss_mb(server.process.pid), 1))
    return {"swaps": swaps, "rss_before_mb": round(before, 1), "rss_after_mb": after_each[-1],
            "rss_after_first_5_mb": after_each[:5], "rss_after_last_5_mb": after_each[-5:],
            "swap_s_median": round(statistics.median(seconds), 2)}


BEFORE = ["train.onnx=false", "knowledge.embedder_runtime=torch", "server.cache_size=0"]  # before ONNX Runtime


def prepare(state: Path, sets: list[str]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(ROOT / "run_bot.py"), "demo", "--no-serve", "--set", f'state_dir="{state}"',
                    *(arg for setting in sets for arg in ("--set", setting))], check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})


async def run(args: argparse.Namespace) -> dict:
    state = args.state.resolve()
    prepare(state, args.set)
    if args.postgres_url:  # the prepared state copied into the (empty) PostgreSQL database
        subprocess.run([sys.executable, str(ROOT / "run_bot.py"), "db", "copy", "--to", args.postgres_url,
                        "--set", f'state_dir="{state}"'], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                       stdout=subprocess.DEVNULL)
    token = secrets.token_urlsafe(16)
    batching = [arg for setting in args.set for arg in ("--set", setting)]
    baseline = [*batching, "--set", "server.batch_size=1"]
    settings = ", ".join(args.set) or "defaults"
    configs = [(f"realistic mix, micro-batching ({settings})", batching, "realistic", state)]
    if args.before:  # the previous default, trained and served in its own state folder
        before = state.parent / (state.name + "-before")
        prepare(before, BEFORE)
        sets = [arg for setting in BEFORE for arg in ("--set", setting)]
        configs += [(f"realistic mix, before: PyTorch, no prediction cache ({', '.join(BEFORE)})", sets, "realistic", before),
                    (f"in-scope mix, micro-batching ({settings})", batching, "in-scope", state),
                    (f"in-scope mix, before: PyTorch, no prediction cache ({', '.join(BEFORE)})", sets, "in-scope", before)]
    if not args.no_baseline:
        configs += [(f"realistic mix, baseline: batch size 1 ({settings})", baseline, "realistic", state),
                    (f"in-scope mix, micro-batching ({settings})", batching, "in-scope", state),
                    (f"in-scope mix, baseline: batch size 1 ({settings})", baseline, "in-scope", state)]
    if args.workers:  # the scale-out comparison instead: the same bot in 1, 2, ... worker processes, per engine
        engines = [("SQLite", [])] + ([("PostgreSQL", ["--set", f'database.url="{args.postgres_url}"'])]
                                      if args.postgres_url else [])
        configs = [(f"{mix} mix, {w} worker{'s' if w > 1 else ''}, {engine}",
                    [*batching, "--workers", str(w), *database], mix, state)
                   for engine, database in engines for w in args.workers for mix in ("realistic", "in-scope")]
    configs = list({c[0]: c for c in configs}.values())  # each configuration once
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                     "configs": []}
    timeout = aiohttp.ClientTimeout(total=30)
    for name, extra, mix, folder in configs:
        texts = messages(mix)
        server = Server(folder, extra, token)
        try:
            async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
                await server.ready(session)
                await level(server, session, texts, 4, 100, 30)  # warm-up
                before = (await stats(server, session, token))["routes"]
                rows = [await level(server, session, texts, n, args.requests * max(1, n // 4), args.seconds)
                        for n in args.levels]
                if args.hostile and name == configs[0][0]:  # the same clients, then beside one hostile client
                    n = args.hostile
                    rows += [await level(server, session, texts, n, args.requests * max(1, n // 4), args.seconds),
                             await level(server, session, texts, n, args.requests * max(1, n // 4), args.seconds,
                                         with_hostile=True)]
                if args.offered:
                    n = max(args.levels)
                    rows.append(await level(server, session, texts, n, int(args.offered * args.seconds),
                                            args.seconds, args.offered))
                after = await stats(server, session, token)
                after["routes"] = {k: v - before.get(k, 0) for k, v in after["routes"].items() if v > before.get(k, 0)}
                config = {"name": name, "messages": len(texts), "levels": rows, "server_stats": after,
                          "peak_rss_mb": round(rss_mb(server.process.pid, "VmHWM"), 1)}
                if name == configs[0][0] and args.reloads:
                    config["reload"] = await reload_memory(server, session, texts, token, args.reloads)
                results["configs"].append(config)
        finally:
            server.stop()
    if args.postgres_url:  # what a turn costs on disk there, for sizing (BENCHMARKS.md)
        from core.engine import open_database

        db = open_database(args.postgres_url)
        size, turns = db.execute("SELECT pg_database_size(current_database()), (SELECT count(*) FROM turns)").fetchone()
        results["postgres"] = {"database_mb": round(size / 1e6, 1), "turns": turns}
        db.close()
    return results


def markdown(results: dict) -> str:
    lines = [f"Machine: {results['machine']}.", "",
             "| configuration | clients | requests | req/s | p50 ms | p99 ms | errors | server RSS MB | load avg |",
             "|---|---|---|---|---|---|---|---|---|"]
    for config in results["configs"]:
        for row in config["levels"]:
            lines.append(f"| {config['name']} | {row['clients']} | {row['requests']} | {row['rps']} | "
                         f"{row['p50_ms']} | {row['p99_ms']} | {row['errors']} | {row['rss_mb']} | "
                         f"{row['load_avg_1m']} |")
    for config in results["configs"]:
        for row in config["levels"]:
            if "hostile" in row:
                lines.append(f"\n{config['name']}, {row['clients']}: the hostile client's answers by status "
                             f"{row['hostile']}; the normal clients' errors {row['errors']} {row['error_kinds']}")
    for config in results["configs"]:
        s = config["server_stats"]
        lines.append(f"\n{config['name']} ({config['messages']} distinct messages): "
                     f"{s.get('batches')} model calls, mean batch {s.get('mean_batch')}; "
                     f"routes {s.get('routes')}; peak RSS {config['peak_rss_mb']} MB")
        if "reload" in config:
            r = config["reload"]
            lines.append(f"hot reload: RSS {r['rss_before_mb']} MB before, {r['rss_after_mb']} MB after "
                         f"{r['swaps']} forced swaps (after swaps 1-5: {r['rss_after_first_5_mb']}; "
                         f"last 5: {r['rss_after_last_5_mb']}); a swap takes {r.get('swap_s_median')} s (median)")
    if "postgres" in results:
        p = results["postgres"]
        lines.append(f"\nPostgreSQL database after the runs: {p['database_mb']} MB for {p['turns']} turns")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=ROOT / "var" / "bench_server",
                        help="state folder for the prepared demo bot (reused across runs)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64], help="concurrent clients")
    parser.add_argument("--requests", type=int, default=400, help="requests per level per 4 clients (at least this)")
    parser.add_argument("--seconds", type=float, default=30, help="most seconds per level")
    parser.add_argument("--offered", type=float, default=150,
                        help="also the most clients in open loop at this many requests/s in all (0 = skip)")
    parser.add_argument("--reloads", type=int, default=20, help="forced model swaps for the memory check (0 = skip)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="a setting for the server under test, e.g. train.quantize=true (repeatable)")
    parser.add_argument("--hostile", type=int, default=16,
                        help="also this many clients alone, then beside one client sending only bad requests "
                             "(unencodable, oversized, deeply nested; 0 = skip)")
    parser.add_argument("--before", action="store_true",
                        help="also the previous default on both mixes: PyTorch for the intent model and the "
                             "embedder, no prediction cache, trained in its own state folder (STATE-before)")
    parser.add_argument("--workers", type=int, nargs="+", default=[],
                        help="instead of the configurations above: both mixes served by this many worker processes "
                             "each (serve --workers N), e.g. --workers 1 2")
    parser.add_argument("--postgres", action="store_true",
                        help="with --workers: also on PostgreSQL (a throwaway local server with PostgreSQL's own "
                             "durability defaults, the prepared state copied into it by `db copy`)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="only the realistic mix with default settings (skip baselines and the in-scope mix)")
    args = parser.parse_args()
    args.postgres_url = ""
    if args.postgres:
        from tests.support.postgres import postgres_server

        with postgres_server(durable=True) as args.postgres_url:
            results = asyncio.run(run(args))
    else:
        results = asyncio.run(run(args))
    (args.state / "results.json").write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
