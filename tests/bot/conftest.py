"""Fixtures for the bot runtime: the tiny test bot, its doubles, and a served app."""

from __future__ import annotations

import pytest

from bot.analytics.jobs import catch_up
from bot.web.app import create_app
from bot.web.runtime import RUNTIME
from bot.folder.bot_folder import BotFolder
from runtime_doubles import FakeSource, ScriptedKnowledge, load_folder, write_bot
from tests.support.bots import ADMIN, JsonErrorServer, app_ready
from tests.support.postgres import ENGINES
from tests.support.waiting import eventually


@pytest.fixture(params=ENGINES)
def db_location(request, tmp_path) -> str:
    """Where a store test's database lives: the SQLite file of a state folder tmp_path/state, or a new database on
    the test PostgreSQL server."""
    return str(tmp_path / "state" / "supportbot.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def folder(tmp_path) -> BotFolder:
    return BotFolder.load(write_bot(tmp_path / "bot"), [f'state_dir="{tmp_path / "state"}"'])


@pytest.fixture
def make_client(aiohttp_client, tmp_path):
    """An aiohttp test client of the app with the doubles; waits until /readyz says ready."""

    async def make(*overrides: str, source: FakeSource | None = None, knowledge: ScriptedKnowledge | None = None,
                   worker: int | None = None):
        """`worker`: as that one of `serve --workers N` (a second call with another number: a second worker on
        the same state folder)."""
        folder = load_folder(tmp_path, f'server.admin_token="{ADMIN}"', "server.watch_interval=0", *overrides)
        kb = knowledge or ScriptedKnowledge()
        app = create_app(folder.settings, folder, models=source or FakeSource(), open_knowledge=lambda: kb,
                         worker=worker)
        client = await aiohttp_client(JsonErrorServer(app))
        await eventually(lambda: app_ready(client), 10, "the app to answer /readyz ready")
        # the start-up analytics fold writes on the server's connection: let it finish before a test writes the
        # same database through its own
        await catch_up(app[RUNTIME])
        return client

    return make
