"""`database.url`: empty = the SQLite file in state_dir, as always; a postgresql:// URL (or SUPPORTBOT_DATABASE_URL)
and the server and every command use that server instead; the password is never shown."""

from __future__ import annotations

import io

import pytest
import run_bot
from bot.review.accounts import AccountStore
from bot.dialogue.conversations import ConversationLog
from bot.dialogue.router import Decision, Reply
from bot.database import open_bot_database
from bot.settings import DATABASE_URL_ENV
from core.engine import open_database
from runtime_doubles import load_folder, write_bot
from training.redact import Redactor

SECRET_URL = "postgresql://bot:s3cret-pw@db.example.com:5432/supportbot"


def test_empty_is_the_sqlite_file_in_state_dir_and_the_environment_can_name_a_server(tmp_path, monkeypatch):
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    folder = load_folder(tmp_path)
    assert folder.settings.database_location == str(tmp_path / "state" / "supportbot.db")
    db = open_bot_database(folder.settings)
    assert db.dialect.name == "sqlite" and (tmp_path / "state" / "supportbot.db").is_file()
    db.close()
    monkeypatch.setenv(DATABASE_URL_ENV, SECRET_URL)
    assert load_folder(tmp_path).settings.database_location == SECRET_URL
    assert load_folder(tmp_path, 'database.url="postgresql://other/db"').settings.on_postgres


def test_a_url_that_is_not_postgresql_is_refused_without_repeating_it(tmp_path):
    bot = write_bot(tmp_path / "bot")
    (bot / "bot.toml").write_text((bot / "bot.toml").read_text() + '\n[database]\nurl = "mysql://bot:s3cret-pw@db/x"\n')
    from bot.folder.bot_folder import BotFolder

    with pytest.raises(ValueError) as refused:
        BotFolder.load(bot, [f'state_dir="{tmp_path / "state"}"'])
    assert "bot.toml:" in str(refused.value) and "postgresql://" in str(refused.value)
    assert "s3cret-pw" not in str(refused.value)


def test_settings_command_shows_the_url_only_as_set(tmp_path, capsys):
    common = ["--bot", str(write_bot(tmp_path / "bot")), "--set", f'state_dir="{tmp_path / "state"}"']
    assert run_bot.main(["settings", *common, "--set", f'database.url="{SECRET_URL}"']) == 0
    out = capsys.readouterr().out
    assert "database.url = '(set, hidden)'" in out and "s3cret-pw" not in out and "db.example.com" not in out


async def test_the_server_writes_its_conversations_to_the_configured_server(make_client, postgres_url, tmp_path):
    client = await make_client(f'database.url="{postgres_url}"')
    response = await client.post("/api/chat", json={"message": "where is my order"})
    assert response.status == 200
    body = await response.json()
    db = open_database(postgres_url)
    try:
        assert db.execute("select count(*) from turns where conversation_id = ?",
                          [body["conversation_id"]]).fetchone()[0] == 1
    finally:
        db.close()
    assert not (tmp_path / "state" / "supportbot.db").exists()


def test_commands_use_the_configured_server(postgres_url, tmp_path, monkeypatch, capsys):
    common = ["--bot", str(write_bot(tmp_path / "bot")), "--set", f'state_dir="{tmp_path / "state"}"',
              "--set", f'database.url="{postgres_url}"']
    monkeypatch.setattr("sys.stdin", io.StringIO("a good password\n"))
    assert run_bot.main(["users", "add", "rita", "--role", "admin", "--password-stdin", *common]) == 0
    db = open_database(postgres_url)
    try:
        assert AccountStore(db).verify("rita", "a good password") is not None
        log = ConversationLog(db, Redactor())
        convo, token = log.new()
        decision = Decision(route="fallback", reason="test", intent=None, confidence=0.1, flags=("fallback",))
        log.record_turn(convo, "where is the blue teapot", Reply("Sorry?", decision), token)
    finally:
        db.close()
    capsys.readouterr()
    assert run_bot.main(["review", "list", *common]) == 0
    assert "where is the blue teapot" in capsys.readouterr().out
    assert not (tmp_path / "state" / "supportbot.db").exists()
