"""Rate limits on PostgreSQL (issue 19): the buckets live in the bot's database, so two machines on it (here two
connections, and two servers with different state folders) count a client's requests together."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import pytest

from bot.serving.limits import BucketsUnavailable, FailedLogins, PostgresBuckets
from bot.analytics.jobs import catch_up
from bot.web.app import create_app
from bot.web.runtime import RUNTIME
from bot.web.security import RateLimiter
from tests.support.bots import JsonErrorServer, app_ready
from tests.support.waiting import eventually
from core.engine import PostgresDatabase, open_database
from runtime_doubles import FakeSource, ScriptedKnowledge, load_folder

KEY = "requests:a:203.0.113.7"


def test_two_machines_share_one_bucket_and_it_refills_at_the_rate(postgres_url):
    a, b = PostgresBuckets(postgres_url), PostgresBuckets(postgres_url)  # two connections: two machines
    try:
        taken = [(a if n % 2 else b).take(KEY, rate=1.0, burst=3, now=1000.0) for n in range(8)]
        assert taken == [True] * 3 + [False] * 5  # a burst of 3 in all, not 3 each
        assert [a.take(KEY, 1.0, 3, now=1002.5), b.take(KEY, 1.0, 3, now=1002.5), a.take(KEY, 1.0, 3, now=1002.5)] \
            == [True, True, False]  # 2.5 s at 1/s: two tokens back
        assert b.take("requests:a:198.51.100.1", 1.0, 3, now=1002.5)  # another client has its own bucket
        db = open_database(postgres_url)
        try:
            keys = [row[0] for row in db.execute("select key from rate_buckets")]
        finally:
            db.close()
        assert len(keys) == 2 and not any("203.0.113.7" in k for k in keys)  # hashed
    finally:
        a.close(), b.close()


def test_concurrent_checks_never_allow_more_than_the_burst(postgres_url):
    machines = [PostgresBuckets(postgres_url) for _ in range(6)]
    start, allowed = threading.Barrier(len(machines)), []

    def client(buckets: PostgresBuckets) -> None:
        start.wait()
        allowed.extend(buckets.take(KEY, rate=1e-9, burst=10) for _ in range(20))

    threads = [threading.Thread(target=client, args=(m,)) for m in machines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m in machines:
        m.close()
    assert len(allowed) == 120 and sum(allowed) == 10


def test_a_lost_connection_counts_in_the_process_and_logs_no_key(postgres_url, monkeypatch, caplog):
    buckets = PostgresBuckets(postgres_url)
    limiter = RateLimiter(rate=1e-9, burst=2, shared=buckets, name="requests")
    try:
        assert limiter.allow("a:203.0.113.7")  # one token taken in PostgreSQL
        db = open_database(postgres_url)  # the server drops the bot's connection (a restart, a failover)
        try:
            db.execute("select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid() "
                       "and datname = current_database()")
        finally:
            db.close()
        with caplog.at_level(logging.WARNING, logger="supportbot.limits"):
            assert [limiter.allow("a:203.0.113.7") for _ in range(3)] == [True, True, False]  # in-process bucket
        assert "counting in this process" in caplog.text and "203.0.113.7" not in caplog.text
        # once per outage, not once per request (the pool logs the connection it discarded, too)
        assert len([r for r in caplog.records if r.name == "supportbot.limits"]) == 1
        monkeypatch.setattr("bot.serving.limits.RETRY_AFTER", 0.0)
        assert limiter.allow("a:203.0.113.7")  # reconnected: PostgreSQL's bucket had one token left
        assert not limiter.allow("a:203.0.113.7")
        assert "answers again" in caplog.text
    finally:
        buckets.close()


def unreachable_buckets(postgres_url: str) -> PostgresBuckets:
    """Buckets migrated on the test server, then pointed at a port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    buckets = PostgresBuckets(postgres_url)
    buckets._db.close()
    buckets._db = PostgresDatabase(f"postgresql://nobody@127.0.0.1:{port}/none", connect_timeout=2)
    return buckets


def test_an_unreachable_server_is_refused_fast_as_unavailable(postgres_url):
    buckets = unreachable_buckets(postgres_url)
    limiter = RateLimiter(rate=1e-9, burst=1, shared=buckets, name="requests")
    assert [limiter.allow("a:x") for _ in range(2)] == [True, False]  # counted here, no exception
    with pytest.raises(BucketsUnavailable):  # and, within RETRY_AFTER, without trying to connect again
        buckets.take("a:x", 1.0, 1)


async def test_failed_logins_are_counted_once_for_every_machine(postgres_url):
    """Two machines' limiters (each its own connection and thread) reserving guesses at the same moment: the
    account's limit in all, not per machine; a right password forgives the account on both."""
    machines = [PostgresBuckets(postgres_url) for _ in range(2)]
    a, b = (FailedLogins(3, 50, 900.0, shared=m) for m in machines)
    try:
        reserved = await asyncio.gather(*((a, b)[n % 2].reserve("alice", f"203.0.113.{n}") for n in range(20)))
        assert sum(attempt is not None for _, attempt in reserved) == 3
        wait, attempt = await b.reserve("Alice", "198.51.100.1")  # names are counted case-insensitively
        assert attempt is None and 0 < wait <= 900
        alice = next(attempt for _, attempt in reserved if attempt is not None)
        await a.succeeded("alice", "203.0.113.9", alice)  # say one of alice's attempts was right after all
        assert (await b.reserve("alice", "198.51.100.1"))[1] is not None
    finally:
        for limiter, m in ((a, machines[0]), (b, machines[1])):
            limiter.close(), m.close()


async def test_an_unreachable_server_counts_failed_logins_in_the_process(postgres_url):
    buckets = unreachable_buckets(postgres_url)
    limiter = FailedLogins(2, 50, 900.0, shared=buckets)
    try:
        reserved = [await limiter.reserve("alice", "203.0.113.7") for _ in range(3)]
        assert [attempt is not None for _, attempt in reserved] == [True, True, False]  # no exception: here
        await limiter.succeeded("alice", "203.0.113.7", reserved[0][1])  # forgiven here, PostgreSQL still down
        assert (await limiter.reserve("alice", "203.0.113.7"))[1] is not None
    finally:
        limiter.close(), buckets.close()


async def test_two_servers_with_their_own_state_folders_share_a_client_limit(aiohttp_client, postgres_url, tmp_path):
    clients = []
    for machine in ("one", "two"):
        folder = load_folder(tmp_path / machine, f'database.url="{postgres_url}"', "server.watch_interval=0",
                             "server.rate_limit=0.001", "server.rate_burst=3")
        knowledge = ScriptedKnowledge()
        app = create_app(folder.settings, folder, models=FakeSource(), open_knowledge=lambda: knowledge)
        client = await aiohttp_client(JsonErrorServer(app))
        await eventually(lambda: app_ready(client), 10, f"machine {machine} to answer /readyz ready")
        await catch_up(app[RUNTIME])
        clients.append(client)
    statuses = []
    for n in range(8):  # one client (127.0.0.1) alternating between the two machines
        response = await clients[n % 2].post("/api/chat", json={"message": "where is my order"})
        statuses.append(response.status)
    assert statuses == [200] * 3 + [429] * 5, statuses  # each server alone would allow 3
    assert not any((tmp_path / m / "state" / "ratelimits.db").exists() for m in ("one", "two"))
