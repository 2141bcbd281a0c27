"""The server's retrain schedule and admin endpoints (a stand-in command for the retrain process), and a
rollback reaching a running server with real tiny models."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from bot.web.runtime import RUNTIME
from bot.retraining import Retraining, retrain_command
from tests.support.bots import ADMIN, app_ready
from tests.support.waiting import eventually
from core.sqlite import connect
from runtime_doubles import load_folder
from training.store import Example, ExampleStore

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def with_retrain(folder, **changes):
    settings = dataclasses.replace(folder.settings, retrain=dataclasses.replace(folder.settings.retrain, **changes))
    return dataclasses.replace(folder, settings=settings)


def add_reviewed(folder, texts):
    db = connect(folder.settings.db_path)
    ExampleStore(db).add(Example(t, "track_order", source="review") for t in texts)
    db.conn.close()


@pytest.mark.integration
async def test_the_schedule_starts_a_retrain_only_with_enough_new_examples(tmp_path):
    folder = with_retrain(load_folder(tmp_path), min_new_examples=3)
    marker = tmp_path / "ran"
    schedule = Retraining(folder, command=[sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')"])
    add_reviewed(folder, ["where is parcel one", "where is parcel two"])
    assert not await schedule.tick() and schedule.last_check["new_examples"] == 2
    add_reviewed(folder, ["where is parcel three"])
    assert await schedule.tick()
    assert await schedule.process.wait() == 0 and marker.read_text() == "x"
    assert (await schedule.status())["last_exit_code"] == 0


@pytest.mark.integration
async def test_a_running_retrain_is_not_started_twice(tmp_path):
    folder = with_retrain(load_folder(tmp_path), min_new_examples=0)
    schedule = Retraining(folder, command=[sys.executable, "-c", "import time; time.sleep(30)"])
    assert await schedule.tick() and schedule.running
    assert not await schedule.tick()  # still running: nothing new is started
    schedule.process.kill()
    await schedule.process.wait()


def test_the_retrain_process_gets_the_folder_and_its_overrides(tmp_path):
    folder = load_folder(tmp_path, "train.epochs=2")
    command = retrain_command(folder, "schedule")
    assert command[:5] == [sys.executable, "-m", "bot.retraining", "--bot", str(tmp_path / "bot")]  # the package, no path
    assert ["--trigger", "schedule"] == command[6:8]
    assert ["--set", "train.epochs=2"] == command[-2:] and f'state_dir="{tmp_path / "state"}"' in command


@pytest.mark.integration
async def test_admin_starts_a_retrain_and_reads_the_run_log(make_client, tmp_path):
    client = await make_client()
    rt = client.app[RUNTIME]
    rt.retraining.command = [sys.executable, "-c", "import time; time.sleep(30)"]
    assert (await client.post("/admin/retrain")).status == 401
    started = await client.post("/admin/retrain", headers=AUTH)
    assert started.status == 202 and (await started.json())["pid"] == rt.retraining.process.pid
    again = await client.post("/admin/retrain", headers=AUTH)
    assert again.status == 409 and "already running" in (await again.json())["error"]
    status = await (await client.get("/admin/retrain", headers=AUTH)).json()
    assert status["schedule"]["running"] is True and status["runs"] == [] and status["serving"] == "v1"
    rt.retraining.process.kill()
    await rt.retraining.process.wait()


async def test_a_rollback_reaches_a_running_server_without_a_restart(aiohttp_client, tiny_bert, tmp_path):
    """Two real tiny versions that answer 'where is my order' differently; rolling back changes the answer."""
    from aiohttp.test_utils import TestServer

    from bot.web.app import create_app
    from training.pipeline import train
    from training.registry import ModelRegistry
    from training.settings import TrainSettings

    folder = load_folder(tmp_path, f'server.admin_token="{ADMIN}"', "server.watch_interval=0.05")
    settings = TrainSettings(base_model=str(tiny_bert), onnx=False, batch_size=8, epochs=20, min_steps=0, encoder_lr=1e-3,
                             head_lr=5e-2, patience=20, seed=1)
    registry = ModelRegistry(folder.settings.models_path)
    texts = ["where is my order", "where is my parcel", "track my package"]
    other = ["cancel my order", "cancel it please", "i want to cancel"]
    first = train([Example(t, "track_order") for t in texts] + [Example(t, "cancel_order") for t in other],
                  settings, registry, progress=False)
    second = train([Example(t, "cancel_order") for t in texts] + [Example(t, "track_order") for t in other],
                   settings, registry, progress=False)  # the same words, the other way round
    for version in (first, second):  # answer on the top intent alone: the test is about which model serves
        calibration = json.loads((version.path / "calibration.json").read_text())
        (version.path / "calibration.json").write_text(json.dumps({**calibration, "threshold": 0.0, "margin": 0.0}))
    app = create_app(folder.settings, folder, open_knowledge=lambda: None)
    client = await aiohttp_client(TestServer(app))
    await eventually(lambda: app_ready(client), 30, "the app to answer /readyz ready", interval_s=0.05)

    async def answer() -> str:
        reply = await (await client.post("/api/chat", json={"message": "where is my order AB12345"})).json()
        return reply["answer"]

    assert (await (await client.get("/readyz")).json())["model_version"] == second.version
    before = await answer()
    registry.rollback()  # what `run_bot.py models rollback` does
    async def rolled_back() -> bool:
        return (await (await client.get("/readyz")).json())["model_version"] == first.version

    await eventually(rolled_back, 10, "the server to serve the version rolled back to", interval_s=0.05)
    after = await answer()
    assert (await (await client.get("/readyz")).json())["model_version"] == first.version
    assert before != after and "AB12345" in after  # track_order's template now, cancel_order's before


@pytest.mark.integration
async def test_a_retrain_past_its_timeout_is_stopped(tmp_path):
    folder = with_retrain(load_folder(tmp_path), timeout=0.2)
    schedule = Retraining(folder, command=[sys.executable, "-c", "import time; time.sleep(30)"])
    await schedule.trigger("admin")

    async def stopped() -> bool:
        return not schedule.running and schedule.finished

    await eventually(stopped, 10, "the retrain past its timeout to be stopped", interval_s=0.05)
    assert not schedule.running and (await schedule.status())["last_exit_code"] != 0


@pytest.mark.integration
async def test_the_review_page_starts_the_gated_retrain_and_shows_the_last_run(make_client):
    from training.runs import RunLog

    client = await make_client()
    rt = client.app[RUNTIME]
    rt.retraining.command = [sys.executable, "-c", "import time; time.sleep(30)"]
    started = await client.post("/api/review/train", headers=AUTH)
    assert started.status == 202 and (await started.json())["pid"] == rt.retraining.process.pid
    assert (await client.post("/api/review/train", headers=AUTH)).status == 409  # one at a time, whoever asks
    assert (await client.post("/admin/retrain", headers=AUTH)).status == 409
    status = await (await client.get("/api/review/status", headers=AUTH)).json()
    assert status["training"]["running"] is True and status["training"]["pid"] == rt.retraining.process.pid
    rt.retraining.process.kill()
    await rt.retraining.process.wait()

    def refused():  # what the retrain process writes when the gate refuses its candidate
        runs = RunLog(rt.log.db)
        runs.finish(runs.start("review"), "refused", "v9", "warm", {}, "accuracy fell by 0.120")

    await rt.db(refused)
    status = await (await client.get("/api/review/status", headers=AUTH)).json()
    assert status["training"]["running"] is False
    assert status["training"]["last_run"]["outcome"] == "refused" and status["training"]["last_run"]["candidate"] == "v9"
    page = await (await client.get("/review", headers=AUTH)).text()
    assert "refused" in page and "accuracy fell by 0.120" in page and "Retrain (gated)" in page


@pytest.mark.integration
async def test_the_retrain_button_says_started_not_done(make_client, tmp_path):
    """The page's button starts a retrain that takes minutes: its flash says it started (with the pid), never
    "Done: train." while it still runs."""
    from test_review_web import PASSWORD, login, page_csrf, users

    users(tmp_path, ("root", "admin"))
    client = await make_client()
    rt = client.app[RUNTIME]
    rt.retraining.command = [sys.executable, "-c", "import time; time.sleep(30)"]
    assert (await login(client, "root", PASSWORD)).status == 303
    response = await client.post("/review/train", data={"_csrf": await page_csrf(client)})
    page = await response.text()
    assert response.status == 200 and f"Started: <strong>a gated retrain (pid {rt.retraining.process.pid})" in page
    assert "Done:" not in page and "retrain running since" in page
    rt.retraining.process.kill()
    await rt.retraining.process.wait()


async def test_admin_the_review_button_and_the_schedule_start_the_same_retrain_process(make_client, monkeypatch):
    """Every way the server retrains builds its process with `retrain_command`: the package's module, no file path."""
    from bot import retraining

    built = []

    def command(folder, trigger):
        built.append(real(folder, trigger))
        return [sys.executable, "-c", "import time; time.sleep(30)"]

    real = retraining.retrain_command
    monkeypatch.setattr(retraining, "retrain_command", command)
    client = await make_client("retrain.min_new_examples=0")
    rt = client.app[RUNTIME]

    async def finish(started):
        assert started and rt.retraining.running
        rt.retraining.process.kill()
        await rt.retraining.process.wait()

    await finish((await client.post("/admin/retrain", headers=AUTH)).status == 202)
    await finish((await client.post("/api/review/train", headers=AUTH)).status == 202)
    await finish(await rt.retraining.tick())
    assert [c[c.index("--trigger") + 1] for c in built] == ["admin", "review", "schedule"]
    for c in built:
        assert c[1:3] == ["-m", "bot.retraining"] and not any(a.endswith(".py") for a in c)


def test_run_bot_retrain_and_the_retrain_process_run_the_same_retrain(tmp_path, monkeypatch):
    import types

    import run_bot
    from bot import retraining

    ran = []

    def run(folder, trigger="cli", progress=True, say=print):
        ran.append((folder.path, trigger, progress))
        return types.SimpleNamespace(promoted=False, held=False)

    monkeypatch.setattr(retraining, "run", run)
    folder = load_folder(tmp_path)
    assert run_bot.main(["retrain", "--bot", str(folder.path), "--quiet"]) == 3  # refused by the gate
    assert retraining.main(retrain_command(folder, "schedule")[3:]) == 3
    assert ran == [(folder.path, "cli", False), (folder.path, "schedule", False)]


async def test_the_retrain_process_runs_the_retrain_from_any_folder(tmp_path, monkeypatch):
    """The real process (not a stand-in), started the server's way; it refuses a device setting this machine
    cannot meet before it reads anything, which shows it ran the retrain."""
    folder = load_folder(tmp_path, "train.device=cuda", "train.processes=64")
    monkeypatch.chdir(tmp_path)
    retraining = Retraining(folder)
    await retraining.trigger("admin")
    assert await retraining.process.wait() == 2
    assert "needs 64 CUDA device(s)" in (tmp_path / "state" / "retrain.log").read_text()


@pytest.mark.integration
async def test_the_log_says_how_a_retrain_ended_in_words(tmp_path, caplog):
    """Exit code 3 is the gate's refusal: the log says so, not "(0 promoted, 3 refused by the gate)", which read
    like counts."""
    from bot.retraining import ending

    folder = with_retrain(load_folder(tmp_path), min_new_examples=0)
    schedule = Retraining(folder, command=[sys.executable, "-c", "raise SystemExit(3)"])
    caplog.set_level("INFO", logger="supportbot.schedule")
    await schedule.trigger("admin")

    async def ended() -> bool:
        return schedule.finished is not None

    await eventually(ended, 30, "the stand-in retrain to end")
    [line] = [r.getMessage() for r in caplog.records if "ended" in r.getMessage()]
    assert line.endswith("ended: the gate refused the candidate, the serving model stays (exit code 3)")
    assert ending(0).startswith("the candidate was promoted") and ending(1).startswith("it failed")
