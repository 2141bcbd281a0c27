"""The bot's database, as its settings say (`database.url`, else the SQLite file in `state_dir`), with every
store's tables brought to the current schema version."""

from __future__ import annotations

from bot.settings import Settings
from core.engine import Database, open_database


def open_bot_database(settings: Settings) -> Database:
    """The server, the schedule and every command open the bot's database through here."""
    return open_database(settings.database_location)


def migrate_stores(db: Database) -> None:
    """Open every store of a bot on `db` once, which runs their migrations (the server does it on its database
    thread at start; `db copy` on the target)."""
    from bot.review.accounts import AccountStore
    from bot.analytics.figures import Analytics
    from bot.dialogue.conversations import ConversationLog
    from bot.review.store import ReviewStore
    from knowledge.store import KnowledgeStore
    from training.redact import Redactor
    from training.runs import RunLog
    from training.store import ExampleStore, ProposalStore

    for store in (KnowledgeStore, ExampleStore, ProposalStore, RunLog, AccountStore, ReviewStore, Analytics):
        store(db)
    ConversationLog(db, Redactor())
