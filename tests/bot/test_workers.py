"""`run_bot.py serve --workers 2` on one SQLite database: a real supervisor, two real worker processes sharing
one port, a bot trained with the tiny BERT. What must hold across workers: a conversation's turns apply one at
a time with none lost, a rate limit is counted across them, a promotion reaches both, `kill -9` of one loses no
acknowledged turn while the other keeps answering and the supervisor starts it again. The conversation-order
test also runs with the two workers on a real PostgreSQL server (`database.url`), and there two clients asking for
a person at once on one conversation get one handoff and one webhook."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

import run_bot
from core.sqlite import connect
from core.engine import open_database
from tests.support.bots import chat_turns_per_worker
from tests.support.ports import free_port
from tests.support.servers import log_tail, readyz, serving, stop
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
INTENTS = """
intents:
  track:
    examples: [where is my parcel, track my package, where is my delivery, parcel late]
    answer: Your parcel is on its way.
  refund:
    examples: [i want my money back, refund please, money back for my order, how do i get a refund]
    answer: Refunds take 5 days.
"""
BURST = 12
ADMIN = "workers-admin-token"


def call(url: str, body: dict | None = None) -> tuple[int, dict]:
    """One request on a new connection (so the kernel picks a worker for each)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def workers_seen(base: str, probes: int = 40) -> dict[int, dict]:
    """worker number -> its last /readyz, over `probes` new connections."""
    seen = {}
    for _ in range(probes):
        body = readyz(base)
        if body:
            seen[body["worker"]] = body
    return seen


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_bert):
    with served(tmp_path_factory.mktemp("workers"), tiny_bert, versions=2) as started:  # a promotion needs two
        yield started


@pytest.fixture(scope="module")
def postgres_workers(tmp_path_factory, tiny_bert, postgres_server_url):
    from tests.support.postgres import new_database

    url = new_database(postgres_server_url, f"workers_{uuid.uuid4().hex[:12]}")
    with served(tmp_path_factory.mktemp("pg_workers"), tiny_bert, versions=1, database_url=url) as started:
        yield started


@pytest.fixture(scope="module")
def webhook_workers(tmp_path_factory, tiny_bert, postgres_server_url):
    """Two workers on PostgreSQL with the handoff webhook pointed at a receiver in this process (its own bot: the
    other fixtures' rate limits are part of what their tests count)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.support.postgres import new_database

    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = new_database(postgres_server_url, f"webhook_{uuid.uuid4().hex[:12]}")
    settings = (f'rate_limit = 0\nnew_conversation_rate = 0\nhandoff_rate = 0\n'
                f'handoff_webhook = "http://127.0.0.1:{hook.server_port}/hook"\n')
    try:
        with served(tmp_path_factory.mktemp("webhook_workers"), tiny_bert, versions=1, database_url=url,
                    server=settings) as started:
            yield started, received
    finally:
        hook.shutdown()


@contextmanager
def served(root: Path, tiny_bert, versions: int, database_url: str = "",
           server: str = f"rate_limit = 0.2\nrate_burst = {BURST}\n"):
    """A bot trained with the tiny BERT, served by `serve --workers 2` until the block ends; `server`: lines of its
    [server] section beside the watch interval and handoff_after_failures."""
    bot, state = root / "bot", root / "state"
    bot.mkdir()
    (bot / "intents.yaml").write_text(INTENTS)
    (bot / "bot.toml").write_text(
        f'state_dir = "{state}"\n[train]\nbase_model = "{tiny_bert}"\nonnx = false\nbatch_size = 8\nepochs = 2\n'
        "min_steps = 0\nrefit_below = 0\n"
        f'[knowledge]\nembedder_model = "{tiny_bert}"\nembedder_runtime = "torch"\n'
        f"[server]\nwatch_interval = 0.3\nhandoff_after_failures = 0\n{server}"
        f'[database]\nurl = "{database_url}"\n')
    for _ in range(versions):
        assert run_bot.main(["train", "--bot", str(bot), "--quiet"]) == 0
    port, log = free_port(), root / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "SUPPORTBOT_ADMIN_TOKEN": ADMIN}
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(ROOT / "run_bot.py"), "serve", "--bot", str(bot), "--port", str(port),
               "--workers", "2"]
    with serving(command, base, log, 180, workers=2, stop_timeout_s=40, env=env) as process:
        yield {"base": base, "bot": bot, "db": state / "supportbot.db", "log": log, "process": process,
               "location": database_url or str(state / "supportbot.db")}
    assert process.returncode == 0, log_tail(log)
    assert "Traceback" not in log.read_text(errors="replace")


def test_shared_buckets_count_every_process_requests(tmp_path):
    from bot.serving.limits import SharedBuckets

    a, b = SharedBuckets(tmp_path / "limits.db"), SharedBuckets(tmp_path / "limits.db")  # two workers' views
    taken = [(a if n % 2 else b).take("requests:c:one", rate=0.001, burst=3) for n in range(8)]
    assert taken == [True] * 3 + [False] * 5
    assert a.take("requests:c:other", rate=0.001, burst=3)  # another client has its own bucket
    a.close(), b.close()


@pytest.mark.integration
def test_the_supervisor_gives_up_on_a_worker_that_keeps_dying_at_start(tmp_path, caplog):
    from bot.serving import workers
    from dying_worker import die

    assert workers.supervise(1, die, "127.0.0.1", free_port(), tmp_path / "metrics") == 1
    assert "worker 0 exited 5 times right after starting (last exit code 3)" in caplog.text
    assert workers.METRICS_DIR_ENV not in os.environ  # this process's own metrics are single-process again


def test_a_taken_port_is_refused_as_by_one_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        from bot.serving import workers

        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            workers.check_port_free("127.0.0.1", s.getsockname()[1])


@pytest.mark.integration
def test_two_clients_on_one_conversation_through_both_workers_lose_no_turn(server):
    two_clients_on_one_conversation(server)


@pytest.mark.integration
def test_on_postgresql_two_clients_on_one_conversation_through_both_workers_lose_no_turn(postgres_workers):
    """The same with the workers on PostgreSQL, where the turn count's row lock decides which of two turns waits."""
    assert not postgres_workers["db"].exists()
    two_clients_on_one_conversation(postgres_workers)


@pytest.mark.integration
def test_two_clients_asking_for_a_person_at_once_through_both_workers_fire_one_webhook(webhook_workers):
    """Both ask at the same moment on one conversation: one handoff is recorded and its webhook fires once. The
    webhooks are counted once the server has stopped: a stopping worker waits for its webhooks in flight, so by
    then every webhook either worker would send has arrived."""
    server, received = webhook_workers
    base, conversations = server["base"], []
    for _ in range(4):
        status, first = call(base + "/api/chat", {"message": "where is my parcel"})
        assert status == 200
        ids = {"conversation_id": first["conversation_id"], "token": first["token"]}
        replies = []
        threads = [threading.Thread(target=lambda: replies.append(call(base + "/api/chat",
                                                                       {"message": "/handoff", **ids})))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [status for status, _ in replies] == [200, 200] and all(r["handoff"] for _, r in replies)
        conversations.append(ids["conversation_id"])
    assert len(workers_seen(base)) == 2
    assert stop(server["process"], 40) == 0, log_tail(server["log"])
    assert sorted(r["conversation_id"] for r in received) == sorted(conversations)
    assert {r["event"] for r in received} == {"handoff"}
    db = open_database(server["location"])
    handoffs = db.execute("select conversation_id, count(*) from handoffs group by conversation_id").fetchall()
    db.close()
    assert sorted(tuple(row) for row in handoffs) == sorted((c, 1) for c in conversations)


def two_clients_on_one_conversation(server) -> None:
    base = server["base"]
    status, first = call(base + "/api/chat", {"message": "where is my parcel"})
    assert status == 200
    ids = {"conversation_id": first["conversation_id"], "token": first["token"]}
    acknowledged: dict[str, list[int]] = {"a": [], "b": []}

    def client(name: str) -> None:
        for n in range(5):
            status, reply = call(base + "/api/chat", {"message": f"refund please {name}{n}", **ids})
            assert status == 200, reply
            acknowledged[name].append(reply["turn_id"])

    threads = [threading.Thread(target=client, args=(name,)) for name in acknowledged]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db = open_database(server["location"])
    rows = list(db.execute("select id, message from turns where conversation_id = ? order by id",
                           [ids["conversation_id"]]).fetchall())
    turns = db.execute("select turns from conversations where id = ?", [ids["conversation_id"]]).fetchone()[0]
    db.close()
    assert len(rows) == 11 and turns == 11  # every acknowledged turn, once, and the state counted each
    for name, turn_ids in acknowledged.items():  # each client's turns stored in the order it sent them
        mine = [m for _, m in rows if m.endswith(tuple(f"{name}{n}" for n in range(5)))]
        assert mine == [f"refund please {name}{n}" for n in range(5)]
        assert sorted(turn_ids) == turn_ids


@pytest.mark.integration
def test_the_rate_limit_is_counted_across_workers(server):
    base = server["base"]
    status, first = call(base + "/api/chat", {"message": "track my package"})
    assert status == 200
    ids = {"conversation_id": first["conversation_id"], "token": first["token"]}
    statuses = [call(base + "/api/chat", {"message": "where is my delivery", **ids})[0] for _ in range(2 * BURST)]
    assert set(statuses) == {200, 429}
    # one bucket for the conversation, whichever worker answered: a burst (and what refilled meanwhile), not two
    assert BURST <= statuses.count(200) <= BURST + 3, statuses


@pytest.mark.integration
def test_wrong_passwords_sent_at_once_to_both_workers_get_the_limits_checks(server):
    """30 wrong guesses on one account at the same moment, each on a new connection (either worker): the account's
    limit of checks in all (review.login_attempts, 5: 401), the rest refused unchecked (429), not 5 per worker."""
    from bot.review.accounts import AccountStore

    base = server["base"]
    store = AccountStore(connect(server["db"]))
    store.add("guessed", "reviewer", "the right long password")
    store.db.close()
    forms = []
    for _ in range(30):  # a session cookie and its form token each (the workers share the session key)
        with urllib.request.urlopen(base + "/review/login", timeout=30) as page:
            cookie = page.headers["Set-Cookie"].split(";")[0]
            token = re.search(r'name="_csrf" value="([^"]+)"', page.read().decode()).group(1)
        forms.append((cookie, urllib.parse.urlencode({"_csrf": token, "name": "guessed", "password": "wrong"})))
    start, statuses = threading.Barrier(len(forms)), []

    def guess(cookie: str, form: str) -> None:
        request = urllib.request.Request(base + "/review/login", form.encode(), {"Cookie": cookie})
        start.wait()
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as e:
            statuses.append(e.code)

    threads = [threading.Thread(target=guess, args=form) for form in forms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [401] * 5 + [429] * 25


@pytest.mark.integration
def test_a_promotion_reaches_every_worker(server):
    """Promotes the version the workers do not serve, then the one they did: each reaches both workers, and the
    server is left as the test found it, whichever tests ran before."""
    base = server["base"]
    versions = {p.name for p in (server["db"].parent / "models").iterdir() if p.name[0].isdigit()}
    [serving] = {b["model_version"] for b in workers_seen(base).values()}
    [other] = versions - {serving}
    for version in (other, serving):
        assert run_bot.main(["models", "promote", version, "--bot", str(server["bot"])]) == 0

        def both_moved():
            seen = workers_seen(base, 20)
            return len(seen) == 2 and {b["model_version"] for b in seen.values()} == {version}

        wait_until(both_moved, 30, f"both workers to serve the promoted version {version}", interval_s=0.3,
                   details=lambda: log_tail(server["log"]))


@pytest.mark.integration
def test_metrics_count_the_turns_of_every_worker(server):
    """Whichever worker answers the scrape, it reports the turns both answered (multiprocess counters). It chats
    until each running worker has answered turns of its own, so it needs no turns from the tests before it."""
    base, state = server["base"], server["db"].parent
    status, first = call(base + "/api/chat", {"message": "where is my parcel"})
    assert status == 200
    ids = {"conversation_id": first["conversation_id"], "token": first["token"]}

    def each_worker_answered_a_turn() -> bool:
        call(base + "/api/chat", {"message": "track my package", **ids})  # on a new connection: either worker
        pids = {body["pid"] for body in workers_seen(base, 10).values()}
        turns = chat_turns_per_worker(state)
        return len(pids) == 2 and all(turns.get(pid) for pid in pids)

    wait_until(each_worker_answered_a_turn, 60, "a chat turn answered by each of the two workers", interval_s=0.3,
               details=lambda: f"turns per worker pid: {chat_turns_per_worker(state)}\n{log_tail(server['log'])}")
    db = connect(server["db"])
    turns = db.execute("select count(*) from turns").fetchone()[0]
    db.close()
    totals, workers = set(), set()
    for _ in range(20):
        request = urllib.request.Request(server["base"] + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        totals.add(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("supportbot_chat_turns_total{")))
        workers.add(call(server["base"] + "/readyz")[1]["worker"])
    assert totals == {turns} and turns > 0 and workers == {0, 1}


@pytest.mark.integration
def test_kill_9_of_a_worker_loses_no_acknowledged_turn_and_the_other_keeps_answering(server):
    base = server["base"]
    victim = workers_seen(base)[1]["pid"]
    acknowledged: list[int] = []
    after_kill: list[int] = []
    killed, done = threading.Event(), threading.Event()

    def client() -> None:
        status, reply = call(base + "/api/chat", {"message": "where is my parcel"})
        if status != 200:
            return
        ids = {"conversation_id": reply["conversation_id"], "token": reply["token"]}
        acknowledged.append(reply["turn_id"])
        while not done.is_set():
            try:
                status, reply = call(base + "/api/chat", {"message": "refund please", **ids})
            except (urllib.error.URLError, ConnectionError):  # its connection died with the worker: not acknowledged
                continue
            if status == 200:
                acknowledged.append(reply["turn_id"])
                if killed.is_set():
                    after_kill.append(reply["turn_id"])
            done.wait(0.2)  # a customer's pace: the conversation's rate limit (a burst of 12) lasts the test

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acknowledged) >= 8, 60, "turns acknowledged before the kill")
        os.kill(victim, signal.SIGKILL)
        killed.set()
        wait_until(lambda: len(after_kill) >= 4, 60, "turns answered after one worker was killed",
                   details=lambda: log_tail(server["log"]))
    finally:
        done.set()
        for t in threads:
            t.join()
    db = connect(server["db"])
    stored = {r[0] for r in db.execute("select id from turns").fetchall()}
    db.close()
    assert set(acknowledged) <= stored
    restarted = wait_until(lambda: (w := workers_seen(base, 20).get(1)) and w["pid"] != victim and w, 120,
                           "the supervisor to start worker 1 again", interval_s=0.3,
                           details=lambda: log_tail(server["log"]))
    assert restarted["ready"]
    assert f"worker 1 (pid {victim}) exited" in server["log"].read_text()
