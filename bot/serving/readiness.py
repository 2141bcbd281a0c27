"""What a bot about to serve lacks, in words an operator acts on (said at start-up)."""

from __future__ import annotations

from bot.folder.bot_folder import BotFolder


def knowledge_warnings(folder: BotFolder) -> list[str]:
    """Intents that send customers to the knowledge base while it is empty: every such answer is a fallback."""
    from bot.database import open_bot_database
    from knowledge.store import KnowledgeStore

    routed = sorted(name for name, intent in folder.intents.items() if intent.route == "knowledge")
    if not routed:
        return []
    db = open_bot_database(folder.settings)
    try:
        documents, _chunks = KnowledgeStore(db).counts()
    finally:
        db.close()
    if documents:
        return []
    unanswered = [name for name in routed if not folder.intents[name].answer]
    return [
        f"{len(routed)} intents route to the knowledge base, which is empty ({', '.join(routed[:5])}"
        f"{', ...' if len(routed) > 5 else ''}); {len(unanswered)} of them have no answer of their own and will "
        f"fall back. Add help articles: python run_bot.py kb sync --bot {folder.path} (reads {folder.knowledge_dir})"
    ]
