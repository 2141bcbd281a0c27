"""What a bot about to serve lacks, in words an operator acts on: said at start-up, and in /readyz."""

from __future__ import annotations

from bot.folder.bot_folder import BotFolder


def knowledge_warnings(folder: BotFolder, db=None) -> list[str]:
    """What will answer nothing: a bot with no intents and an empty knowledge base (every message falls back), or
    intents that send customers to an empty knowledge base. `db`: the bot's open database (else opened here)."""
    from bot.database import open_bot_database
    from knowledge.store import KnowledgeStore

    routed = sorted(name for name, intent in folder.intents.items() if intent.route == "knowledge")
    if folder.intents and not routed:
        return []
    own = db is None
    db = open_bot_database(folder.settings) if own else db
    try:
        documents, _chunks = KnowledgeStore(db).counts()
    finally:
        if own:
            db.close()
    if documents:
        return []
    sync = f"python run_bot.py kb sync --bot {folder.path} (reads {folder.knowledge_dir})"
    if not folder.intents:
        return [f"no intents in {folder.path / 'intents.yaml'} and an empty knowledge base: every message gets the "
                f"fallback answer. Add intents, or help articles: {sync}"]
    unanswered = [name for name in routed if not folder.intents[name].answer]
    return [
        f"{len(routed)} intents route to the knowledge base, which is empty ({', '.join(routed[:5])}"
        f"{', ...' if len(routed) > 5 else ''}); {len(unanswered)} of them have no answer of their own and will "
        f"fall back. Add help articles: {sync}"
    ]
