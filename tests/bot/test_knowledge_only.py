"""A knowledge-only bot: a folder with knowledge/ and no intents.yaml serves answers from its articles."""

from __future__ import annotations

import asyncio
import hashlib
import re

import numpy as np
from aiohttp.test_utils import TestServer

import run_bot
from bot.folder.bot_folder import BotFolder
from bot.serving.model_slot import KnowledgeOnlySource
from bot.web.app import create_app
from knowledge.base import KnowledgeBase
from tests.support.bots import app_ready
from tests.support.waiting import eventually

FAQ = ("question,answer,url\n"
       "How long does delivery take?,Parcels arrive within 3 working days.,https://shop.example/delivery\n"
       "Can I return a sofa?,Sofas can be returned within 30 days for a full refund.,https://shop.example/returns\n"
       "Do you sell gift cards?,Gift cards from 10 to 500 euros are sold on the gift page.,\n")


class WordEmbedder:
    """Bag-of-words vectors (no model needed): the same words give the same direction."""

    name, dim = "word-embedder", 64

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[row, h % self.dim] += 1.0 if (h >> 20) & 1 else -1.0
            out[row, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def faq_bot(tmp_path):
    bot = tmp_path / "faqbot"
    (bot / "knowledge").mkdir(parents=True)
    (bot / "knowledge" / "faq.csv").write_text(FAQ)
    (bot / "bot.toml").write_text(f'state_dir = "{tmp_path / "state"}"\n[server]\nwatch_interval = 0\n')
    return bot


def test_a_folder_without_intents_loads_with_none(tmp_path):
    folder = BotFolder.load(faq_bot(tmp_path))
    assert folder.intents == {} and folder.entities == {}


async def test_a_knowledge_only_bot_serves_answers(tmp_path, aiohttp_client):
    folder = BotFolder.load(faq_bot(tmp_path))
    settings = folder.settings
    kb = KnowledgeBase.open(settings.db_path, settings.index_path, settings.knowledge, WordEmbedder())
    kb.sync([folder.knowledge_dir])
    app = create_app(settings, folder, models=KnowledgeOnlySource(), open_knowledge=lambda: kb)
    client = await aiohttp_client(TestServer(app))
    await eventually(lambda: app_ready(client), 10, "the app to answer /readyz ready")
    ready = await (await client.get("/readyz")).json()
    assert ready["ready"] and ready["model_version"] == "knowledge-only" and "warnings" not in ready

    reply = await (await client.post("/api/chat", json={"message": "can I return a sofa"})).json()
    assert reply["route"] == "knowledge" and "within 30 days" in reply["answer"]
    assert reply["sources"] == [{"title": "Can I return a sofa?", "url": "https://shop.example/returns",
                                 "doc_id": "faq.csv#can-i-return-a-sofa"}]
    turns = (await (await client.get(f"/api/conversations/{reply['conversation_id']}",
                                     headers={"X-Conversation-Token": reply["token"]})).json())["turns"]
    assert turns[0]["route"] == "knowledge"
    off = await (await client.post("/api/chat", json={"message": "zebra quantum violin"})).json()
    assert off["route"] == "fallback"


def test_serve_runs_a_folder_without_intents_as_knowledge_only(tmp_path, monkeypatch):
    import bot.cli.serve as serve

    served = []
    monkeypatch.setattr(serve, "run", lambda folder, **kw: served.append((folder.intents, kw)) or 0)
    assert run_bot.main(["serve", "--bot", str(faq_bot(tmp_path))]) == 0
    assert served == [({}, {"knowledge_only": True})]


async def test_a_bot_with_no_intents_and_no_articles_warns_at_start_and_in_readyz(tmp_path, aiohttp_client,
                                                                               capsys, monkeypatch, caplog):
    """Such a bot serves, but every message falls back: the command, the server's log and /readyz say so."""
    import bot.cli.serve as serve

    bot = faq_bot(tmp_path)
    (bot / "knowledge" / "faq.csv").unlink()
    monkeypatch.setattr(serve, "run", lambda folder, **kw: 0)
    assert run_bot.main(["serve", "--bot", str(bot)]) == 0
    assert "warning: no intents in" in capsys.readouterr().out

    folder = BotFolder.load(bot)
    settings = folder.settings
    kb = KnowledgeBase.open(settings.db_path, settings.index_path, settings.knowledge, WordEmbedder())
    app = create_app(settings, folder, models=KnowledgeOnlySource(), open_knowledge=lambda: kb)
    client = await aiohttp_client(TestServer(app))
    await eventually(lambda: app_ready(client), 10, "the app to answer /readyz ready")
    [warning] = (await (await client.get("/readyz")).json())["warnings"]
    assert "an empty knowledge base: every message gets the fallback answer" in warning and "kb sync" in warning
    assert any(r.getMessage() == warning for r in caplog.records)


def test_router_decision_names_the_answering_document(tmp_path):
    from bot.serving.model_slot import NoIntents
    from bot.dialogue.router import Conversation, Router

    folder = BotFolder.load(faq_bot(tmp_path))
    settings = folder.settings
    kb = KnowledgeBase.open(settings.db_path, settings.index_path, settings.knowledge, WordEmbedder())
    kb.sync([folder.knowledge_dir])
    model = NoIntents()

    async def classify(text):
        return model.predict([text])[0]

    async def search(text):
        return kb.answer(text)

    router = Router({}, {}, model, classify, search, settings)
    reply = asyncio.run(router.respond("how long does delivery take", Conversation("c1")))
    assert reply.decision.route == "knowledge" and "low_confidence" not in reply.decision.flags
    assert reply.decision.sources[0].doc_id == "faq.csv#how-long-does-delivery-take"
    kb.close()
